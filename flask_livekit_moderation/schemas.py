"""Marshmallow schemas: the request bodies they validate and the answers they document.

The same classes feed the OpenAPI document, so what is documented is what is enforced.
"""

from __future__ import annotations

from typing import Any

from livekit.protocol import models
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate


def _lower_case_names(enum: Any) -> dict[int, str]:
    return {number: name.lower() for name, number in enum.items()}


#: LiveKit's enums as the listing answers them: lower-case names, read from livekit-protocol.
#: A value newer than the installed livekit-protocol is answered as "unknown".
TRACK_TYPES = _lower_case_names(models.TrackType)
TRACK_SOURCES = _lower_case_names(models.TrackSource)
PARTICIPANT_STATES = _lower_case_names(models.ParticipantInfo.State)


def _answered(names: dict[int, str]) -> list[str]:
    return list(dict.fromkeys([*names.values(), "unknown"]))


#: Longest room name, identity or track SID accepted, in characters.
MAX_NAME_LENGTH = 256


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be empty or only whitespace.")


def _unicode_text(value: str) -> None:
    # JSON can spell lone surrogates ("\ud800"); they have no UTF-8 form, so LiveKit's
    # protobuf strings cannot carry them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode text (no lone surrogates).") from None


def _name(description: str) -> fields.String:
    return fields.String(
        required=True,
        validate=[_not_blank, _unicode_text, validate.Length(max=MAX_NAME_LENGTH)],
        metadata={"description": description, "minLength": 1, "maxLength": MAX_NAME_LENGTH},
    )


class StrictBoolean(fields.Boolean):
    """A JSON boolean and nothing else: no ``"true"``, ``1`` or ``"yes"``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class RequestSchema(Schema):
    """Base for request bodies: unknown fields are ignored, not rejected."""

    class Meta:
        unknown = EXCLUDE


class RemoveParticipantRequest(RequestSchema):
    """Body of ``DELETE /livekit/participant``."""

    room_name = _name("LiveKit room name, used exactly as given.")
    participant_identity = _name("Identity of the participant to remove.")


class MuteTrackRequest(RemoveParticipantRequest):
    """Body of ``POST /livekit/participant/mute``."""

    participant_identity = _name("Identity of the participant who published the track.")
    track_sid = _name("SID of the participant's published track (TR_...).")
    muted = StrictBoolean(required=True, metadata={"description": "true to mute, false to unmute."})


class ListParticipantsQuery(RequestSchema):
    """Query string of ``GET /livekit/participants``."""

    room_name = _name("LiveKit room name, used exactly as given.")


class RemoveParticipantResponse(Schema):
    """Answer of a successful removal."""

    status = fields.String(required=True, metadata={"enum": ["removed"]})
    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)


class MuteTrackResponse(Schema):
    """Answer of a successful mute or unmute; ``muted`` is the state LiveKit reports."""

    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)
    track_sid = fields.String(required=True)
    muted = fields.Boolean(required=True)


class TrackSchema(Schema):
    """One published track."""

    sid = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": _answered(TRACK_TYPES)})
    source = fields.String(required=True, metadata={"enum": _answered(TRACK_SOURCES)})
    muted = fields.Boolean(required=True)
    name = fields.String(
        required=True, metadata={"description": "Name the publisher gave the track (may be empty)."}
    )


class ParticipantSchema(Schema):
    """One participant of a room."""

    identity = fields.String(required=True)
    name = fields.String(required=True)
    sid = fields.String(required=True, metadata={"description": "Participant SID (PA_...)."})
    state = fields.String(required=True, metadata={"enum": _answered(PARTICIPANT_STATES)})
    joined_at = fields.Integer(required=True, metadata={"description": "Unix time, seconds."})
    is_publisher = fields.Boolean(required=True)
    tracks = fields.List(fields.Nested(TrackSchema), required=True)


class ListParticipantsResponse(Schema):
    """Answer of ``GET /livekit/participants``."""

    room_name = fields.String(required=True)
    participants = fields.List(fields.Nested(ParticipantSchema), required=True)


class ErrorResponse(Schema):
    """Every error answer."""

    error = fields.String(required=True, metadata={"description": "A sentence for humans."})
    code = fields.String(required=True, metadata={"description": "A stable machine-readable code."})
    details = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Per-field validation messages (INVALID_REQUEST only)."},
    )


# -- bans ---------------------------------------------------------------------------------

#: Longest ban, in seconds (one year), and longest reason, in characters.
MAX_BAN_SECONDS = 31_536_000
MAX_REASON_LENGTH = 512


class StrictInteger(fields.Integer):
    """A JSON integer and nothing else: no ``"60"``, ``60.5`` or ``true``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class BanRequest(RemoveParticipantRequest):
    """Body of ``POST /livekit/bans``."""

    participant_identity = _name("Identity to ban (and remove, if present).")
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
        validate=[_unicode_text, validate.Length(max=MAX_REASON_LENGTH)],
        metadata={
            "description": "Why, for moderators (never shown to the participant by the extension).",
            "maxLength": MAX_REASON_LENGTH,
        },
    )


class LiftBanRequest(RemoveParticipantRequest):
    """Body of ``DELETE /livekit/bans``."""

    participant_identity = _name("Identity whose ban to lift.")


class ListBansQuery(ListParticipantsQuery):
    """Query string of ``GET /livekit/bans``."""


def _moment(description: str) -> fields.String:
    return fields.String(required=True, metadata={"description": description, "format": "date-time"})


class BanResponse(Schema):
    """Answer of ``POST /livekit/bans`` (201)."""

    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)
    expires_at = _moment("When the ban ends: RFC 3339, UTC.")
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
    expires_at = _moment("When the ban ends: RFC 3339, UTC.")
    banned_at = _moment("When the ban was made (or last replaced): RFC 3339, UTC.")
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
