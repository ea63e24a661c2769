"""The ban routes' request and answer schemas, and the webhook's answer."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from ..schemas import (
    ParticipantRequest,
    RoomQuery,
    StrictInteger,
    cursor_field,
    moment,
    name,
    read_cursor,
    resume,
    unicode_text,
)

#: Longest ban, in seconds (one year), and longest reason, in characters.
MAX_BAN_SECONDS = 31_536_000
MAX_REASON_LENGTH = 512
#: Bans per page of ``GET /livekit/bans``: by default, and at most.
DEFAULT_PAGE, MAX_PAGE = 100, 1000


class BanRequest(ParticipantRequest):
    """Body of ``POST /livekit/bans``."""

    participant_identity = name("Identity to ban (and remove, if present).")
    duration_seconds = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=MAX_BAN_SECONDS),
        metadata={
            "description": "How long the ban lasts, in seconds (1 to one year). Banning again replaces it.",
            "minimum": 1,
            "maximum": MAX_BAN_SECONDS,
        },
    )
    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=[unicode_text, validate.Length(max=MAX_REASON_LENGTH)],
        metadata={
            "description": "Why, for moderators (never shown to the participant by the extension).",
            "maxLength": MAX_REASON_LENGTH,
        },
    )


class LiftBanRequest(ParticipantRequest):
    """Body of ``DELETE /livekit/bans``."""

    participant_identity = name("Identity whose ban to lift.")


class ListBansQuery(RoomQuery):
    """Query string of ``GET /livekit/bans``: the room, and which page."""

    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Bans per page (1 to {MAX_PAGE}).", "minimum": 1, "maximum": MAX_PAGE},
    )
    cursor = cursor_field()

    @post_load
    def _resume(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        resume(data, "after", lambda text: read_cursor(text, data["room_name"], 2))
        return data


class BanResponse(Schema):
    """Answer of ``POST /livekit/bans`` (201)."""

    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)
    expires_at = moment("When the ban ends: RFC 3339, UTC.")
    reason = fields.String(required=True, allow_none=True)
    removed = fields.Boolean(
        required=True,
        metadata={"description": "true: the participant was in the room and LiveKit removed them."},
    )


class BanSchema(Schema):
    """One active ban."""

    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)
    room_owner = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The room owner's auth_id the ban belongs to (null: a room with no owner)."},
    )
    expires_at = moment("When the ban ends: RFC 3339, UTC.")
    banned_at = moment("When the ban was made (or last replaced): RFC 3339, UTC.")
    reason = fields.String(required=True, allow_none=True)


class ListBansResponse(Schema):
    """Answer of ``GET /livekit/bans``: one page of the active bans."""

    room_name = fields.String(required=True)
    bans = fields.List(fields.Nested(BanSchema), required=True)
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass it as `cursor` for the next page; null: this was the last page."},
    )


class LiftBanResponse(Schema):
    """Answer of ``DELETE /livekit/bans``."""

    status = fields.String(required=True, metadata={"enum": ["lifted"]})
    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)


class WebhookResponse(Schema):
    """Answer of ``POST /livekit/webhook`` to LiveKit."""

    status = fields.String(required=True, metadata={"enum": ["received"]})
    event = fields.String(
        required=True, metadata={"description": "The event's name, e.g. participant_joined."}
    )
    id = fields.String(required=True, metadata={"description": "The event's id (EV_...)."})
    removed = fields.Boolean(
        required=True,
        metadata={
            "description": "true: the event was a banned participant joining (or one not admitted "
            "to a locked room), and they were removed."
        },
    )
