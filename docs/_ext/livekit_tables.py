"""The reference tables generated from the code (settings, errors, routes), as reStructuredText.

No Sphinx here: ``livekit_reference.py`` (the Sphinx extension) renders these at build time,
and ``tests/test_docs.py`` checks them without building the site:

- :func:`settings_rows`: every ``LIVEKIT_*`` setting ``config.load_settings`` reads, its
  default (what ``load_settings`` gives for an empty config), what values it takes (from the
  parser it goes through) and its meaning (the ``#:`` comment on the :class:`~config.Settings`
  field it fills); any ``"LIVEKIT_MODERATION_..."`` key written anywhere in the package that the
  table does not cover is reported as a problem, and so is a field without a comment.
- :func:`error_rows`: :data:`errors.ALL`, status, code, sentence and meaning.
- :func:`route_lines`: every route of :data:`routes.ROUTES` with its endpoint name, its body or
  query, its answer and the error codes of each status, read from the OpenAPI document the
  extension serves (itself built from the same table), then every schema they use.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import flask_livekit_moderation
from flask_livekit_moderation import config, errors
from flask_livekit_moderation.openapi import openapi_document
from flask_livekit_moderation.routes import ROUTES
from flask_livekit_moderation.routing import Route

PACKAGE = Path(flask_livekit_moderation.__file__).parent
SETTING_KEY = re.compile(r"LIVEKIT_(?:MODERATION_[A-Z0-9_]*[A-Z0-9]|URL|API_KEY|API_SECRET)")

#: What each of config.py's parsers accepts, by the parser's name. A setting read through a
#: parser not named here shows only its meaning (the ``#:`` comment says what it takes).
PARSER_TAKES = {
    "_from_config_or_env": "a string; unset: the environment variable of the same name",
    "_as_bool": "a boolean (or ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``)",
    "_api_secrets": 'a list of ``{"id": ..., "secret": ...}``, or that list as a JSON string',
    "_seconds": f"seconds, more than 0, at most {config.MAX_SECONDS:g}",
    "_share": "a number more than 0, at most 1",
    "_count": "a whole number, 0 or more (0: {zero})",
    "_interval": f"seconds, 0 (off) to {config.MAX_RECONCILE_INTERVAL:,.0f}",
}


# -- settings -----------------------------------------------------------------------------------


class Setting:
    """One key of ``app.config``, as ``load_settings`` reads it."""

    def __init__(self, key: str, field: str, parser: str | None, zero: str | None) -> None:
        self.key, self.field, self.parser, self.zero = key, field, parser, zero


def _strings(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value


def _parser_of(expression: ast.AST, key: str) -> tuple[str | None, str | None]:
    """The name of the config.py function called with ``key``, and its "0 means" argument."""
    for call in ast.walk(expression):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            continue
        if any(isinstance(a, ast.Constant) and a.value == key for a in call.args):
            zero = call.args[3] if len(call.args) > 3 else None
            meaning = zero.value if isinstance(zero, ast.Constant) else None
            return call.func.id, meaning if isinstance(meaning, str) else None
    for call in ast.walk(expression):  # the key read inside another call: _as_bool(key, config.get(key))
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id.startswith("_"):
            return call.func.id, None
    return None, None


def read_settings() -> list[Setting]:
    """Every key ``load_settings`` reads, with the ``Settings`` field it fills, from its code."""
    tree = ast.parse(inspect.getsource(config.load_settings))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    assigned: dict[str, ast.AST] = {}
    for statement in ast.walk(function):
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = statement.value
    (build,) = [
        call
        for call in ast.walk(function)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Settings"
    ]
    found: list[Setting] = []
    for keyword in build.keywords:
        assert keyword.arg is not None
        expressions: list[ast.AST] = [keyword.value]
        names = [n.id for n in ast.walk(keyword.value) if isinstance(n, ast.Name)]
        expressions += [assigned[name] for name in names if name in assigned]
        # A key named by a module constant of config (e.g. AUTH_REQUIRED_KEY, also read by init_app).
        expressions += [
            ast.Constant(getattr(config, name))
            for name in names
            if name not in assigned and isinstance(getattr(config, name, None), str)
        ]
        for expression in expressions:
            for text in _strings(expression):
                if SETTING_KEY.fullmatch(text) and text not in {s.key for s in found}:
                    parser, zero = _parser_of(expression, text)
                    found.append(Setting(text, keyword.arg, parser, zero))
    return found


def field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of ``cls``'s body, by field name."""
    lines = inspect.getsource(cls).splitlines()
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            comments[match.group(1)] = " ".join(pending)
        pending = []
    return comments


def _defaults() -> config.Settings:
    """What ``load_settings`` gives for an empty config, with no ``LIVEKIT_*`` environment."""
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("LIVEKIT_")}
    try:
        return config.load_settings({})
    finally:
        os.environ.update(saved)


