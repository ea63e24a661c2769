"""The routes of one extension instance, and what happens around each request.

A request to a moderation route goes, top to bottom:

1. ``_before`` (the blueprint's ``before_request``): starts the request's record; a write
   that is not JSON is 415; then the caller (:func:`~.auth.resolve_caller`, cached on ``g``
   and perhaps already resolved by the host): 401/403 when refused.
2. the view: body or query through its schema (400/413), then the LiveKit operation
   (:mod:`.operations`: masked 404, LiveKit failures), then the action's signal and the
   JSON answer.
3. ``_after`` and ``_finish``: the status answered, the audit log record and the
   ``moderation_finished`` signal, whatever the outcome.

Errors are raised as :class:`~.errors.ModerationError`; the app-level handler installed by
``init_app`` renders them, unless the host registered its own.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Response, current_app, g, jsonify, request
from google.protobuf import json_format
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.models import ParticipantInfo, ParticipantPermission
from livekit.protocol.webhook import WebhookEvent
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError

from . import errors, operations, signals
from .access import room_owner
from .auth import AuthContext, known_caller, resolve_caller
from .bans import Ban, BanStore, rfc3339
from .client import RoomCalls
from .config import MAX_BODY_BYTES, MAX_WEBHOOK_BYTES, WEBHOOK_CONTENT_TYPE
from .errors import ModerationError
from .schemas import (
    PARTICIPANT_STATES,
    PERMISSION_FIELDS,
    SOURCE_NUMBERS,
    TRACK_SOURCES,
    TRACK_TYPES,
    BanRequest,
    LiftBanRequest,
    ListBansQuery,
    ListParticipantsQuery,
    MuteTrackRequest,
    RemoveParticipantRequest,
    RoomMuteRequest,
    UpdatePermissionsRequest,
)
from .state import ModerationBlueprint, ModerationState, app_states, moderation_state

logger = logging.getLogger("flask_livekit_moderation")

_REMOVE = RemoveParticipantRequest()
_MUTE = MuteTrackRequest()
_LIST = ListParticipantsQuery()

#: View name -> the action it performs, as logs and signals name it.
ACTIONS = {
    "remove_participant": "remove",
    "mute_track": "mute",
    "list_participants": "list",
}
#: Views that need no caller and act on nothing.
_PUBLIC = frozenset({"openapi"})
#: Codes that mean "refused": sent as ``moderation_refused`` too.
_REFUSALS = frozenset(
    {
        errors.MISSING_TOKEN.code,
        errors.UNAUTHORIZED.code,
        errors.FORBIDDEN.code,
        errors.PARTICIPANT_NOT_FOUND.code,
    }
)

_RECORD_KEY = "_livekit_moderation_record"


@dataclass
class _Record:
    """What one moderation request did: for the audit log and ``moderation_finished``."""

    action: str
    started: float
    target: Mapping[str, Any] = field(default_factory=dict)
    calls: RoomCalls | None = None
    outcome: str | None = None
    status: int | None = None
    answered: float | None = None
    #: The LiveKit operation started (or found LiveKit unconfigured): log an audit line.
    acted: bool = False
    #: A ban enforced by the webhook route: no caller; ``owner`` is the room owner it acted for.
    enforcement: bool = False
    owner: str | None = None


def _record() -> _Record:
    record: _Record = g.get(_RECORD_KEY)
    return record


def _view_name() -> str:
    return (request.endpoint or "").rsplit(".", 1)[-1]


def _before() -> None:
    name = _view_name()
    if name in _PUBLIC or name in _WEBHOOK_VIEWS or request.method == "OPTIONS":
        # OPTIONS acts on nothing, and a CORS preflight never carries credentials.
        return
    record = _Record(action=ACTIONS.get(name, name), started=time.perf_counter())
    setattr(g, _RECORD_KEY, record)
    try:
        if request.method in ("POST", "DELETE") and not request.is_json:
            # Before anything that depends on the caller: a cross-site form post
            # (text/plain, no CORS preflight) must never reach the resolver or LiveKit.
            raise errors.UNSUPPORTED_MEDIA_TYPE()
        _caller()
    except ModerationError as exc:
        record.outcome = exc.code
        raise


def _caller() -> AuthContext:
    state = moderation_state()
    caller, refusal = resolve_caller(state.name, state.authenticator)
    if refusal is not None:
        raise refusal
    return caller


V = TypeVar("V", bound=Callable[..., Response])


def _moderation_view(view: V) -> V:
    """Record the outcome of a view that fails, for the audit record and signals."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except ModerationError as exc:
            _record().outcome = exc.code
            raise
        except Exception:
            _record().outcome = errors.INTERNAL_ERROR.code
            raise

    return wrapper  # type: ignore[return-value]


