"""The participant routes' request and answer schemas, and LiveKit's enums as they answer them."""

from __future__ import annotations

from typing import Any, ClassVar

from livekit.protocol import models
from marshmallow import Schema, ValidationError, fields, post_load, validate

from ..schemas import (
    MAX_NAME_LENGTH,
    FlatList,
    ParticipantRequest,
    RequestSchema,
    RoomQuery,
    StrictBoolean,
    cursor_field,
    name,
    name_text,
    read_cursor,
    resume,
)


def _lower_case_names(enum: Any) -> dict[int, str]:
    return {number: name.lower() for name, number in enum.items()}


#: LiveKit's enums as the listing answers them: lower-case names, read from livekit-protocol.
#: A value newer than the installed livekit-protocol is answered as "unknown".
TRACK_TYPES = _lower_case_names(models.TrackType)
TRACK_SOURCES = _lower_case_names(models.TrackSource)
PARTICIPANT_STATES = _lower_case_names(models.ParticipantInfo.State)


def _answered(names: dict[int, str]) -> list[str]:
    return list(dict.fromkeys([*names.values(), "unknown"]))


class RemoveParticipantRequest(ParticipantRequest):
    """Body of ``DELETE /livekit/participant``."""

    room_name = name("LiveKit room name, used exactly as given.")
    participant_identity = name("Identity of the participant to remove.")


class MuteTrackRequest(ParticipantRequest):
    """Body of ``POST /livekit/participant/mute``."""

    participant_identity = name("Identity of the participant who published the track.")
    track_sid = name("SID of the participant's published track (TR_...).")
    muted = StrictBoolean(required=True, metadata={"description": "true to mute, false to unmute."})


#: Most participants one page of ``GET /livekit/participants`` may hold.
MAX_PAGE = 1000


class QueryBoolean(fields.Boolean):
    """``true`` or ``false`` in a query string, and nothing else."""

    truthy = {"true"}
    falsy = {"false"}


class ListParticipantsQuery(RoomQuery):
    """Query string of ``GET /livekit/participants``: the room, which page, which fields."""

    room_name = name("LiveKit room name, used exactly as given.")
    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={
            "description": f"Participants per page (1 to {MAX_PAGE}), in identity order. "
            "Leave out for everyone in one answer, in LiveKit's order.",
            "minimum": 1,
            "maximum": MAX_PAGE,
        },
    )
    cursor = cursor_field("Only with `limit`; leave out for the first page.")
    tracks = QueryBoolean(
        load_default=True,
        metadata={"description": "`false` leaves each participant's `tracks` out of the answer."},
    )

    @post_load
    def _resume(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data["cursor"] is not None and data["limit"] is None:
            raise ValidationError({"cursor": ["Give `limit` with `cursor`."]})
        resume(data, "after", lambda text: read_cursor(text, data["room_name"], 1)[0])
        return data


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


class PermissionSchema(Schema):
    """A participant's permission as LiveKit reports it."""

    can_subscribe = fields.Boolean(required=True)
    can_publish = fields.Boolean(required=True)
    can_publish_data = fields.Boolean(required=True)
    can_publish_sources = fields.List(
        fields.String(metadata={"enum": _answered(TRACK_SOURCES)}),
        required=True,
        metadata={
            "description": "Sources the participant may publish when `can_publish` is true; "
            "empty: every source."
        },
    )
    can_update_metadata = fields.Boolean(required=True)
    hidden = fields.Boolean(required=True)
    can_subscribe_metrics = fields.Boolean(required=True)
    can_manage_agent_session = fields.Boolean(required=True)


class ParticipantSchema(Schema):
    """One participant of a room."""

    identity = fields.String(required=True)
    name = fields.String(required=True)
    sid = fields.String(required=True, metadata={"description": "Participant SID (PA_...)."})
    state = fields.String(required=True, metadata={"enum": _answered(PARTICIPANT_STATES)})
    joined_at = fields.Integer(required=True, metadata={"description": "Unix time, seconds."})
    is_publisher = fields.Boolean(required=True)
    tracks = fields.List(
        fields.Nested(TrackSchema),
        metadata={"description": "The published tracks; left out when the listing asked `tracks=false`."},
    )
    permission = fields.Nested(
        PermissionSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "What the participant may do now, as LiveKit reports it (the same object "
            "`POST /livekit/participant/permissions` answers); null if LiveKit reported none."
        },
    )


class ListParticipantsResponse(Schema):
    """Answer of ``GET /livekit/participants``."""

    room_name = fields.String(required=True)
    participants = fields.List(fields.Nested(ParticipantSchema), required=True)
    next_cursor = fields.String(
        allow_none=True,
        metadata={
            "description": "Only with `limit`: pass it as `cursor` for the next page; "
            "null: this was the last page."
        },
    )


