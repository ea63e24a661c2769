"""The Sphinx extension that renders the generated reference tables (``livekit_tables``).

Directives, used from the Markdown pages as MyST blocks (```` ```{livekit-settings} ````):
``livekit-settings`` (configuration.md), ``livekit-errors`` (errors.md) and ``livekit-routes``
(routes.md). Whatever the tables report as undocumented (a setting without a comment, a key
the table misses, an error or view without text) is a Sphinx warning, so an error under
``sphinx-build -W``: an undocumented addition fails the docs build.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

import livekit_tables

logger = logging.getLogger(__name__)


def _parse(directive: SphinxDirective, lines: list[str], titles: bool = False) -> list[nodes.Node]:
    source = directive.get_source_info()[0] or "<generated>"
    content = StringList()
    for number, line in enumerate(lines):
        content.append(line, source, number)
    container: nodes.Element = nodes.section() if titles else nodes.container()
    if titles:
        nested_parse_with_titles(directive.state, content, container)
    else:
        directive.state.nested_parse(content, directive.content_offset, container)
    return list(container.children)


class SettingsDirective(SphinxDirective):
    """The table of every setting."""

    def run(self) -> list[nodes.Node]:
        rows, problems = livekit_tables.settings_rows()
        for problem in problems:
            logger.warning(problem, location=self.get_location())
        header = ["key", "default", "takes", "meaning"]
        return _parse(self, livekit_tables._list_table(header, rows, "22 14 22 42"))


class ErrorsDirective(SphinxDirective):
    """The table of every error code."""

    def run(self) -> list[nodes.Node]:
        for problem in livekit_tables.error_problems():
            logger.warning(problem, location=self.get_location())
        header = ["status", "code", "sentence", "when"]
        return _parse(self, livekit_tables._list_table(header, livekit_tables.error_rows(), "8 22 30 40"))


class RoutesDirective(SphinxDirective):
    """Every route, then every schema."""

    def run(self) -> list[nodes.Node]:
        for problem in livekit_tables.route_problems():
            logger.warning(problem, location=self.get_location())
        return _parse(self, livekit_tables.route_lines(), titles=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("livekit-settings", SettingsDirective)
    app.add_directive("livekit-errors", ErrorsDirective)
    app.add_directive("livekit-routes", RoutesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
