"""The blueprint: auth hook, body parsing, the moderation routes and their error rendering."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request
from livekit.protocol.models import ParticipantInfo
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from . import errors, operations, signals
from .auth import current_auth, set_current_auth
from .config import MAX_BODY_BYTES
from .errors import ModerationError
from .schemas import (
    PARTICIPANT_STATES,
    TRACK_SOURCES,
    TRACK_TYPES,
    ListParticipantsQuery,
    MuteTrackRequest,
    RemoveParticipantRequest,
)
from .state import moderation_state

logger = logging.getLogger("flask_livekit_moderation")

blueprint = Blueprint("livekit_moderation", __name__)

_REMOVE = RemoveParticipantRequest()
_MUTE = MuteTrackRequest()
_LIST = ListParticipantsQuery()

_PUBLIC_ENDPOINTS = frozenset({"livekit_moderation.openapi"})

_HTTP_CODES = {
    400: errors.INVALID_REQUEST,
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.PAYLOAD_TOO_LARGE,
}


@blueprint.before_request
def _authenticate() -> None:
    # OPTIONS acts on nothing, and a CORS preflight never carries credentials.
    if request.endpoint in _PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return
    state = moderation_state()
    try:
        set_current_auth(state.authenticator.authenticate(state.resolver))
    except ModerationError as exc:
        _refused(_action_of(request.endpoint), exc, {})
        raise


@blueprint.errorhandler(ModerationError)
def _render_moderation_error(exc: ModerationError) -> Response:
    return exc.to_response()


@blueprint.errorhandler(HTTPException)
def _render_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, f"HTTP_{status}")
    headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    return ModerationError(status, code, exc.description or exc.name, headers=headers).to_response()


@blueprint.errorhandler(Exception)
def _render_unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error in %s", request.endpoint)
    return ModerationError(500, errors.INTERNAL_ERROR, "Internal error.").to_response()


def json_routing_error() -> Response | None:
    """JSON 404/405 for unrouted requests under the extension's prefix (an app-level hook).

    Blueprint error handlers never see routing failures, because a request that matched
    no rule belongs to no blueprint; so the app asks this first.
    """
    exc = request.routing_exception
    if not isinstance(exc, HTTPException) or exc.code not in (404, 405):
        return None
    base = moderation_state().settings.url_prefix + "/livekit"
    if request.path != base and not request.path.startswith(base + "/"):
        return None
    return _render_http_error(exc)


def _read_json_object() -> Any:
    """The request body parsed as JSON, whatever its Content-Type."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ModerationError(413, errors.PAYLOAD_TOO_LARGE, f"Request body is over {MAX_BODY_BYTES} bytes.")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ModerationError(413, errors.PAYLOAD_TOO_LARGE, f"Request body is over {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ModerationError(400, errors.INVALID_REQUEST, "Request body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise ModerationError(400, errors.INVALID_REQUEST, "Request body must be a JSON object.")
    return body


def _validate(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as exc:
        fields = ", ".join(sorted(str(name) for name in exc.messages))
        raise ModerationError(
            400,
            errors.INVALID_REQUEST,
            f"Invalid request: check {fields}.",
            details=exc.normalized_messages(),
        ) from None


_ACTIONS = {
    "livekit_moderation.remove_participant": "remove",
    "livekit_moderation.mute_track": "mute",
    "livekit_moderation.list_participants": "list",
}


def _action_of(endpoint: str | None) -> str:
    return _ACTIONS.get(endpoint or "", "unknown")


def _audit(action: str, outcome: str, target: Mapping[str, Any], calls: list[str]) -> None:
    # %r keeps caller-supplied names on one line (no log injection through newlines).
    logger.info(
        "livekit moderation action=%s auth_id=%r room=%r identity=%r track=%r outcome=%s livekit_calls=%s",
        action,
        current_auth().auth_id,
        target.get("room_name"),
        target.get("participant_identity"),
        target.get("track_sid"),
        outcome,
        ",".join(calls) or "-",
    )


def _refused(action: str, exc: ModerationError, target: Mapping[str, Any]) -> None:
    if exc.status == 401 or exc.code == errors.PARTICIPANT_NOT_FOUND:
        signals.notify(
            signals.moderation_refused,
            auth_id=current_auth().auth_id,
            action=action,
            room_name=target.get("room_name"),
            participant_identity=target.get("participant_identity"),
            track_sid=target.get("track_sid"),
            muted=target.get("muted"),
            status=exc.status,
            outcome=exc.code,
        )


def _moderate(action: str, target: Mapping[str, Any], operation: Any) -> tuple[Any, list[str]]:
    """Run one LiveKit operation; returns its result and the LiveKit calls it made.

    A failure is logged (and signalled when it is a refusal) before it propagates.
    """
    client = moderation_state().client
    if client is None:
        raise errors.livekit_not_configured()
    calls: list[str] = []
    try:
        result = client.run(operation, calls)
    except ModerationError as exc:
        _audit(action, exc.code, target, calls)
        _refused(action, exc, target)
        raise
    return result, calls


@blueprint.delete("/participant")
def remove_participant() -> Response:
    """Remove a participant from a room: ``{"room_name", "participant_identity"}``."""
    body = _validate(_REMOVE, _read_json_object())
    auth_id = current_auth().auth_id
    room_name, identity = body["room_name"], body["participant_identity"]
    _, calls = _moderate(
        "remove", body, lambda lk: operations.remove_participant(lk, auth_id, room_name, identity)
    )
    _audit("remove", "removed", body, calls)
    signals.notify(
        signals.participant_removed,
        auth_id=auth_id,
        room_name=room_name,
        participant_identity=identity,
        outcome="removed",
    )
    return jsonify(status="removed", room_name=room_name, participant_identity=identity)


@blueprint.post("/participant/mute")
def mute_track() -> Response:
    """Mute or unmute a published track: ``{"room_name", "participant_identity", "track_sid", "muted"}``."""
    body = _validate(_MUTE, _read_json_object())
    auth_id = current_auth().auth_id
    room_name, identity, track_sid = body["room_name"], body["participant_identity"], body["track_sid"]
    muted, calls = _moderate(
        "mute",
        body,
        lambda lk: operations.set_track_muted(lk, auth_id, room_name, identity, track_sid, body["muted"]),
    )
    outcome = "muted" if muted else "unmuted"
    _audit("mute", outcome, body, calls)
    signals.notify(
        signals.track_mute_changed,
        auth_id=auth_id,
        room_name=room_name,
        participant_identity=identity,
        track_sid=track_sid,
        muted=muted,
        outcome=outcome,
    )
    return jsonify(room_name=room_name, participant_identity=identity, track_sid=track_sid, muted=muted)


def _participant_json(participant: ParticipantInfo) -> dict[str, Any]:
    return {
        "identity": participant.identity,
        "name": participant.name,
        "sid": participant.sid,
        "state": PARTICIPANT_STATES.get(participant.state, "unknown"),
        "joined_at": participant.joined_at,
        "is_publisher": participant.is_publisher,
        "tracks": [
            {
                "sid": track.sid,
                "type": TRACK_TYPES.get(track.type, "unknown"),
                "source": TRACK_SOURCES.get(track.source, "unknown"),
                "muted": track.muted,
                "name": track.name,
            }
            for track in participant.tracks
        ],
    }


@blueprint.get("/participants")
def list_participants() -> Response:
    """Who is in a room, with each participant's tracks: ``?room_name=...``."""
    query = _validate(_LIST, request.args.to_dict(flat=True))
    auth_id = current_auth().auth_id
    room_name = query["room_name"]
    participants, calls = _moderate(
        "list", query, lambda lk: operations.list_participants(lk, auth_id, room_name)
    )
    _audit("list", "listed", query, calls)
    return jsonify(room_name=room_name, participants=[_participant_json(p) for p in participants])


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of these routes (public unless LIVEKIT_MODERATION_OPENAPI is off)."""
    state = moderation_state()
    if not state.settings.openapi:
        raise ModerationError(404, errors.NOT_FOUND, "Not found.")
    return jsonify(state.openapi_document())
