"""The ban routes' request and answer schemas, and the webhook's answer."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..schemas import ParticipantRequest, RoomQuery, StrictInteger, moment, name, unicode_text

#: Longest ban, in seconds (one year), and longest reason, in characters.
MAX_BAN_SECONDS = 31_536_000
MAX_REASON_LENGTH = 512


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
    """Query string of ``GET /livekit/bans``."""


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
    """Answer of ``GET /livekit/bans``: active bans only."""

    room_name = fields.String(required=True)
    bans = fields.List(fields.Nested(BanSchema), required=True)


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
        metadata={"description": "true: the event was a banned participant joining, and they were removed."},
    )