#: The track sources a moderator names (LiveKit's ``TrackSource``, lower-case, without
#: ``unknown``): in a permission's ``can_publish_sources`` and in a room mute's ``sources``.
SOURCE_NAMES: tuple[str, ...] = tuple(name for name in TRACK_SOURCES.values() if name != "unknown")
#: Source name -> LiveKit's ``TrackSource`` number.
SOURCE_NUMBERS: dict[str, int] = {name: number for number, name in TRACK_SOURCES.items()}
#: The permission fields a moderator may change (the others are kept as they are).
PERMISSION_FIELDS = ("can_publish", "can_publish_sources", "can_subscribe", "can_publish_data")
#: Most identities one room mute may spare.
MAX_EXCEPT_IDENTITIES = 1000


def _distinct(values: list[Any]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Must not name a source twice.")


def _sources(description: str, *, allow_empty: bool, **kwargs: Any) -> FlatList:
    checks: list[Any] = [_distinct]
    if not allow_empty:
        checks.append(validate.Length(min=1))
    return FlatList(
        fields.String(validate=validate.OneOf(SOURCE_NAMES), metadata={"enum": list(SOURCE_NAMES)}),
        validate=checks,
        metadata={
            "description": description,
            "uniqueItems": True,
            **({} if allow_empty else {"minItems": 1}),
        },
        **kwargs,
    )


class UpdatePermissionsRequest(RequestSchema):
    """Body of ``POST /livekit/participant/permissions``: only the permission fields given change."""

    #: "At least one permission field", which marshmallow cannot say in JSON Schema.
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {"anyOf": [{"required": [name]} for name in PERMISSION_FIELDS]}

    room_name = name("LiveKit room name, used exactly as given.")
    participant_identity = name("Identity of the participant whose permission changes.")
    can_publish = StrictBoolean(metadata={"description": "May publish tracks at all."})
    can_publish_sources = _sources(
        "The sources the participant may publish, replacing the current list. As in LiveKit, an "
        "empty list means every source (a plain join token's default); a list allows only the "
        "sources it names, so no list allows tracks of `unknown` source (custom tracks). "
        "Tracks of a source no longer allowed are unpublished by LiveKit and cannot be published "
        "again until it is allowed. To stop all publishing send `can_publish: false`.",
        allow_empty=True,
    )
    can_subscribe = StrictBoolean(metadata={"description": "May subscribe to others' tracks."})
    can_publish_data = StrictBoolean(metadata={"description": "May send data messages."})


class UnpublishedTrackSchema(Schema):
    """A track LiveKit unpublished because its source is no longer allowed."""

    track_sid = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": _answered(TRACK_SOURCES)})


class UpdatePermissionsResponse(Schema):
    """Answer of a permission update: the permission LiveKit now holds."""

    room_name = fields.String(required=True)
    participant_identity = fields.String(required=True)
    permission = fields.Nested(PermissionSchema, required=True)
    unpublished_tracks = fields.List(
        fields.Nested(UnpublishedTrackSchema),
        required=True,
        metadata={
            "description": "Tracks LiveKit unpublished because the new permission forbids their source."
        },
    )


class RoomMuteRequest(RequestSchema):
    """Body of ``POST /livekit/room/mute``."""

    room_name = name("LiveKit room name, used exactly as given.")
    muted = StrictBoolean(required=True, metadata={"description": "true to mute, false to unmute."})
    sources = _sources(
        'Sources whose published tracks change (default `["microphone"]`).',
        allow_empty=False,
        load_default=lambda: ["microphone"],
    )
    except_identities = FlatList(
        fields.String(
            validate=[name_text, validate.Length(max=MAX_NAME_LENGTH)],
            metadata={"minLength": 1, "maxLength": MAX_NAME_LENGTH},
        ),
        load_default=list,
        validate=validate.Length(max=MAX_EXCEPT_IDENTITIES),
        metadata={
            "description": "Identities whose tracks are left alone (e.g. the speaker). Default none.",
            "maxItems": MAX_EXCEPT_IDENTITIES,
        },
    )


class RoomMuteTrackSchema(Schema):
    """One track a room mute changed, in the state LiveKit reports."""

    participant_identity = fields.String(required=True)
    track_sid = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": list(SOURCE_NAMES)})
    muted = fields.Boolean(required=True)


#: Why a room mute could not change one track (``failed[].code``).
ROOM_MUTE_FAILURES = (
    "TRACK_NOT_FOUND",
    "PARTICIPANT_NOT_FOUND",
    "REMOTE_UNMUTE_DISABLED",
    "LIVEKIT_UNAVAILABLE",
    "MUTE_FAILED",
)


class RoomMuteFailureSchema(Schema):
    """One track a room mute could not change."""

    participant_identity = fields.String(required=True)
    track_sid = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": list(SOURCE_NAMES)})
    code = fields.String(required=True, metadata={"enum": list(ROOM_MUTE_FAILURES)})


class RoomMuteResponse(Schema):
    """Answer of ``POST /livekit/room/mute``."""

    room_name = fields.String(required=True)
    muted = fields.Boolean(required=True)
    tracks = fields.List(fields.Nested(RoomMuteTrackSchema), required=True)
    failed = fields.List(fields.Nested(RoomMuteFailureSchema), required=True)
