"""Every error the extension answers, defined once, and the one way they are rendered.

Each code below is an :class:`ErrorCode`: its HTTP status, its default sentence and what it
means. Routes and operations raise ``PARTICIPANT_NOT_FOUND()`` (a :class:`ModerationError`);
the OpenAPI document, the docs' errors page and the tests read this same table.

Every error is JSON ``{"error": "<sentence>", "code": "<CODE>"}`` (plus ``details`` for
validation errors). Bodies are serialised here once, with a fixed key order, so two refusals
that must look identical are identical to the byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response

from .config import MAX_BODY_BYTES


class ModerationError(Exception):
    """An expected failure, answered as JSON with HTTP ``status`` and error ``code``.

    Raise one anywhere below a route (usually by calling an :class:`ErrorCode`, e.g.
    ``errors.PARTICIPANT_NOT_FOUND()``). The extension renders it unless the host app
    registered its own ``@app.errorhandler(ModerationError)``, which then wins.
    ``details`` carries per-field validation messages for ``INVALID_REQUEST``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        """Render this error as the extension's JSON response."""
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        response = Response(
            json.dumps(body, ensure_ascii=False, default=str),
            status=self.status,
            mimetype="application/json",
        )
        response.headers.update(self.headers)
        return response


@dataclass(frozen=True)
class ErrorCode:
    """One documented error: its code, HTTP status, default sentence and meaning.

    Calling it builds the :class:`ModerationError` to raise; ``message`` replaces the
    default sentence where the failure has a more precise one.
    """

    code: str
    status: int
    message: str
    description: str
    headers: tuple[tuple[str, str], ...] = ()

    def __call__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModerationError:
        return ModerationError(
            self.status,
            self.code,
            self.message if message is None else message,
            details=details,
            headers={**dict(self.headers), **dict(headers or {})},
        )


_BEARER = (("WWW-Authenticate", "Bearer"),)