def _literal(value: Any) -> str:
    if value is None:
        return "unset (see the meaning)"
    if value == ():
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"``{value!r}``"


def rst(text: str) -> str:
    """Markdown in docstrings and descriptions as reStructuredText: inline code (`x`) as ``x``,
    and a word's trailing underscore (``TR_...``) escaped, else it would be a link."""
    parts = re.split(r"(?<![`\w])`([^`]+)`(?![`\w])", text)
    escaped = [
        f"``{part}``" if index % 2 else re.sub(r"(\w)_(?!\w)", r"\1\\_", part)
        for index, part in enumerate(parts)
    ]
    return "".join(escaped)


def _cell(text: str) -> list[str]:
    lines = inspect.cleandoc(text).splitlines() or [""]
    return lines


def _list_table(header: list[str], rows: Iterable[list[str]], widths: str | None = None) -> list[str]:
    out = [".. list-table::", "   :header-rows: 1"]
    if widths:
        out.append(f"   :widths: {widths}")
    out.append("")
    for row in [header, *rows]:
        for index, cell in enumerate(row):
            lines = _cell(cell)
            out.append(("   * - " if index == 0 else "     - ") + lines[0])
            out.extend("       " + line for line in lines[1:])
    out.append("")
    return out


def undocumented_keys(settings: list[Setting]) -> list[str]:
    """``LIVEKIT_MODERATION_*`` keys written in the package's code that the table misses."""
    covered = {s.key for s in settings}
    seen: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            if SETTING_KEY.fullmatch(text) and text.startswith("LIVEKIT_MODERATION_"):
                seen.add(text)
    return sorted(seen - covered)


def settings_rows() -> tuple[list[list[str]], list[str]]:
    """The table's rows and the problems to warn about."""
    settings = read_settings()
    docs = field_comments(config.Settings)
    defaults = _defaults()
    rows, problems = [], []
    for setting in settings:
        meaning = docs.get(setting.field, "")
        if not meaning:
            problems.append(f"{setting.key}: the Settings field {setting.field!r} has no '#:' comment")
        takes = PARSER_TAKES.get(setting.parser or "", "a string")
        if "{zero}" in takes:
            takes = takes.format(zero=setting.zero or "see the meaning")
        default = (
            "the environment variable"
            if setting.parser == "_from_config_or_env"
            else _literal(getattr(defaults, setting.field))
        )
        rows.append([f"``{setting.key}``", default, takes, rst(meaning)])
    problems += [
        f"{key} is read by the package but not by config.load_settings: document it there (or extend "
        "docs/_ext/livekit_reference.py)"
        for key in undocumented_keys(settings)
    ]
    return rows, problems


# -- errors -------------------------------------------------------------------------------------


def error_rows() -> list[list[str]]:
    """One row per code of ``errors.ALL``, by status."""
    rows = []
    for error in sorted(errors.ALL, key=lambda e: e.status):
        headers = ", ".join(f"``{name}: {value}``" for name, value in error.headers)
        when = error.description + (f" Header: {headers}." if headers else "")
        rows.append([str(error.status), f"``{error.code}``", rst(error.message), rst(when)])
    return rows


# -- routes -------------------------------------------------------------------------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(schema_name: str) -> str:
    return "schema-" + schema_name.lower()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f":ref:`{name} <{_anchor(name)}>`"
    if "allOf" in schema or "anyOf" in schema or "oneOf" in schema:
        parts: list[dict[str, Any]] = schema.get("allOf") or schema.get("anyOf") or schema.get("oneOf") or []
        return " or ".join(_type(part) for part in parts)
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" or "array" in str(kind):
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(f"``{value}``" if value is not None else "``null``" for value in schema["enum"])
    return str(kind)


