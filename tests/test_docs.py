"""The README says what the code does: its error table is the error table of the code, and its
OpenAPI recipes run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from flask_livekit_moderation import errors
from tests.openapi_checks import reached_components

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_error_table_lists_every_code_with_its_status():
    section = README.read_text().split("### Errors", 1)[1].split("\n\n", 2)[1]
    rows = set()
    for line in section.splitlines():
        match = re.match(r"\| (\d{3}) \| (.+?) \|", line)
        if match:
            rows |= {(int(match.group(1)), code) for code in re.findall(r"`([A-Z_]+)`", match.group(2))}
    documented = {
        (error.status, error.code)
        for error in errors.ALL
        if error.code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    }
    assert rows == documented


def _openapi_recipes() -> list[str]:
    section = README.read_text().split("\n## OpenAPI\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.parametrize("recipe", _openapi_recipes(), ids=["flask-smorest", "apispec"])
def test_the_readme_openapi_recipes_serve_a_valid_merged_document(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's app and its instance folder live here
    namespace: dict[str, Any] = {"__name__": "readme_recipe"}

    exec(compile(recipe, "README.md", "exec"), namespace)

    answer = namespace["app"].test_client().get("/openapi.json")
    assert answer.status_code == 200
    document = answer.get_json()
    validate(document)
    assert {"/livekit/participants", "/livekit/bans", "/livekit/openapi.json"} <= set(document["paths"])
    reached = reached_components(
        document, [path for path in document["paths"] if path.startswith("/livekit/")]
    )
    assert reached and all(name.split("/", 1)[1].startswith("LiveKitModeration") for name in reached)