def _after(response: Response) -> Response:
    record = g.get(_RECORD_KEY)
    if record is not None:
        record.status = response.status_code
        record.answered = time.perf_counter()
    return response


def _finish(exc: BaseException | None) -> None:
    record = g.pop(_RECORD_KEY, None)
    if record is None:
        return
    if record.status is None:  # an exception propagated (PROPAGATE_EXCEPTIONS)
        record.status = 500
        record.outcome = record.outcome or errors.INTERNAL_ERROR.code
    duration_ms = round(((record.answered or time.perf_counter()) - record.started) * 1000, 3)
    auth_id = record.owner if record.enforcement else _caller_id()
    fields = {
        "action": record.action,
        "auth_id": auth_id,
        "room_name": record.target.get("room_name"),
        "participant_identity": record.target.get("participant_identity"),
        "track_sid": record.target.get("track_sid"),
        "outcome": record.outcome,
        "livekit_calls": [] if record.calls is None else list(record.calls.made),
        "duration_ms": duration_ms,
    }
    if record.acted:
        # %r keeps caller-supplied names on one line (no log injection through newlines).
        logger.info(
            "livekit moderation action=%s auth_id=%r room=%r identity=%r track=%r outcome=%s "
            "livekit_calls=%s",
            record.action,
            auth_id,
            fields["room_name"],
            fields["participant_identity"],
            fields["track_sid"],
            record.outcome,
            ",".join(fields["livekit_calls"]) or "-",
            extra={
                "moderation_action": record.action,
                "moderation_auth_id": auth_id,
                "moderation_room": fields["room_name"],
                "moderation_identity": fields["participant_identity"],
                "moderation_track": fields["track_sid"],
                "moderation_outcome": record.outcome,
                "moderation_livekit_calls": fields["livekit_calls"],
                "moderation_duration_ms": duration_ms,
            },
        )
    if record.outcome in _REFUSALS:
        signals.notify(
            signals.moderation_refused,
            auth_id=auth_id,
            action=record.action,
            room_name=fields["room_name"],
            participant_identity=fields["participant_identity"],
            track_sid=fields["track_sid"],
            muted=record.target.get("muted"),
            status=record.status,
            outcome=record.outcome,
        )
    signals.notify(signals.moderation_finished, status=record.status, **fields)


def _caller_id() -> str | None:
    # Never resolves: a request refused before its caller was asked (415) stays unasked.
    caller = known_caller(moderation_state().name)
    return None if caller is None else caller.auth_id


def _internal_error(exc: InternalServerError) -> Response:
    # Only reached when Flask does not propagate the exception (not TESTING/DEBUG); Flask has
    # logged it. The answer goes through the ModerationError handler so a host's applies.
    response: Response = current_app.handle_user_exception(errors.INTERNAL_ERROR())  # type: ignore[assignment]
    return response


def json_routing_error() -> None:
    """JSON 404/405 for unrouted requests under an instance's prefix (an app-level hook).

    A request that matched no rule belongs to no blueprint, so the blueprint's hooks never
    see it; the app asks this first.
    """
    exc = request.routing_exception
    if not isinstance(exc, HTTPException) or exc.code not in (404, 405):
        return
    for state in app_states(current_app):
        for base in state.prefixes:
            if request.path == base or request.path.startswith(base + "/"):
                allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
                raise errors.BY_HTTP_STATUS[exc.code](headers=allow)


def render_moderation_error(exc: ModerationError) -> Response:
    """The extension's rendering of its errors (the app-level handler ``init_app`` installs)."""
    return exc.to_response()


