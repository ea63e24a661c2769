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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.exceptions import APISpecError, DuplicateComponentNameError
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from marshmallow import Schema

from . import errors, schemas
from .config import DEFAULT_OPENAPI_PREFIX, MAX_BODY_BYTES, MAX_WEBHOOK_BYTES, WEBHOOK_CONTENT_TYPE
from .operations import ROOM_MUTE_CONCURRENCY

#: The security schemes' names, after the prefix (``LiveKitModerationBearerAuth``).
BEARER_SCHEME = "BearerAuth"
API_KEY_SCHEME = "ApiKeyQuery"

#: What every route may answer, besides its own codes.
_COMMON = (
    errors.INVALID_REQUEST,
    errors.MISSING_TOKEN,
    errors.UNAUTHORIZED,
    errors.FORBIDDEN,
    errors.PARTICIPANT_NOT_FOUND,
    errors.LIVEKIT_NOT_CONFIGURED,
    errors.LIVEKIT_AUTH_FAILED,
    errors.LIVEKIT_UNAVAILABLE,
    errors.LIVEKIT_BUSY,
    errors.INTERNAL_ERROR,
)
#: What routes that read a JSON body may answer besides.
_BODY = (errors.PAYLOAD_TOO_LARGE, errors.UNSUPPORTED_MEDIA_TYPE)

#: The example of INVALID_REQUEST: validation errors name the fields.
_INVALID_EXAMPLE = "Invalid request: check room_name."

_STATUS_MEANING: dict[int, str] = {
    400: "The request is invalid.",
    401: "No caller could be authenticated (only when LIVEKIT_MODERATION_AUTH_REQUIRED is on).",
    403: "The host's resolver or request loader refused the caller.",
    404: "Not found. A room the caller may not moderate answers exactly like a room or "
    "participant that does not exist.",
    413: f"The request body is over {MAX_BODY_BYTES} bytes.",
    415: "The body was not sent as JSON (`Content-Type: application/json`).",
    500: "LiveKit is not configured, rejected the server's credentials, refused the action, "
    "or the extension failed.",
    503: "LiveKit is unavailable, or too many requests are waiting on it: try again after the "
    "`Retry-After` seconds.",
}


