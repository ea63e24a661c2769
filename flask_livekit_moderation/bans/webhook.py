"""``POST /livekit/webhook``: LiveKit's webhook, where a banned participant who joins is removed.

LiveKit calls it, not a moderator: there is no caller. It is signed with the LiveKit API key
and secret (verified by livekit-api's ``WebhookReceiver``) and sent as
``application/webhook+json``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from flask import request
from google.protobuf import json_format
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent

from .. import errors, signals
from ..access import room_owner
from ..errors import ModerationError
from ..lobby import operations as lobby_operations
from ..lobby.operations import lobby_identity
from ..lobby.store import lobby_store
from ..pipeline import Answer, Call, read_body
from ..routing import Routes
from . import operations
from .schemas import WebhookResponse
from .views import STATUS_MEANING, STORE_ERRORS

logger = logging.getLogger("flask_livekit_moderation")

#: Largest LiveKit webhook body accepted, in bytes; larger ones answer 413.
MAX_WEBHOOK_BYTES = 256 * 1024
#: The Content-Type LiveKit sends its webhooks with (livekit/protocol ``webhook/consts.go``).
WEBHOOK_CONTENT_TYPE = "application/webhook+json"
#: The action a webhook's ban enforcement is logged and signalled as.
ENFORCE_ACTION = "enforce_ban"
#: The action a webhook's removal of someone who joined a locked room unadmitted is logged as.
ENFORCE_LOCK_ACTION = "enforce_lock"
#: How long LiveKit signs a webhook delivery for (livekit/protocol ``webhook/resource_url_notifier.go``).
WEBHOOK_TOKEN_LIFETIME = timedelta(minutes=5)
#: How far past its ``exp`` (and before its ``nbf``) a delivery's token is still accepted. Kept at
#: livekit-api's default on purpose, and said here so an upgrade cannot change it unseen: PyJWT's one
#: leeway covers ``nbf`` too, so 0 would refuse the deliveries of a LiveKit whose clock runs a second
#: ahead, and LiveKit does not retry a 401. A replay gains nothing: see EVENT_HANDLED_SECONDS.
WEBHOOK_LEEWAY = timedelta(seconds=60)
#: Seconds an event whose ban was enforced is remembered, so a later delivery of it does nothing:
#: LiveKit retries for about 30 s, and a signed delivery is accepted for WEBHOOK_TOKEN_LIFETIME plus
#: WEBHOOK_LEEWAY, so a replay of a handled delivery is refused or finds the mark.
EVENT_HANDLED_SECONDS = 600.0
#: Seconds a delivery may hold an event beyond the LiveKit deadline while it handles it; a
#: holder that died lets the next delivery handle it after that.
EVENT_CLAIM_MARGIN = 5.0
#: The lease an event's handled mark is kept under, and its holder once handled.
EVENT_LEASE, HANDLED = "livekit-webhook-event:", "handled"
#: The outcome of a delivery of an event that was already handled.
DUPLICATE = "duplicate"

routes = Routes()


@routes.route(
    "POST",
    "/webhook",
    action=None,
    caller=False,
    operation_id="receiveLiveKitWebhook",
    answer=WebhookResponse,
    answer_description="Verified and handled; `removed` says whether a banned or unadmitted participant "
    "was removed.",
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
        errors.LIVEKIT_OUTCOME_UNKNOWN,
        errors.LIVEKIT_BUSY,
        *STORE_ERRORS,
        errors.WEBHOOK_EVENT_IN_PROGRESS,
    ),
    openapi={
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
        **STATUS_MEANING,
    },
    doc_values={
        "handled_minutes": EVENT_HANDLED_SECONDS / 60,
        "leeway_seconds": WEBHOOK_LEEWAY.total_seconds(),
    },
)
def livekit_webhook(call: Call, _: dict[str, Any]) -> Answer:
    """Receive LiveKit's webhooks (set this URL in LiveKit's `webhook.urls`)

    Called by LiveKit, not by moderators: no caller token. Verified as LiveKit signs it
    (livekit-api's WebhookReceiver): `Authorization` is a JWT signed with the configured
    LiveKit API key and secret whose `sha256` claim is the body's SHA-256, refused once more
    than {leeway_seconds:g} s past its expiry (livekit-api's leeway, for clock skew). On
    `participant_joined` by an identity banned from that owner's room, the participant is
    removed at once (ListRooms to check the room is still that owner's, then
    RemoveParticipant, which revokes the identity's tokens signed before the ban). The same
    for an identity who joins a locked room without a moderator's admission (the lobby): removed,
    revoking its tokens signed before the lock. Nothing it
    could not check is acknowledged: the store or LiveKit unavailable answers 503 with
    `Retry-After`, and LiveKit delivers the event again. An event delivered again after its ban
    was enforced does nothing (its `id` is remembered in the ban store for
    {handled_minutes:g} minutes, across workers); while another delivery handles it, 503.
    """
    if request.mimetype != WEBHOOK_CONTENT_TYPE:
        raise errors.UNSUPPORTED_MEDIA_TYPE(
            f"Send LiveKit webhooks with 'Content-Type: {WEBHOOK_CONTENT_TYPE}'."
        )
    event = _verify(call, read_body(MAX_WEBHOOK_BYTES, f"Webhook body is over {MAX_WEBHOOK_BYTES} bytes."))
    answer = Answer(
        {"status": "received", "event": event.event, "id": event.id, "removed": False}, "received"
    )
    if event.event == "participant_joined" and event.room.name and event.participant.identity:
        answer.body["removed"] = _enforce_ban(call, event, answer)
    answer.signals.append(
        (
            signals.livekit_webhook_received,
            {
                "event": event.event,
                "event_id": event.id,
                "room_name": event.room.name or None,
                "participant_identity": event.participant.identity or None,
                "webhook_event": event,
                "removed": answer.body["removed"],
            },
        )
    )
    return answer


def _claim(call: Call, event_id: str) -> str | None:
    """Claim the event for this delivery in the ban store (shared by every worker and host).

    Returns this delivery's claim, ``None`` for an event without an id (handled every time),
    or :data:`HANDLED` when the event was already handled. Another delivery handling it right
    now: 503 ``WEBHOOK_EVENT_IN_PROGRESS``, and LiveKit delivers it again. Only a handled event
    is marked so: a delivery that fails (5xx) leaves the event to the next one.
    """
    if not event_id:
        return None
    claim = f"delivery:{uuid.uuid4().hex}"
    seconds = call.state.settings.timeout + EVENT_CLAIM_MARGIN
    holder = call.state.bans.lease(EVENT_LEASE + event_id, claim, seconds)
    if holder == HANDLED:
        return HANDLED
    if holder != claim:
        raise errors.WEBHOOK_EVENT_IN_PROGRESS()
    return claim


def _refuse(reason: str) -> ModerationError:
    # A wrong key in LiveKit's webhook config shows up here: say why, never the token.
    logger.warning("LiveKit webhook refused: %s", reason)
    return errors.WEBHOOK_UNAUTHORIZED()


def _verify(call: Call, raw: bytes) -> WebhookEvent:
    """The event, if LiveKit signed exactly this body (livekit-api's ``WebhookReceiver``)."""
    settings = call.state.settings
    if not settings.livekit_configured:
        raise errors.LIVEKIT_NOT_CONFIGURED()
    token = request.headers.get("Authorization", "")
    if not token:
        raise _refuse("no Authorization token")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("the body is not UTF-8") from None
    receiver = WebhookReceiver(
        TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret, leeway=WEBHOOK_LEEWAY)
    )
    try:
        return receiver.receive(body, token)
    except json_format.ParseError:
        # Signed by LiveKit's key, yet not a WebhookEvent.
        raise errors.INVALID_REQUEST("The webhook body is not a LiveKit WebhookEvent.") from None
    except Exception as exc:  # noqa: BLE001 - jwt errors, "hash mismatch", missing sha256: all refusals
        raise _refuse(f"{type(exc).__name__}: the token or the body's hash does not verify") from None


def _enforce_ban(call: Call, event: WebhookEvent, answer: Answer) -> bool:
    """Remove the participant who joined if they are banned there, or if the room is locked and
    they were not admitted; whether LiveKit removed them.

    From here on the request is recorded as an enforcement (logged and signalled like a
    moderator's action, for the room owner); a failure answers 5xx, so LiveKit delivers the
    event again and the removal is tried again.
    """
    room_name, identity = event.room.name, event.participant.identity
    owner = room_owner(event.room.metadata) or ""
    ban = call.state.bans.get(owner, room_name, call.state.identity_key(identity))
    if ban is None:
        return _enforce_lock(call, event, answer, owner)
    outcome = _enforce_once(
        call, event, answer, ENFORCE_ACTION, ban.room_owner, operations.enforce_ban, ban, identity
    )
    if outcome == operations.ROOM_CHANGED:
        logger.warning(
            "LiveKit webhook: %r is banned from %r, but the room is no longer that owner's: not removed",
            identity,
            room_name,
        )
    if outcome != operations.REMOVED:
        return False
    answer.signals.append(
        (
            signals.banned_participant_removed,
            {
                "room_owner": ban.room_owner,
                "room_name": room_name,
                "participant_identity": identity,
                "participant_sid": event.participant.sid,
                "event_id": event.id,
                "expires_at": ban.expires_at,
                "reason": ban.reason,
                "source": "webhook",
                "outcome": "removed",
            },
        )
    )
    return True


def _enforce_lock(call: Call, event: WebhookEvent, answer: Answer, owner: str) -> bool:
    """Remove the participant who joined ``owner``'s locked room without being admitted."""
    room_name, identity = event.room.name, event.participant.identity
    refused = lobby_store(call.state.bans).admission(owner, room_name, lobby_identity(call.state, identity))
    if refused.admitted:
        return False
    outcome = _enforce_once(
        call,
        event,
        answer,
        ENFORCE_LOCK_ACTION,
        refused.room_owner,
        lobby_operations.enforce_lock,
        refused,
        identity,
    )
    if outcome == lobby_operations.ROOM_CHANGED:
        logger.warning(
            "LiveKit webhook: %r joined the locked room %r unadmitted, but the room is no longer "
            "that owner's: not removed",
            identity,
            room_name,
        )
    if outcome != lobby_operations.REMOVED:
        return False
    answer.signals.append(
        (
            signals.unadmitted_participant_removed,
            {
                "room_owner": refused.room_owner,
                "room_name": room_name,
                "participant_identity": event.participant.identity,
                "participant_sid": event.participant.sid,
                "event_id": event.id,
                "source": "webhook",
                "outcome": "removed",
            },
        )
    )
    return True


def _enforce_once(
    call: Call,
    event: WebhookEvent,
    answer: Answer,
    action: str,
    room_owner: str | None,
    operation: Callable[..., Coroutine[Any, Any, str]],
    *args: Any,
) -> str | None:
    """Run the enforcement ``operation`` once per event (claimed in the store, across workers);
    its outcome (also the answer's), ``None`` when the event was already handled."""
    call.action, call.enforcement, call.owner = action, True, room_owner
    call.target = {"room_name": event.room.name, "participant_identity": event.participant.identity}
    call.details.update(source="webhook", event_id=event.id, participant_sid=event.participant.sid)
    store = call.state.bans
    claim = _claim(call, event.id)
    if claim == HANDLED:
        answer.outcome = DUPLICATE
        call.audited = False  # enforced once already: its entry is written
        return None
    try:
        outcome: str = call.livekit().run(operation, *args)
    except BaseException:
        # Not handled: the next delivery (LiveKit's retry of this 5xx) must do it.
        if claim is not None:
            try:
                store.release(EVENT_LEASE + event.id, claim)
            except ModerationError:
                pass  # the claim expires by itself
        raise
    if claim is not None:
        store.hand_over(EVENT_LEASE + event.id, claim, HANDLED, EVENT_HANDLED_SECONDS)
    answer.outcome = outcome
    return outcome