def _read_json_object() -> dict[str, Any]:
    """The request body, a JSON object of at most ``MAX_BODY_BYTES``."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise errors.PAYLOAD_TOO_LARGE()
    try:
        raw = request.stream.read(MAX_BODY_BYTES + 1)
    except HTTPException as exc:  # the host's MAX_CONTENT_LENGTH, or a broken upload
        raise errors.BY_HTTP_STATUS.get(exc.code or 400, errors.INVALID_REQUEST)() from None
    if len(raw) > MAX_BODY_BYTES:
        raise errors.PAYLOAD_TOO_LARGE()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise errors.body_not_an_object() from None
    if not isinstance(body, dict):
        raise errors.body_not_an_object()
    return body


def _validate(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    try:
        valid: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise errors.invalid_fields(exc.messages_dict) from None
    _record().target = valid
    return valid


def _livekit(state: ModerationState) -> RoomCalls:
    """The LiveKit calls of the current request (recorded for the audit line)."""
    record = _record()
    record.acted = True
    if state.client is None:
        raise errors.LIVEKIT_NOT_CONFIGURED()
    record.calls = state.client.calls()
    return record.calls


@_moderation_view
def remove_participant() -> Response:
    """Remove a participant from a room: ``{"room_name", "participant_identity"}``."""
    state = moderation_state()
    body = _validate(_REMOVE, _read_json_object())
    auth_id = _caller().auth_id
    room_name, identity = body["room_name"], body["participant_identity"]
    _livekit(state).run(operations.remove_participant, auth_id, room_name, identity)
    _record().outcome = "removed"
    signals.notify(
        signals.participant_removed,
        auth_id=auth_id,
        room_name=room_name,
        participant_identity=identity,
        outcome="removed",
    )
    return jsonify(status="removed", room_name=room_name, participant_identity=identity)


@_moderation_view
def mute_track() -> Response:
    """Mute or unmute a published track: ``{"room_name", "participant_identity", "track_sid", "muted"}``."""
    state = moderation_state()
    body = _validate(_MUTE, _read_json_object())
    auth_id = _caller().auth_id
    room_name, identity, track_sid = body["room_name"], body["participant_identity"], body["track_sid"]
    muted = _livekit(state).run(
        operations.set_track_muted, auth_id, room_name, identity, track_sid, body["muted"]
    )
    outcome = "muted" if muted else "unmuted"
    _record().outcome = outcome
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
        # What a console needs to show a locked microphone truthfully: a participant who
        # reconnects gets their token's permission back, so no earlier answer can tell.
        "permission": _permission_json(participant.permission)
        if participant.HasField("permission")
        else None,
    }


@_moderation_view
def list_participants() -> Response:
    """Who is in a room, with each participant's tracks: ``?room_name=...``."""
    state = moderation_state()
    query = _validate(_LIST, request.args.to_dict(flat=True))
    auth_id = _caller().auth_id
    room_name = query["room_name"]
    participants = _livekit(state).run(operations.list_participants, auth_id, room_name)
    _record().outcome = "listed"
    return jsonify(room_name=room_name, participants=[_participant_json(p) for p in participants])


# -- permissions and room mute ------------------------------------------------------------------

_PERMISSIONS = UpdatePermissionsRequest()
_ROOM_MUTE = RoomMuteRequest()

ACTIONS.update({"update_permissions": "permissions", "mute_room": "room_mute"})

_AT_LEAST_ONE = "Give at least one of " + ", ".join(PERMISSION_FIELDS) + "."


def _permission_json(permission: ParticipantPermission) -> dict[str, Any]:
    return {
        "can_subscribe": permission.can_subscribe,
        "can_publish": permission.can_publish,
        "can_publish_data": permission.can_publish_data,
        "can_publish_sources": [TRACK_SOURCES.get(s, "unknown") for s in permission.can_publish_sources],
        "can_update_metadata": permission.can_update_metadata,
        "hidden": permission.hidden,
        "can_subscribe_metrics": permission.can_subscribe_metrics,
        "can_manage_agent_session": permission.can_manage_agent_session,
    }


