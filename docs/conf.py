"""Sphinx configuration of the documentation site (``sphinx-build -W --keep-going docs docs/_build/html``)."""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # the generated references (livekit_reference.py)
sys.path.insert(0, str(HERE.parent))  # the package, when built from a checkout not installed

project = "flask-livekit-moderation"
author = "flask-livekit-moderation contributors"
copyright = "the flask-livekit-moderation contributors (MIT)"
release = _version("flask-livekit-moderation")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "livekit_reference",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# Markdown pages (MyST): ``#`` headings get anchors to link to (``page.md#heading``), and a
# link to a heading or page that does not exist is a warning, so an error with -W.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every cross-reference must resolve; what lives in other projects' docs (no intersphinx: the
# build needs no network) is named here instead of linked.
nitpicky = True
_ELSEWHERE = (
    "flask|werkzeug|livekit|apispec|marshmallow|blinker|aiohttp|datetime|collections|typing|asyncio",
    "Flask|Blueprint|Request|Response|APISpec|Room|Any|T|R|L|K|V|IdentityKey",
    "AuthResolver|RequestLoader|Callable|Awaitable|Mapping|Sequence|Iterable|Iterator|NamedSignal",
    # The package's internals that public signatures mention (documented in the source, not here).
    r"flask_livekit_moderation\.(extension\.[RLK]|state|bans|config\.ApiSecret|testing\.\w+\.\w+)",
    r"models|abc|Clock|bans|google",
)
nitpick_ignore_regex = [(r"py:.*", rf"({names})(\..*)?") for names in _ELSEWHERE]
nitpick_ignore = [("py:attr", "sid")]  # TrackSpec.to_proto's own field, named bare in its docstring

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"flask-livekit-moderation {release}"
html_static_path: list[str] = []