@dataclass(frozen=True)
class _Route:
    """One documented operation: where it lives, what it takes and what it can answer."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    success: type[Schema]
    success_description: str
    errors: tuple[errors.ErrorCode, ...]
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The status of a success (201 for a creation).
    success_status: int = 200
    #: Per-status sentences replacing those of ``_STATUS_MEANING`` for this route.
    status_meaning: dict[int, str] = field(default_factory=dict)


#: Every route of the blueprint but openapi.json, with the error codes it can answer.
#: tests/test_openapi.py provokes each of them over HTTP and compares with this table.
ROUTES: tuple[_Route, ...] = (
    _Route(
        method="delete",
        path="/livekit/participant",
        operation_id="removeParticipant",
        summary="Remove a participant from a room",
        description=(
            "Disconnects the participant. LiveKit does not revoke their access token: "
            "issue short-lived tokens so a removed participant cannot simply rejoin."
        ),
        body=schemas.RemoveParticipantRequest,
        success=schemas.RemoveParticipantResponse,
        success_description="LiveKit removed the participant.",
        errors=(*_COMMON, *_BODY, errors.REMOVAL_FAILED),
    ),
    _Route(
        method="post",
        path="/livekit/participant/mute",
        operation_id="muteTrack",
        summary="Mute or unmute a participant's published track",
        description=(
            "Unmuting needs `room.enable_remote_unmute: true` in the LiveKit server "
            "configuration (off by default: REMOTE_UNMUTE_DISABLED). A muted participant can "
            "unmute themselves unless their permissions forbid publishing."
        ),
        body=schemas.MuteTrackRequest,
        success=schemas.MuteTrackResponse,
        success_description="LiveKit changed the track; `muted` is the state LiveKit reports.",
        errors=(*_COMMON, *_BODY, errors.TRACK_NOT_FOUND, errors.REMOTE_UNMUTE_DISABLED, errors.MUTE_FAILED),
    ),
    _Route(
        method="get",
        path="/livekit/participants",
        operation_id="listParticipants",
        summary="List a room's participants and their tracks",
        description=(
            "An unknown room is an empty list for anonymous callers (as LiveKit answers) and "
            "the masked 404 for callers with an auth id."
        ),
        query=schemas.ListParticipantsQuery,
        success=schemas.ListParticipantsResponse,
        success_description="The room's participants, enums as lower-case strings.",
        errors=(*_COMMON, errors.LIST_FAILED),
    ),
    # -- permissions and room mute
    _Route(
        method="post",
        path="/livekit/participant/permissions",
        operation_id="updateParticipantPermissions",
        summary="Change what a participant may publish or subscribe to",
        description=(
            "Only the permission fields given change; give at least one of "
            + ", ".join(f"`{name}`" for name in schemas.PERMISSION_FIELDS)
            + " (else 400). LiveKit's UpdateParticipant replaces the WHOLE permission, every field "
            "not sent becoming false, so the route reads the current permission (GetParticipant) "
            "and sends it back merged. Revoking a source (e.g. `microphone` from "
            "`can_publish_sources`) is the mute a participant cannot undo: LiveKit unpublishes "
            "their tracks of that source and refuses new ones until it is allowed again. Not "
            "atomic: a permission changed by someone else between the read and the update is "
            "overwritten."
        ),
        body=schemas.UpdatePermissionsRequest,
        success=schemas.UpdatePermissionsResponse,
        success_description=(
            "LiveKit changed the permission; `permission` is what it now holds, "
            "`unpublished_tracks` the tracks it unpublished for it."
        ),
        errors=(*_COMMON, *_BODY, errors.PERMISSION_UPDATE_FAILED),
    ),
    _Route(
        method="post",
        path="/livekit/room/mute",
        operation_id="muteRoom",
        summary="Mute or unmute every published track of some sources in a room",
        description=(
            "Lists the room's participants, then sends every MutePublishedTrack at once (at most "
            f"{ROOM_MUTE_CONCURRENCY} in flight): two LiveKit round trips for a room of up to "
            f"{ROOM_MUTE_CONCURRENCY} matching tracks. Tracks of "
            "`except_identities` are left alone. A track that could not be changed is listed in "
            "`failed` with its reason (`TRACK_NOT_FOUND`: unpublished meanwhile; "
            "`PARTICIPANT_NOT_FOUND`: the participant left; `REMOTE_UNMUTE_DISABLED`; "
            "`LIVEKIT_UNAVAILABLE`: this call failed or timed out; `MUTE_FAILED`: any other "
            "refusal), not an error of the request; when EVERY track failed because LiveKit is "
            "unavailable or remote unmute is disabled, the request answers that error. "
            "A muted participant can unmute themselves: revoke the source with the permissions "
            "route to keep them muted."
        ),
        body=schemas.RoomMuteRequest,
        success=schemas.RoomMuteResponse,
        success_description=(
            "Each matching track, in `tracks` with the state LiveKit reports or in `failed`; "
            "sorted by participant identity, then source."
        ),
        errors=(*_COMMON, *_BODY, errors.REMOTE_UNMUTE_DISABLED, errors.ROOM_MUTE_FAILED),
    ),
)

_DESCRIPTION = """\
REST endpoints to moderate LiveKit rooms (flask-livekit-moderation).

Authentication: when the host app sets LIVEKIT_MODERATION_AUTH_REQUIRED, send a token as
`Authorization: Bearer <token>` or as the `api_key` query parameter (the header wins).
Without it every caller is anonymous and no token is needed.

Tenancy: a caller whose token maps to an auth id may moderate only rooms whose LiveKit
metadata is a JSON object with that `auth_id`; any other room answers 404
PARTICIPANT_NOT_FOUND, byte for byte like a missing participant. Anonymous callers may
moderate every room.

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
    "WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before trying again (the breaker's remaining cooldown, else 1).",
        "schema": {"type": "integer", "minimum": 1},
    },
}


def _by_status(codes: tuple[errors.ErrorCode, ...]) -> dict[int, tuple[errors.ErrorCode, ...]]:
    grouped: dict[int, list[errors.ErrorCode]] = {}
    for error in sorted(codes, key=errors.ALL.index):
        grouped.setdefault(error.status, []).append(error)
    return {status: tuple(grouped[status]) for status in sorted(grouped)}


def _operation(route: _Route, prefix: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _named(prefix, route.operation_id),
        "summary": route.summary,
        "description": route.description,
        "tags": [prefix],
        "security": _token_security(prefix),
        "responses": {
            str(route.success_status): {
                "description": route.success_description,
                "content": {"application/json": {"schema": route.success}},
            },
            **{
                str(status): _error_response(
                    status, codes, {**_STATUS_MEANING, **route.status_meaning}, prefix
                )
                for status, codes in _by_status(route.errors).items()
            },
        },
    }
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
        operation["parameters"] = [{"in": "query", "schema": route.query}]
    operation.update(route.extra)
    return operation


