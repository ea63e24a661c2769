"""The OpenAPI document of the extension's routes, built from the schemas that validate.

apispec's marshmallow plugin turns the classes of :mod:`.schemas` into JSON Schema, so a
field added to a request schema is documented by the same change. Each route lists every
error status it can answer, and for each status the exact error codes (as an ``enum`` on
``code`` and as one example per code).

Every name the extension gives in a document (components, security schemes, operationIds,
the tag) starts with the instance's prefix (default ``LiveKitModeration``), so
:func:`register` can add the same paths and components to a host's own spec without taking a
name the host uses: the served document and the host's agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from apispec import APISpec
from apispec.exceptions import APISpecError, DuplicateComponentNameError
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from flask import request
from marshmallow import Schema

from . import errors, idempotency
from .config import DEFAULT_OPENAPI_PREFIX, MAX_BODY_BYTES
from .pipeline import Answer, Call
from .routing import Route, Routes
from .schemas import ErrorResponse
from .state import ModerationState

#: The security schemes' names, after the prefix (``LiveKitModerationBearerAuth``).
BEARER_SCHEME = "BearerAuth"
API_KEY_SCHEME = "ApiKeyQuery"

#: The example of INVALID_REQUEST: validation errors name the fields.
_INVALID_EXAMPLE = "Invalid request: check room_name."

_STATUS_MEANING: dict[int, str] = {
    400: "The request is invalid.",
    401: "No caller could be authenticated (only when LIVEKIT_MODERATION_AUTH_REQUIRED is on).",
    403: "The caller's credential lacks the route's scope, or the host's resolver or request loader "
    "refused the caller.",
    404: "Not found. A room the caller may not moderate answers exactly like a room or "
    "participant that does not exist.",
    413: f"The request body is over {MAX_BODY_BYTES} bytes.",
    409: "A request with the same `Idempotency-Key` is still being handled.",
    415: "The body was not sent as JSON (`Content-Type: application/json`).",
    422: "The `Idempotency-Key` was already used for a different request.",
    500: "LiveKit is not configured, rejected the server's credentials, refused the action, "
    "or the extension failed.",
    503: "LiveKit is unavailable, or too many requests are waiting on it: try again after the "
    "`Retry-After` seconds.",
}


_DESCRIPTION = """\
REST endpoints to moderate LiveKit rooms (flask-livekit-moderation).

Authentication: when the host app sets LIVEKIT_MODERATION_AUTH_REQUIRED, send a token as
`Authorization: Bearer <token>` or as the `api_key` query parameter (the header wins).
Without it every caller is anonymous and no token is needed.

Tenancy: a caller whose token maps to an auth id may moderate only rooms whose LiveKit
metadata is a JSON object with that `auth_id`; any other room answers 404
PARTICIPANT_NOT_FOUND on a route about one participant, byte for byte like a missing
participant, and ROOM_NOT_FOUND on a route about the whole room, byte for byte like a missing
room. Anonymous callers may moderate every room.

Every error is JSON `{"error": "<sentence>", "code": "<CODE>"}` (plus `details` for
INVALID_REQUEST); the codes each operation can answer are listed per status.
"""


def _named(prefix: str, name: str) -> str:
    """``name`` in an instance's namespace: ``LiveKitModeration`` + ``RemoveParticipant``."""
    return prefix + name[:1].upper() + name[1:]


def _token_security(prefix: str) -> list[dict[str, list[str]]]:
    """Either transport of the caller's token satisfies a moderation route."""
    return [{_named(prefix, BEARER_SCHEME): []}, {_named(prefix, API_KEY_SCHEME): []}]