@_moderation_view
def update_permissions() -> Response:
    """Change what a participant may do: ``{"room_name", "participant_identity", "can_publish"?,
    "can_publish_sources"?, "can_subscribe"?, "can_publish_data"?}``; only the fields given change."""
    state = moderation_state()
    body = _validate(_PERMISSIONS, _read_json_object())
    if not any(name in body for name in PERMISSION_FIELDS):
        raise errors.INVALID_REQUEST(
            "Invalid request: give at least one of " + ", ".join(PERMISSION_FIELDS) + ".",
            details={"_schema": [_AT_LEAST_ONE]},
        )
    auth_id = _caller().auth_id
    room_name, identity = body["room_name"], body["participant_identity"]
    sources = body.get("can_publish_sources")
    change = operations.PermissionChange(
        can_publish=body.get("can_publish"),
        can_publish_sources=None if sources is None else tuple(SOURCE_NUMBERS[s] for s in sources),
        can_subscribe=body.get("can_subscribe"),
        can_publish_data=body.get("can_publish_data"),
    )
    update = _livekit(state).run(operations.update_permissions, auth_id, room_name, identity, change)
    permission = _permission_json(update.after)
    unpublished = [
        {"track_sid": track.sid, "source": TRACK_SOURCES.get(track.source, "unknown")}
        for track in update.unpublished
    ]
    _record().outcome = "permissions_updated"
    # Serialised before the signal: a receiver that changes the lists it gets cannot change the answer.
    response = jsonify(
        room_name=room_name,
        participant_identity=identity,
        permission=permission,
        unpublished_tracks=unpublished,
    )
    signals.notify(
        signals.participant_permissions_changed,
        auth_id=auth_id,
        room_name=room_name,
        participant_identity=identity,
        permission=permission,
        previous=_permission_json(update.before),
        unpublished_tracks=unpublished,
        outcome="permissions_updated",
    )
    return response


@_moderation_view
def mute_room() -> Response:
    """Mute or unmute every published track of some sources in a room: ``{"room_name", "muted",
    "sources"?, "except_identities"?}``."""
    state = moderation_state()
    body = _validate(_ROOM_MUTE, _read_json_object())
    auth_id = _caller().auth_id
    room_name, muted = body["room_name"], body["muted"]
    sources, spared = body["sources"], body["except_identities"]
    outcomes = _livekit(state).run(
        operations.mute_room,
        auth_id,
        room_name,
        muted,
        frozenset(SOURCE_NUMBERS[s] for s in sources),
        frozenset(spared),
    )
    tracks: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for outcome in sorted(outcomes, key=lambda o: (o.participant_identity, o.source, o.track_sid)):
        entry: dict[str, Any] = {
            "participant_identity": outcome.participant_identity,
            "track_sid": outcome.track_sid,
            "source": TRACK_SOURCES.get(outcome.source, "unknown"),
        }
        if outcome.failure is None:
            tracks.append({**entry, "muted": outcome.muted})
        else:
            failed.append({**entry, "code": outcome.failure})
    result = "muted" if muted else "unmuted"
    _record().outcome = result
    response = jsonify(room_name=room_name, muted=muted, tracks=tracks, failed=failed)
    signals.notify(
        signals.room_mute_finished,
        auth_id=auth_id,
        room_name=room_name,
        muted=muted,
        sources=list(sources),
        except_identities=list(spared),
        tracks=tracks,
        failed=failed,
        outcome=result,
    )
    return response


_OPENAPI_PATH = "/livekit/openapi.json"


def openapi() -> Response:
    """The OpenAPI 3.1 document of these routes (public unless LIVEKIT_MODERATION_OPENAPI is off)."""
    state = moderation_state()
    if not state.settings.openapi:
        raise errors.NOT_FOUND()
    # The request's own path says where the routes are mounted, nesting included.
    return jsonify(state.openapi_document(request.path[: -len(_OPENAPI_PATH)]))


# -- bans ---------------------------------------------------------------------------------
# POST/GET/DELETE /livekit/bans (moderation routes like the ones above) and
# POST /livekit/webhook, which LiveKit calls: signed with the LiveKit API key and secret,
# so no caller is asked for, and JSON as ``application/webhook+json``.

_BAN = BanRequest()
_LIFT = LiftBanRequest()
_LIST_BANS = ListBansQuery()
ACTIONS.update(ban_participant="ban", list_bans="list_bans", lift_ban="lift_ban")
#: Views that LiveKit calls: no caller, no generic 415 (they check their own Content-Type).
_WEBHOOK_VIEWS = frozenset({"livekit_webhook"})
#: The action a webhook's ban enforcement is logged and signalled as.
ENFORCE_ACTION = "enforce_ban"


def _bans(state: ModerationState) -> BanStore:
    store = state.bans
    if store is None:  # only a state built by hand, not by init_app
        raise errors.INTERNAL_ERROR()
    return store


def _created(response: Response) -> Response:
    response.status_code = 201
    return response


