"""Every error the extension answers, and the one function that renders them.

All errors are JSON ``{"error": "<sentence>", "code": "<CODE>"}`` (plus ``details``
for validation errors). Bodies are serialised here once, with a fixed key order,
so two refusals that must look identical are identical to the byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response

#: Error codes, one per documented failure.
INVALID_REQUEST = "INVALID_REQUEST"
MISSING_TOKEN = "MISSING_TOKEN"
UNAUTHORIZED = "UNAUTHORIZED"
PARTICIPANT_NOT_FOUND = "PARTICIPANT_NOT_FOUND"
TRACK_NOT_FOUND = "TRACK_NOT_FOUND"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
LIVEKIT_NOT_CONFIGURED = "LIVEKIT_NOT_CONFIGURED"
LIVEKIT_AUTH_FAILED = "LIVEKIT_AUTH_FAILED"
LIVEKIT_UNAVAILABLE = "LIVEKIT_UNAVAILABLE"
REMOTE_UNMUTE_DISABLED = "REMOTE_UNMUTE_DISABLED"
REMOVAL_FAILED = "REMOVAL_FAILED"
MUTE_FAILED = "MUTE_FAILED"
LIST_FAILED = "LIST_FAILED"
INTERNAL_ERROR = "INTERNAL_ERROR"


class ModerationError(Exception):
    """An expected failure, answered as JSON with ``status`` and ``code``.

    Raise it anywhere below a route; the blueprint's error handler renders it.
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
        """Render this error as a JSON response."""
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


# One instance for every masked refusal: "no such room", "someone else's room" and
# "no such participant" must be indistinguishable to the caller.
def participant_not_found() -> ModerationError:
    """The single masked 404 used for every refused room and missing participant."""
    return ModerationError(404, PARTICIPANT_NOT_FOUND, "Participant not found.")


def track_not_found() -> ModerationError:
    """The participant exists but publishes no track with the requested SID."""
    return ModerationError(404, TRACK_NOT_FOUND, "Track not found.")


def missing_token() -> ModerationError:
    return ModerationError(
        401,
        MISSING_TOKEN,
        "Authentication required: send 'Authorization: Bearer <token>' or '?api_key=<token>'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def unauthorized() -> ModerationError:
    return ModerationError(
        401, UNAUTHORIZED, "Invalid authentication token.", headers={"WWW-Authenticate": "Bearer"}
    )


def livekit_not_configured() -> ModerationError:
    return ModerationError(
        500,
        LIVEKIT_NOT_CONFIGURED,
        "LiveKit is not configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET.",
    )


def livekit_auth_failed() -> ModerationError:
    return ModerationError(
        500,
        LIVEKIT_AUTH_FAILED,
        "LiveKit rejected the configured API key or secret (or their grants).",
    )


def livekit_unavailable() -> ModerationError:
    return ModerationError(
        500, LIVEKIT_UNAVAILABLE, "LiveKit is unreachable, timed out or answered with an error."
    )


def remote_unmute_disabled() -> ModerationError:
    return ModerationError(
        500,
        REMOTE_UNMUTE_DISABLED,
        "LiveKit refused to unmute: remote unmute is disabled on the server. "
        "Set 'room: enable_remote_unmute: true' in the LiveKit server configuration.",
    )