#: The schemas registered by name (the others are named by :func:`_prefixed_resolver`).
_SCHEMAS: tuple[tuple[str, type[Schema]], ...] = (
    ("RemoveParticipantRequest", schemas.RemoveParticipantRequest),
    ("MuteTrackRequest", schemas.MuteTrackRequest),
    ("RemoveParticipantResponse", schemas.RemoveParticipantResponse),
    ("MuteTrackResponse", schemas.MuteTrackResponse),
    ("Track", schemas.TrackSchema),
    ("Permission", schemas.PermissionSchema),  # before Participant, which nests it
    ("Participant", schemas.ParticipantSchema),
    ("ListParticipantsResponse", schemas.ListParticipantsResponse),
    # -- permissions and room mute
    ("UpdatePermissionsRequest", schemas.UpdatePermissionsRequest),
    ("UnpublishedTrack", schemas.UnpublishedTrackSchema),
    ("UpdatePermissionsResponse", schemas.UpdatePermissionsResponse),
    ("RoomMuteRequest", schemas.RoomMuteRequest),
    ("RoomMuteTrack", schemas.RoomMuteTrackSchema),
    ("RoomMuteFailure", schemas.RoomMuteFailureSchema),
    ("RoomMuteResponse", schemas.RoomMuteResponse),
    ("ErrorResponse", schemas.ErrorResponse),
)


def _prefixed_resolver(prefix: str) -> Callable[[type[Schema]], str]:
    """apispec's default names (``BanSchema`` -> ``Ban``) for the schemas not in ``_SCHEMAS``, prefixed."""

    def resolve(schema: type[Schema]) -> str:
        return prefix + resolver(schema)

    return resolve