def _limits(schema: dict[str, Any]) -> str:
    notes = []
    for key, text in (
        ("minLength", "at least {} character(s)"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if key in schema:
            notes.append(text.format(f"{schema[key]:,}"))
    if "default" in schema:
        notes.append(f"default ``{json.dumps(schema['default'])}``")
    return "; ".join(notes)


def _meaning(description: str, schema: dict[str, Any]) -> str:
    limits = _limits(schema)
    return rst(" ".join(part for part in (description, f"({limits})" if limits else "") if part)) or " "


def _field_rows(properties: dict[str, Any], required: Iterable[str]) -> list[list[str]]:
    rows = []
    for name, schema in properties.items():
        meaning = _meaning(schema.get("description", ""), schema)
        rows.append([f"``{name}``", _type(schema), "yes" if name in required else "no", meaning])
    return rows


def _schema_table(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return ["Any JSON object.", ""]
    return _list_table(
        ["field", "type", "required", "meaning"],
        _field_rows(properties, schema.get("required", [])),
        "20 25 10 45",
    )


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/components/schemas/"):
                yield _ref_name(item)
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _caller(route: Route) -> str:
    if route.caller:
        return (
            "a token (``Authorization: Bearer`` or ``?api_key=``) or your ``request_loader``, when "
            "``LIVEKIT_MODERATION_AUTH_REQUIRED`` is on; see :doc:`authentication`"
        )
    if route.openapi.get("security") == [] and route.body is None and route.method == "GET":
        return "none: public"
    return "none: the request is checked on its own (see the description)"


def route_lines(name: str = "livekit_moderation") -> list[str]:
    """The reStructuredText of every route, then of every schema they use."""
    document = openapi_document(ROUTES, "")
    schemas = document["components"]["schemas"]
    out: list[str] = []
    used: list[str] = []
    for route in ROUTES:
        path = "/livekit" + route.rule
        operation = document["paths"][path][route.method.lower()]
        title = f"``{route.method} {path}``"
        out += [f".. _route-{route.endpoint}:", "", title, "-" * len(title), ""]
        out += [f"**{rst(route.summary)}**", ""]
        if route.description:
            out += [rst(route.description), ""]
        out += [
            f":Endpoint: ``{name}.{route.endpoint}`` (``url_for`` name; the blueprint is ``{name}``)",
            f":Action: ``{route.action}`` (in logs and signals)" if route.action else ":Action: none",
            f":Caller: {_caller(route)}",
            f":Success: {route.status}",
            "",
        ]
        if route.query is not None:
            parameters = operation.get("parameters", [])
            out += ["Query parameters:", ""]
            out += _list_table(
                ["parameter", "type", "required", "meaning"],
                [
                    [
                        f"``{p['name']}``",
                        _type(p.get("schema", {})),
                        "yes" if p.get("required") else "no",
                        _meaning(p.get("description", ""), p.get("schema", {})),
                    ]
                    for p in parameters
                ],
                "20 25 10 45",
            )
        body = operation.get("requestBody")
        if body is not None:
            content = body.get("content", {})
            media, schema_ref = next(iter(content.items())) if content else ("application/json", {})
            out += [f"Body (``{media}``):", ""]
            if "$ref" in schema_ref.get("schema", {}):
                body_name = _ref_name(schema_ref["schema"]["$ref"])
                out += _schema_table(schemas[body_name])
                used.append(body_name)
            else:
                out += [rst(body.get("description", "See the description.")), ""]
        success = operation["responses"][str(route.status)]
        out += [f"Answer ``{route.status}``: {rst(success.get('description', ''))}", ""]
        answer_schema = success.get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in answer_schema:
            answer_name = _ref_name(answer_schema["$ref"])
            out += _schema_table(schemas[answer_name])
            used.append(answer_name)
        rows = []
        for status, codes in sorted(_codes_by_status(route).items()):
            rows.append([str(status), ", ".join(f"``{code}``" for code in codes)])
        if rows:
            out += ["Errors (see :doc:`errors`):", ""]
            out += _list_table(["status", "codes"], rows, "10 90")
        else:
            out += ["Errors: none of its own (see :doc:`errors` for unknown paths and methods).", ""]
        used += list(_refs(operation))
    out += [".. _route-schemas:", "", "Schemas", "-------", ""]
    out += ["The objects the bodies and answers above are made of, as the OpenAPI document names them.", ""]
    seen: set[str] = set()
    queue = list(dict.fromkeys(used))
    while queue:
        schema_name = queue.pop(0)
        if schema_name in seen or schema_name not in schemas:
            continue
        seen.add(schema_name)
        queue += [ref for ref in _refs(schemas[schema_name]) if ref not in seen]
    for schema_name in sorted(seen):
        title = schema_name
        out += [f".. _{_anchor(schema_name)}:", "", title, "^" * len(title), ""]
        description = schemas[schema_name].get("description")
        if description:
            out += [rst(description), ""]
        out += _schema_table(schemas[schema_name])
    return out


def _codes_by_status(route: Route) -> dict[int, list[str]]:
    by_status: dict[int, list[str]] = {}
    for error in route.errors:
        by_status.setdefault(error.status, [])
        if error.code not in by_status[error.status]:
            by_status[error.status].append(error.code)
    return by_status


def error_problems() -> list[str]:
    """Error codes without a meaning to show."""
    return [f"{error.code} has no description" for error in errors.ALL if not error.description.strip()]


def route_problems() -> list[str]:
    """Routes whose view has no docstring (the summary the reference and OpenAPI show)."""
    return [
        f"{route.method} {route.rule}: its view has no docstring"
        for route in ROUTES
        if not route.summary.strip()
    ]