def _error_response(
    status: int, codes: tuple[errors.ErrorCode, ...], status_meaning: dict[int, str], prefix: str
) -> dict[str, Any]:
    # allOf narrows the shared ErrorResponse to this status's codes, machine-readably.
    schema: dict[str, Any] = {
        "allOf": [
            {"$ref": f"#/components/schemas/{_named(prefix, 'ErrorResponse')}"},
            {"type": "object", "properties": {"code": {"enum": [error.code for error in codes]}}},
        ]
    }
    examples = {}
    for error in codes:
        value: dict[str, Any] = {"error": error.message, "code": error.code}
        if error is errors.INVALID_REQUEST:
            value = {
                "error": _INVALID_EXAMPLE,
                "code": error.code,
                "details": {"room_name": ["Missing data for required field."]},
            }
        examples[error.code] = {"summary": f"{error.code}: {error.description}", "value": value}
    meaning = " ".join(f"`{error.code}`: {error.description}" for error in codes)
    response: dict[str, Any] = {
        "description": f"{status_meaning[status]} {meaning}",
        "content": {"application/json": {"schema": schema, "examples": examples}},
    }
    headers = {name for error in codes for name, _ in error.headers}
    documented = {name: _HEADERS[name] for name in sorted(headers)}
    if documented:
        response["headers"] = documented
    return response


_HEADERS = {
    "WWW-Authenticate": {
        "description": "`Bearer` (401); for `INSUFFICIENT_SCOPE`, "
        '`Bearer error="insufficient_scope", scope="<the scope needed>"`.',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again (the breaker's remaining cooldown, else 1).",
        "schema": {"type": "integer", "minimum": 1},
    },
}


#: What every route taking an ``Idempotency-Key`` may answer besides its own codes.
_IDEMPOTENCY_ERRORS = (
    errors.IDEMPOTENCY_KEY_IN_USE,
    errors.IDEMPOTENCY_KEY_REUSED,
    errors.BAN_STORE_UNAVAILABLE,
)

_IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "description": (
        "Makes the request safe to send again (a retry after a timeout or a lost answer). The first "
        "completed answer (2xx or 4xx) for this key and this caller's owner is kept 24 hours and "
        "replayed, marked `Idempotent-Replayed: true`, to a request with the same key, method, path "
        "and body; nothing is done again. The same key with another request: 422 "
        "`IDEMPOTENCY_KEY_REUSED`; while the first is being handled: 409 `IDEMPOTENCY_KEY_IN_USE`. "
        "A 5xx answer is not kept: a retry runs again (after `LIVEKIT_OUTCOME_UNKNOWN`, a removal "
        "that finds the participant gone from the caller's room answers 200). Keys of different "
        "owners never meet. 1 to 255 printable ASCII characters (else 400), e.g. a UUID."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}
_REPLAYED_HEADER = {
    "description": (
        "`true` when this is the kept answer of an earlier request with the same `Idempotency-Key`: "
        "nothing was done again. Absent otherwise."
    ),
    "schema": {"type": "string", "enum": ["true"]},
}


def _by_status(codes: tuple[errors.ErrorCode, ...]) -> dict[int, tuple[errors.ErrorCode, ...]]:
    grouped: dict[int, list[errors.ErrorCode]] = {}
    for error in sorted(codes, key=errors.ALL.index):
        grouped.setdefault(error.status, []).append(error)
    return {status: tuple(grouped[status]) for status in sorted(grouped)}


def _operation(route: Route, prefix: str) -> dict[str, Any]:
    description = route.description
    if route.scope is not None:
        needs = f"Needs the `{route.scope}` scope (else 403 `INSUFFICIENT_SCOPE`)."
        description = f"{description} {needs}" if description else needs
    retryable = idempotency.applies(route)
    codes = route.errors
    if retryable:
        codes = (*codes, *(error for error in _IDEMPOTENCY_ERRORS if error not in codes))
    operation: dict[str, Any] = {
        "operationId": _named(prefix, route.operation_id),
        "summary": route.summary,
        "description": description,
        "tags": [prefix],
        "security": _token_security(prefix),
        "responses": {
            str(route.status): {
                "description": route.answer_description,
                "content": {"application/json": {"schema": route.answer or {"type": "object"}}},
            },
            **{
                str(status): _error_response(
                    status, of_status, {**_STATUS_MEANING, **route.status_meaning}, prefix
                )
                for status, of_status in _by_status(codes).items()
            },
        },
    }
    if route.scope is not None:
        operation["x-required-scope"] = route.scope
    if retryable:
        operation["parameters"] = [dict(_IDEMPOTENCY_PARAMETER)]
        for status, response in operation["responses"].items():
            if int(status) < 500:  # what is kept, and so may be a replay
                response.setdefault("headers", {})[idempotency.REPLAYED_HEADER] = _REPLAYED_HEADER
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "description": (
                "A JSON object sent with `Content-Type: application/json` (else 415); "
                "unknown keys are ignored."
            ),
            "content": {"application/json": {"schema": route.body}},
        }
    if route.query is not None:
        # The marshmallow plugin expands a schema "in: query" into one parameter per field.
        operation.setdefault("parameters", []).append({"in": "query", "schema": route.query})
    operation.update(route.openapi)
    return operation