INVALID_REQUEST = ErrorCode(
    "INVALID_REQUEST",
    400,
    "Invalid request.",
    "Body not JSON or not an object; a field missing, of the wrong type, empty or only whitespace, "
    "over 256 characters; `details` names each field.",
)
MISSING_TOKEN = ErrorCode(
    "MISSING_TOKEN",
    401,
    "Authentication required: send 'Authorization: Bearer <token>' or '?api_key=<token>'.",
    "Auth is required and the request carries no token (and the request loader, if any, "
    "recognised no caller).",
    _BEARER,
)
UNAUTHORIZED = ErrorCode(
    "UNAUTHORIZED",
    401,
    "Invalid authentication token.",
    "The token matches no secret and the resolver (if any) refused it, returned a blank id, "
    "or raised `Unauthorized`.",
    _BEARER,
)
FORBIDDEN = ErrorCode(
    "FORBIDDEN",
    403,
    "Forbidden.",
    "The host's resolver or request loader raised `werkzeug.exceptions.Forbidden`.",
)
INSUFFICIENT_SCOPE = ErrorCode(
    "INSUFFICIENT_SCOPE",
    403,
    "This credential lacks the scope this route needs.",
    "The caller's credential does not hold the route's scope (its `scopes`, `docs/scopes.md`); the "
    "message and `WWW-Authenticate` name the scope needed. Decided before anything else is looked "
    "at: the same answer for any room.",
)
PARTICIPANT_NOT_FOUND = ErrorCode(
    "PARTICIPANT_NOT_FOUND",
    404,
    "Participant not found.",
    "The room does not exist, is not the caller's, or the participant is not in it: one "
    "identical body for all.",
)
ROOM_NOT_FOUND = ErrorCode(
    "ROOM_NOT_FOUND",
    404,
    "Room not found.",
    "A route about a whole room (the participants listing, room mute, the bans listing): the room "
    "does not exist or is not the caller's: one identical body for both.",
)
TRACK_NOT_FOUND = ErrorCode(
    "TRACK_NOT_FOUND",
    404,
    "Track not found.",
    "The participant publishes no track with that SID.",
)
NOT_FOUND = ErrorCode("NOT_FOUND", 404, "Not found.", "No route at this path under the extension's prefix.")
METHOD_NOT_ALLOWED = ErrorCode(
    "METHOD_NOT_ALLOWED", 405, "Method not allowed.", "The route exists but not with this method."
)
PAYLOAD_TOO_LARGE = ErrorCode(
    "PAYLOAD_TOO_LARGE",
    413,
    f"Request body is over {MAX_BODY_BYTES} bytes.",
    f"The request body is over {MAX_BODY_BYTES // 1024} KiB.",
)
UNSUPPORTED_MEDIA_TYPE = ErrorCode(
    "UNSUPPORTED_MEDIA_TYPE",
    415,
    "Send the request body as JSON with 'Content-Type: application/json'.",
    "A DELETE or POST whose Content-Type is not `application/json` (or `application/*+json`). "
    "This is what stops cross-site form posts.",
)
RATE_LIMITED = ErrorCode(
    "RATE_LIMITED",
    429,
    "Too many requests; try again after the Retry-After seconds.",
    "The host app's rate limit (e.g. Flask-Limiter's `default_limits`) refused the request before "
    "the extension saw it; rendered in the extension's shape with `Retry-After` (the seconds until "
    "the limit lets the caller through again). No route of the extension limits by itself.",
)
LIVEKIT_NOT_CONFIGURED = ErrorCode(
    "LIVEKIT_NOT_CONFIGURED",
    500,
    "LiveKit is not configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET.",
    "No LiveKit URL, API key or secret.",
)
LIVEKIT_AUTH_FAILED = ErrorCode(
    "LIVEKIT_AUTH_FAILED",
    500,
    "LiveKit rejected the configured API key or secret (or their grants).",
    "LiveKit answered 401: the configured API key/secret (or its grants) is wrong.",
)
LIVEKIT_UNAVAILABLE = ErrorCode(
    "LIVEKIT_UNAVAILABLE",
    503,
    "LiveKit is unreachable, timed out or answered with an error.",
    "LiveKit unreachable, no answer within the deadline before any change was sent, a 5xx, a "
    "redirect or an unusable answer; or the circuit breaker is open after repeated failures: "
    "nothing was changed. `Retry-After` says when to try again.",
    (("Retry-After", "1"),),
)
LIVEKIT_OUTCOME_UNKNOWN = ErrorCode(
    "LIVEKIT_OUTCOME_UNKNOWN",
    503,
    "LiveKit received the change but did not answer in time: it may have been done.",
    "A write only: a change (a removal, a mute, a permission update) was sent to LiveKit and no "
    "answer came before LIVEKIT_MODERATION_TIMEOUT (or the connection broke after sending): LiveKit "
    "may have done it, or may still do it. Unlike LIVEKIT_UNAVAILABLE (nothing was done), do not "
    "assume either way: send the same request again with the same `Idempotency-Key` (a removal "
    "LiveKit completed then answers 200). `Retry-After` says when.",
    (("Retry-After", "1"),),
)
LIVEKIT_BUSY = ErrorCode(
    "LIVEKIT_BUSY",
    503,
    "Too many moderation requests are waiting on LiveKit; try again shortly.",
    "LiveKit is slow: the places this request may take (the caller's share, "
    "LIVEKIT_MODERATION_CALLER_SHARE, of the process's adaptive limit, at most "
    "LIVEKIT_MODERATION_MAX_CONCURRENCY) are held by requests whose LiveKit calls are late, or it "
    "waited LIVEKIT_MODERATION_QUEUE_TIMEOUT. While LiveKit answers in its usual time requests "
    "wait for a place instead. `Retry-After: 1`.",
    (("Retry-After", "1"),),
)
REMOTE_UNMUTE_DISABLED = ErrorCode(
    "REMOTE_UNMUTE_DISABLED",
    500,
    "LiveKit refused to unmute: remote unmute is disabled on the server. "
    "Set 'room: enable_remote_unmute: true' in the LiveKit server configuration.",
    "Unmute refused: the LiveKit server runs with `room.enable_remote_unmute: false` (its default).",
)
REMOVAL_FAILED = ErrorCode(
    "REMOVAL_FAILED",
    500,
    "LiveKit refused to remove the participant.",
    "Any other LiveKit refusal of a removal.",
)
MUTE_FAILED = ErrorCode(
    "MUTE_FAILED",
    500,
    "LiveKit refused to change the track's mute state.",
    "Any other LiveKit refusal of a mute or unmute.",
)
LIST_FAILED = ErrorCode(
    "LIST_FAILED",
    500,
    "LiveKit refused to list the participants.",
    "Any other LiveKit refusal of a listing.",
)
PERMISSION_UPDATE_FAILED = ErrorCode(
    "PERMISSION_UPDATE_FAILED",
    500,
    "LiveKit refused to change the participant's permission.",
    "Any other LiveKit refusal of a permission update, or LiveKit did not report the participant's "
    "current permission (nothing was changed).",
)
ROOM_MUTE_FAILED = ErrorCode(
    "ROOM_MUTE_FAILED",
    500,
    "LiveKit refused to list the room's participants; nothing was muted or unmuted.",
    "Room mute: any other LiveKit refusal of the room's participant listing (no track was touched).",
)