@_moderation_view
def ban_participant() -> Response:
    """Ban a participant, then remove them if present.

    Body: ``{"room_name", "participant_identity", "duration_seconds", "reason"}``.
    """
    state = moderation_state()
    body = _validate(_BAN, _read_json_object())
    auth_id = _caller().auth_id
    store = _bans(state)
    room_name, identity = body["room_name"], body["participant_identity"]
    duration, reason = body["duration_seconds"], body["reason"]

    def record(owner: str) -> Ban:
        ban = Ban.starting_now(owner, room_name, identity, duration, reason, store.clock)
        store.put(ban)
        return ban

    ban, removed = _livekit(state).run(operations.ban_participant, auth_id, room_name, identity, record)
    _record().outcome = "banned"
    signals.notify(
        signals.participant_banned,
        auth_id=auth_id,
        room_name=room_name,
        participant_identity=identity,
        room_owner=ban.room_owner,
        expires_at=ban.expires_at,
        reason=reason,
        removed=removed,
        outcome="banned",
    )
    return _created(
        jsonify(
            room_name=room_name,
            participant_identity=identity,
            expires_at=rfc3339(ban.expires_at),
            reason=reason,
            removed=removed,
        )
    )


@_moderation_view
def list_bans() -> Response:
    """The active bans of a room: ``?room_name=...``.

    A caller with an auth id sees its own bans (kept even after the room closed); with none
    there, the room must be running and be the caller's, or the answer is the masked 404.
    A caller for all rooms sees the bans of every owner's room of that name.
    """
    state = moderation_state()
    query = _validate(_LIST_BANS, request.args.to_dict(flat=True))
    auth_id = _caller().auth_id
    room_name = query["room_name"]
    _record().acted = True
    bans = _bans(state).list_bans(auth_id, room_name)
    if auth_id is not None and not bans:
        _livekit(state).run(operations.check_room, auth_id, room_name)
    _record().outcome = "listed_bans"
    return jsonify(room_name=room_name, bans=[ban.to_json() for ban in bans])


@_moderation_view
def lift_ban() -> Response:
    """Lift a ban: ``{"room_name", "participant_identity"}``; no active ban is the masked 404."""
    state = moderation_state()
    body = _validate(_LIFT, _read_json_object())
    auth_id = _caller().auth_id
    room_name, identity = body["room_name"], body["participant_identity"]
    _record().acted = True
    # A caller with an auth id reaches only its own bans; one for all rooms, every owner's.
    lifted = _bans(state).lift(auth_id, room_name, identity)
    if not lifted:
        raise errors.PARTICIPANT_NOT_FOUND()
    _record().outcome = "lifted"
    for ban in lifted:
        signals.notify(
            signals.ban_lifted,
            auth_id=auth_id,
            room_name=room_name,
            participant_identity=identity,
            room_owner=ban.room_owner,
            outcome="lifted",
        )
    return jsonify(status="lifted", room_name=room_name, participant_identity=identity)


def _read_webhook_body() -> bytes:
    """The raw body, at most ``MAX_WEBHOOK_BYTES``: what LiveKit signed, byte for byte."""
    too_large = f"Webhook body is over {MAX_WEBHOOK_BYTES} bytes."
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        raise errors.PAYLOAD_TOO_LARGE(too_large)
    try:
        raw = request.stream.read(MAX_WEBHOOK_BYTES + 1)
    except HTTPException as exc:
        raise errors.BY_HTTP_STATUS.get(exc.code or 400, errors.INVALID_REQUEST)() from None
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise errors.PAYLOAD_TOO_LARGE(too_large)
    return raw


def _refuse_webhook(reason: str) -> ModerationError:
    # A wrong key in LiveKit's webhook config shows up here: say why, never the token.
    logger.warning("LiveKit webhook refused: %s", reason)
    return errors.WEBHOOK_UNAUTHORIZED()


def _verify_webhook(state: ModerationState, raw: bytes) -> WebhookEvent:
    """The event, if LiveKit signed exactly this body (livekit-api's ``WebhookReceiver``)."""
    settings = state.settings
    if not settings.livekit_configured:
        raise errors.LIVEKIT_NOT_CONFIGURED()
    token = request.headers.get("Authorization", "")
    if not token:
        raise _refuse_webhook("no Authorization token")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse_webhook("the body is not UTF-8") from None
    receiver = WebhookReceiver(TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret))
    try:
        return receiver.receive(body, token)
    except json_format.ParseError:
        # Signed by LiveKit's key, yet not a WebhookEvent.
        raise errors.INVALID_REQUEST("The webhook body is not a LiveKit WebhookEvent.") from None
    except Exception as exc:  # noqa: BLE001 - jwt errors, "hash mismatch", missing sha256: all refusals
        raise _refuse_webhook(f"{type(exc).__name__}: the token or the body's hash does not verify") from None