def _prefixed_resolver(prefix: str) -> Callable[[type[Schema]], str]:
    """apispec's default names (``BanSchema`` -> ``Ban``), prefixed."""

    def resolve(schema: type[Schema]) -> str:
        return prefix + resolver(schema)

    return resolve


def openapi_document(
    routes: Iterable[Route],
    url_prefix: str,
    prefix: str = DEFAULT_OPENAPI_PREFIX,
    *,
    openapi_version: str = "3.1.0",
    with_document_route: bool = True,
) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` mounted under ``url_prefix`` (``""`` for none).

    Paths are ``{url_prefix}/livekit/...``; every component, security scheme and operationId,
    and the tag, is named ``{prefix}<Name>`` (``LiveKitModerationParticipant``). The served
    document is OpenAPI 3.1.0; for a host's 3.0.x spec, ``openapi_version`` makes apispec
    render what differs (a nullable field as ``nullable: true`` instead of a ``null`` type).
    The document's own route is public (an empty ``security``); it is left out when
    ``with_document_route`` is false.
    """
    from . import __version__

    tag = {"name": prefix, "description": _DESCRIPTION}
    spec = APISpec(
        title="LiveKit moderation",
        version=__version__,
        openapi_version=openapi_version,
        plugins=[MarshmallowPlugin(schema_name_resolver=_prefixed_resolver(prefix))],
        info={"description": _DESCRIPTION},
        security=_token_security(prefix),
        tags=[tag],
    )
    spec.components.security_scheme(
        _named(prefix, BEARER_SCHEME),
        {
            "type": "http",
            "scheme": "bearer",
            "description": "A caller token: `Authorization: Bearer <token>`.",
        },
    )
    spec.components.security_scheme(
        _named(prefix, API_KEY_SCHEME),
        {
            "type": "apiKey",
            "in": "query",
            "name": "api_key",
            "description": "The same caller token as `?api_key=<token>`, used when no Bearer header is sent.",
        },
    )
    # Referred to by name from every error answer; the others are registered as routes use them.
    spec.components.schema(_named(prefix, "ErrorResponse"), schema=ErrorResponse)
    documented = [route for route in routes if with_document_route or route.view is not openapi]
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        paths.setdefault(url_prefix + "/livekit" + route.rule, {})[route.method.lower()] = _operation(
            route, prefix
        )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    # What marshmallow cannot say (e.g. "at least one of these fields"), declared on the schema.
    components = document["components"]["schemas"]
    for route in documented:
        for schema in (route.body, route.answer):
            extra = getattr(schema, "OPENAPI_EXTRA", None)
            if schema is not None and extra:
                components[_prefixed_resolver(prefix)(schema)].update(extra)
    return document


def register(
    spec: APISpec,
    routes: Iterable[Route],
    url_prefix: str,
    prefix: str = DEFAULT_OPENAPI_PREFIX,
    *,
    with_document_route: bool = True,
) -> None:
    """Add the paths, schemas, security schemes and tag of :func:`openapi_document` to ``spec``.

    ``spec`` is the host's own (flask-smorest's ``Api.spec``, or any apispec ``APISpec`` of
    OpenAPI 3.0.x or 3.1, with or without plugins); what is added is rendered for its version.
    Nothing of the host's is replaced: a component, path operation or operationId the spec
    already has is accepted only when identical (registering twice changes nothing), else
    :class:`~apispec.exceptions.APISpecError` (:class:`DuplicateComponentNameError` for a
    component) names every clash and the spec is left as it was. A tag of the same name
    the host declared is kept as the host wrote it.
    """
    if spec.openapi_version.major != 3:
        raise ValueError(f"the extension documents its routes in OpenAPI 3 only, not {spec.openapi_version}")
    ours = openapi_document(
        routes,
        url_prefix,
        prefix,
        openapi_version=str(spec.openapi_version),
        with_document_route=with_document_route,
    )
    theirs = spec.to_dict()  # with what the host gave as APISpec(**options), e.g. components
    named: list[str] = []  # a prefix of its own avoids these
    paths_taken: list[str] = []  # another URL prefix avoids these
    added: dict[str, dict[str, Any]] = {}
    for section, lazy in (("securitySchemes", {}), ("schemas", spec.components.schemas_lazy)):
        present = {**lazy, **theirs.get("components", {}).get(section, {})}
        added[section] = {}
        for name, component in ours["components"][section].items():
            if name not in present:
                added[section][name] = component
            elif present[name] != component:
                named.append(f"components/{section}/{name}")
    component_clash = bool(named)
    operation_ids = {
        operation["operationId"]: (path, method)
        for path, item in theirs["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }
    new_paths: dict[str, dict[str, Any]] = {}
    for path, item in ours["paths"].items():
        for method, operation in item.items():
            present_operation = theirs["paths"].get(path, {}).get(method)
            if present_operation == operation:
                continue
            if present_operation is not None:
                paths_taken.append(f"{method.upper()} {path}")
                continue
            used_by = operation_ids.get(operation["operationId"])
            if used_by is not None:
                named.append(f"operationId {operation['operationId']} (of {used_by[1].upper()} {used_by[0]})")
                continue
            new_paths.setdefault(path, {})[method] = operation
    if named or paths_taken:
        hints = []
        if named:
            hints.append(f"give this LiveKitModeration its own openapi_prefix= (now {prefix!r})")
        if paths_taken:
            hints.append("mount it under another url_prefix=")
        error = DuplicateComponentNameError if component_clash else APISpecError
        raise error(
            f"the spec already has, different: {', '.join(named + paths_taken)}. Nothing was added: "
            + " and ".join(hints)
            + "."
        )

    for name, component in added["securitySchemes"].items():
        spec.components.security_scheme(name, component)
    for name, component in added["schemas"].items():
        spec.components.schema(name, component)
    # These operations are final OpenAPI already. The host's plugins would want their own
    # framework's objects (flask-smorest's FlaskPlugin fails without a werkzeug `rule`,
    # apispec-webframeworks' without a `view`), so they are not asked about these paths.
    plugins = spec.plugins
    spec.plugins = ()
    try:
        for path, operations in new_paths.items():
            spec.path(path=path, operations=operations)
    finally:
        spec.plugins = plugins
    if prefix not in {tag.get("name") for tag in theirs.get("tags", [])}:
        spec.tag(ours["tags"][0])


routes = Routes()


@routes.route(
    "GET",
    "/openapi.json",
    action=None,
    caller=False,
    operation_id="getOpenApiDocument",
    answer_description="The OpenAPI 3.1 document of these routes.",
    errors=(),
    openapi={"security": []},
)
def openapi(call: Call, _: dict[str, Any]) -> Answer:
    """The extension's own OpenAPI document

    Public; answers 404 when the host app sets LIVEKIT_MODERATION_OPENAPI to False.
    """
    if not call.state.settings.openapi:
        raise errors.NOT_FOUND()
    # The request's own path says where the routes are mounted, nesting included.
    url_prefix = request.path[: -len("/livekit/openapi.json")]
    return Answer(served_document(call.state, url_prefix), "document")


_served_lock = threading.Lock()


def served_document(state: ModerationState, url_prefix: str) -> dict[str, Any]:
    """The document ``state`` serves under ``url_prefix``, built on first request."""
    document = state.openapi_documents.get(url_prefix)
    if document is None:
        with _served_lock:
            document = state.openapi_documents.get(url_prefix)
            if document is None:
                document = state.openapi_documents[url_prefix] = openapi_document(
                    state.routes, url_prefix, state.openapi_prefix
                )
    return document