def openapi_document(
    url_prefix: str,
    prefix: str = DEFAULT_OPENAPI_PREFIX,
    *,
    openapi_version: str = "3.1.0",
    with_document_route: bool = True,
) -> dict[str, Any]:
    """The OpenAPI document for routes mounted under ``url_prefix`` (``""`` for none).

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
    for name, schema in _SCHEMAS:
        spec.components.schema(_named(prefix, name), schema=schema)

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(url_prefix + route.path, {})[route.method] = _operation(route, prefix)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    if with_document_route:
        spec.path(
            path=url_prefix + "/livekit/openapi.json",
            operations={
                "get": {
                    "operationId": _named(prefix, "getOpenApiDocument"),
                    "summary": "The extension's own OpenAPI document",
                    "description": (
                        "Public; answers 404 when the host app sets LIVEKIT_MODERATION_OPENAPI to False."
                    ),
                    "tags": [prefix],
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document of these routes.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        )
    document = spec.to_dict()
    # -- permissions and room mute: "at least one permission field", which marshmallow cannot say.
    document["components"]["schemas"][_named(prefix, "UpdatePermissionsRequest")]["anyOf"] = [
        {"required": [name]} for name in schemas.PERMISSION_FIELDS
    ]
    return document


def register(
    spec: APISpec, url_prefix: str, prefix: str = DEFAULT_OPENAPI_PREFIX, *, with_document_route: bool = True
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
        url_prefix, prefix, openapi_version=str(spec.openapi_version), with_document_route=with_document_route
    )
    theirs = spec.to_dict()  # with what the host gave as APISpec(**options), e.g. components
    named: list[str] = []  # a prefix of its own avoids these
    routes: list[str] = []  # another URL prefix avoids these
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
                routes.append(f"{method.upper()} {path}")
                continue
            used_by = operation_ids.get(operation["operationId"])
            if used_by is not None:
                named.append(f"operationId {operation['operationId']} (of {used_by[1].upper()} {used_by[0]})")
                continue
            new_paths.setdefault(path, {})[method] = operation
    if named or routes:
        hints = []
        if named:
            hints.append(f"give this LiveKitModeration its own openapi_prefix= (now {prefix!r})")
        if routes:
            hints.append("mount it under another url_prefix=")
        error = DuplicateComponentNameError if component_clash else APISpecError
        raise error(
            f"the spec already has, different: {', '.join(named + routes)}. Nothing was added: "
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


# -- bans ---------------------------------------------------------------------------------

#: What the ban routes may answer besides their own: the store can fail.
_STORE = (errors.BAN_STORE_UNAVAILABLE,)
#: Callers and validation, without LiveKit: lifting a ban reads only the store.
_NO_LIVEKIT = (
    errors.INVALID_REQUEST,
    errors.MISSING_TOKEN,
    errors.UNAUTHORIZED,
    errors.FORBIDDEN,
    errors.PARTICIPANT_NOT_FOUND,
    errors.INTERNAL_ERROR,
)
_BAN_STATUS_MEANING = {
    503: "LiveKit or the ban store is unavailable, or too many requests are waiting on LiveKit: "
    "try again after the `Retry-After` seconds.",
}

ROUTES = (
    *ROUTES,
    _Route(
        method="post",
        path="/livekit/bans",
        operation_id="banParticipant",
        summary="Ban a participant from a room for a while, and remove them",
        description=(
            "Records the ban for the room's owner as LiveKit names it (the metadata's `auth_id`), "
            "then removes the participant if present (`removed`). The room must be running "
            "(ListRooms, then RemoveParticipant). Banning again replaces the expiry and reason. "
            "While the ban lasts, the webhook route removes the participant whenever they join "
            "again, and `participant_token()` refuses them a token. If the removal fails (5xx), "
            "the ban is already recorded: send the same request again."
        ),
        body=schemas.BanRequest,
        success=schemas.BanResponse,
        success_status=201,
        success_description="The ban is recorded; `removed` says whether LiveKit removed the participant.",
        errors=(*_COMMON, *_BODY, errors.REMOVAL_FAILED, *_STORE),
        status_meaning=_BAN_STATUS_MEANING,
    ),
    _Route(
        method="get",
        path="/livekit/bans",
        operation_id="listBans",
        summary="List a room's active bans",
        description=(
            "A caller with an auth id sees its own bans of that room name, kept after the room "
            "closed; when it has none, the room must be running and be the caller's (ListRooms), "
            "else the masked 404. A caller for all rooms sees every owner's bans, with no LiveKit call."
        ),
        query=schemas.ListBansQuery,
        success=schemas.ListBansResponse,
        success_description="The active bans, by identity.",
        errors=(*_COMMON, errors.LIST_FAILED, *_STORE),
        status_meaning=_BAN_STATUS_MEANING,
    ),
    _Route(
        method="delete",
        path="/livekit/bans",
        operation_id="liftBan",
        summary="Lift a ban",
        description=(
            "Deletes the caller's ban of the identity in that room (a caller for all rooms: every "
            "owner's). No active ban answers the masked 404. No LiveKit call."
        ),
        body=schemas.LiftBanRequest,
        success=schemas.LiftBanResponse,
        success_description="The ban is lifted: the participant may join again.",
        errors=(*_NO_LIVEKIT, *_BODY, *_STORE),
        status_meaning={503: "The ban store is unavailable: try again after the `Retry-After` seconds."},
    ),
    _Route(
        method="post",
        path="/livekit/webhook",
        operation_id="receiveLiveKitWebhook",
        summary="Receive LiveKit's webhooks (set this URL in LiveKit's `webhook.urls`)",
        description=(
            "Called by LiveKit, not by moderators: no caller token. Verified as LiveKit signs it "
            "(livekit-api's WebhookReceiver): `Authorization` is a JWT signed with the configured "
            "LiveKit API key and secret whose `sha256` claim is the body's SHA-256. On "
            "`participant_joined` by an identity banned from that owner's room, the participant "
            "is removed at once (ListRooms to check the room is still that owner's, then "
            "RemoveParticipant). A 5xx makes LiveKit deliver the event again; handling an event "
            "twice is harmless."
        ),
        success=schemas.WebhookResponse,
        success_description="Verified and handled; `removed` says whether a banned participant was removed.",
        errors=(
            errors.INVALID_REQUEST,
            errors.WEBHOOK_UNAUTHORIZED,
            errors.PAYLOAD_TOO_LARGE,
            errors.UNSUPPORTED_MEDIA_TYPE,
            errors.LIVEKIT_NOT_CONFIGURED,
            errors.LIVEKIT_AUTH_FAILED,
            errors.REMOVAL_FAILED,
            errors.INTERNAL_ERROR,
            errors.LIVEKIT_UNAVAILABLE,
            errors.LIVEKIT_BUSY,
            *_STORE,
        ),
        extra={
            "security": [],
            "requestBody": {
                "required": True,
                "description": (
                    "LiveKit's `WebhookEvent` as protojson (lowerCamelCase), sent with "
                    f"`Content-Type: {WEBHOOK_CONTENT_TYPE}` (else 415), at most "
                    f"{MAX_WEBHOOK_BYTES // 1024} KiB (else 413), and `Authorization: <JWT>` "
                    "(the bare token, no `Bearer`)."
                ),
                "content": {WEBHOOK_CONTENT_TYPE: {"schema": {"type": "object"}}},
            },
        },
        status_meaning={
            400: "Signed by LiveKit's key, but the body is not a LiveKit `WebhookEvent`.",
            401: "Not signed by this server's LiveKit API key and secret: nothing was done.",
            413: f"The webhook body is over {MAX_WEBHOOK_BYTES} bytes: nothing was done.",
            415: f"The body was not sent as `{WEBHOOK_CONTENT_TYPE}`: nothing was done.",
            500: "LiveKit is not configured (webhooks cannot be verified), rejected the server's "
            "credentials, refused the removal, or the extension failed.",
            **_BAN_STATUS_MEANING,
        },
    ),
)