# Bans and LiveKit's webhooks.
BAN_STORE_UNAVAILABLE = ErrorCode(
    "BAN_STORE_UNAVAILABLE",
    503,
    "The ban store is unavailable; try again shortly.",
    "The ban store (LIVEKIT_MODERATION_BAN_STORE: SQLite file, Redis) could not be read or written: "
    "nothing was done, and a ban is never assumed absent. `Retry-After: 1`.",
    (("Retry-After", "1"),),
)
WEBHOOK_UNAUTHORIZED = ErrorCode(
    "WEBHOOK_UNAUTHORIZED",
    401,
    "The webhook is not signed by this server's LiveKit API key and secret.",
    "Webhook only: no `Authorization` token, a token not signed with the configured LiveKit API "
    "key and secret (or expired), or a body whose SHA-256 is not the token's `sha256` claim.",
)
WEBHOOK_EVENT_IN_PROGRESS = ErrorCode(
    "WEBHOOK_EVENT_IN_PROGRESS",
    503,
    "This LiveKit event is being handled by another delivery; try again shortly.",
    "Webhook only: the same event (its `id`) is being handled right now by another delivery, in this "
    "or another worker; nothing was done. LiveKit retries after `Retry-After: 1`; by then it is "
    "handled (200, nothing done again) or its handling failed (and this delivery does it).",
    (("Retry-After", "1"),),
)
# Safe retries (the Idempotency-Key header of POST/DELETE routes, :mod:`.idempotency`).
IDEMPOTENCY_KEY_IN_USE = ErrorCode(
    "IDEMPOTENCY_KEY_IN_USE",
    409,
    "A request with this Idempotency-Key is still being handled; try again shortly.",
    "The first request with this `Idempotency-Key` (of the same caller) is still running, in this "
    "or another worker; nothing was done by this one. Retry after `Retry-After: 1` to get its "
    "answer.",
    (("Retry-After", "1"),),
)
IDEMPOTENCY_KEY_REUSED = ErrorCode(
    "IDEMPOTENCY_KEY_REUSED",
    422,
    "This Idempotency-Key was already used for a different request.",
    "The caller already sent this `Idempotency-Key` (within 24 hours) with another method, path or "
    "body; nothing was done. Use a new key for a new request.",
)
PARTICIPANT_BANNED = ErrorCode(
    "PARTICIPANT_BANNED",
    403,
    "This participant is banned from the room.",
    "Raised by `participant_token()` in the host's own token route (`ParticipantBanned`) when the "
    "identity has an active ban; no route of the extension answers it.",
)
PARTICIPANT_NOT_ADMITTED = ErrorCode(
    "PARTICIPANT_NOT_ADMITTED",
    403,
    "This participant has not been admitted to the locked room.",
    "Raised by `participant_token()` in the host's own token route (`ParticipantNotAdmitted`) when the "
    "room is locked and no moderator admitted the identity (waiting, denied, or never knocked); checked "
    "after the ban. No route of the extension answers it.",
)
INTERNAL_ERROR = ErrorCode(
    "INTERNAL_ERROR",
    500,
    "Internal error.",
    "An unexpected failure, e.g. the host's resolver or request loader raised.",
)


def insufficient_scope(scope: str) -> ModerationError:
    """INSUFFICIENT_SCOPE naming ``scope`` (the message, and ``WWW-Authenticate`` as RFC 6750 says)."""
    return INSUFFICIENT_SCOPE(
        f"This credential lacks the '{scope}' scope this route needs.",
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
    )


def invalid_fields(details: Mapping[str, Any]) -> ModerationError:
    """INVALID_REQUEST naming the fields that failed validation, with their messages."""
    return INVALID_REQUEST(f"Invalid request: check {', '.join(sorted(map(str, details)))}.", details=details)


def body_not_an_object() -> ModerationError:
    """INVALID_REQUEST for a body that is not a JSON object."""
    return INVALID_REQUEST("Request body must be a JSON object.")


#: Every code, in the order the docs and the OpenAPI document list them.
ALL: tuple[ErrorCode, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, ErrorCode)
)
BY_CODE: dict[str, ErrorCode] = {error.code: error for error in ALL}

#: The codes werkzeug's own HTTP errors become when they happen under the extension's prefix.
BY_HTTP_STATUS: dict[int, ErrorCode] = {
    400: INVALID_REQUEST,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
}

# What routes may answer, by what they do (each route lists these and its own codes).
#: Every route with a caller.
CALLER_ERRORS: tuple[ErrorCode, ...] = (
    INVALID_REQUEST,
    MISSING_TOKEN,
    UNAUTHORIZED,
    FORBIDDEN,
    INSUFFICIENT_SCOPE,
    PARTICIPANT_NOT_FOUND,
    INTERNAL_ERROR,
)
#: Every route with a caller that acts on a whole room: the room check's 404 is worded for the
#: room, still one body for "missing" and "not yours".
ROOM_CALLER_ERRORS: tuple[ErrorCode, ...] = tuple(
    ROOM_NOT_FOUND if error is PARTICIPANT_NOT_FOUND else error for error in CALLER_ERRORS
)
#: A route that calls LiveKit.
LIVEKIT_ERRORS: tuple[ErrorCode, ...] = (
    LIVEKIT_NOT_CONFIGURED,
    LIVEKIT_AUTH_FAILED,
    LIVEKIT_UNAVAILABLE,
    LIVEKIT_BUSY,
)
#: What a write may answer besides, once its change was sent to LiveKit.
LIVEKIT_WRITE_ERRORS: tuple[ErrorCode, ...] = (LIVEKIT_OUTCOME_UNKNOWN,)
#: A route that reads a JSON body.
BODY_ERRORS: tuple[ErrorCode, ...] = (PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)