def _enforce_ban(state: ModerationState, event: WebhookEvent, started: float) -> bool:
    """Remove the participant who joined if they are banned there; whether LiveKit removed them."""
    room_name, identity = event.room.name, event.participant.identity
    owner = room_owner(event.room.metadata) or ""
    ban = _bans(state).get(owner, room_name, identity)
    if ban is None:
        return False
    record = _Record(
        action=ENFORCE_ACTION,
        started=started,
        target={"room_name": room_name, "participant_identity": identity},
        enforcement=True,
        owner=ban.room_owner,
    )
    setattr(g, _RECORD_KEY, record)
    try:
        outcome = _livekit(state).run(operations.enforce_ban, owner, room_name, identity)
    except ModerationError as exc:
        # Answered 5xx: LiveKit delivers the event again, and the removal is tried again.
        record.outcome = exc.code
        raise
    record.outcome = outcome
    if outcome == operations.ROOM_CHANGED:
        logger.warning(
            "LiveKit webhook: %r is banned from %r, but the room is no longer that owner's: not removed",
            identity,
            room_name,
        )
        return False
    if outcome != operations.REMOVED:
        return False
    signals.notify(
        signals.banned_participant_removed,
        room_owner=ban.room_owner,
        room_name=room_name,
        participant_identity=identity,
        participant_sid=event.participant.sid,
        event_id=event.id,
        expires_at=ban.expires_at,
        reason=ban.reason,
        outcome="removed",
    )
    return True


def livekit_webhook() -> Response:
    """LiveKit's webhook: verify it, remove a banned participant who joined, signal the event."""
    started = time.perf_counter()
    state = moderation_state()
    if request.mimetype != WEBHOOK_CONTENT_TYPE:
        raise errors.UNSUPPORTED_MEDIA_TYPE(
            f"Send LiveKit webhooks with 'Content-Type: {WEBHOOK_CONTENT_TYPE}'."
        )
    event = _verify_webhook(state, _read_webhook_body())
    removed = False
    if event.event == "participant_joined" and event.room.name and event.participant.identity:
        removed = _enforce_ban(state, event, started)
    signals.notify(
        signals.livekit_webhook_received,
        event=event.event,
        event_id=event.id,
        room_name=event.room.name or None,
        participant_identity=event.participant.identity or None,
        webhook_event=event,
        removed=removed,
    )
    return jsonify(status="received", event=event.event, id=event.id, removed=removed)


def _add_ban_rules(blueprint: ModerationBlueprint) -> None:
    blueprint.add_url_rule("/bans", view_func=ban_participant, methods=["POST"])
    blueprint.add_url_rule("/bans", view_func=list_bans, methods=["GET"])
    blueprint.add_url_rule("/bans", view_func=lift_ban, methods=["DELETE"])
    blueprint.add_url_rule("/webhook", view_func=livekit_webhook, methods=["POST"])


def make_blueprint(state: ModerationState) -> ModerationBlueprint:
    """The blueprint of one instance on one app: its routes and request hooks."""
    blueprint = ModerationBlueprint(state, __name__)
    blueprint.before_request(_before)
    blueprint.after_request(_after)
    blueprint.teardown_request(_finish)
    blueprint.register_error_handler(InternalServerError, _internal_error)
    blueprint.add_url_rule("/participant", view_func=remove_participant, methods=["DELETE"])
    blueprint.add_url_rule("/participant/mute", view_func=mute_track, methods=["POST"])
    blueprint.add_url_rule("/participants", view_func=list_participants, methods=["GET"])
    # -- permissions and room mute
    blueprint.add_url_rule("/participant/permissions", view_func=update_permissions, methods=["POST"])
    blueprint.add_url_rule("/room/mute", view_func=mute_room, methods=["POST"])
    blueprint.add_url_rule("/openapi.json", view_func=openapi, methods=["GET"])
    _add_ban_rules(blueprint)
    # Registration (here or inside a host blueprint registered later) tells the full prefix.
    blueprint.record(lambda setup: state.prefixes.add((setup.url_prefix or "").rstrip("/")))
    return blueprint
