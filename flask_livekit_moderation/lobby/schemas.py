"""The lobby routes' request and answer schemas, and the listing's cursor."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from marshmallow import RAISE, Schema, fields, post_load, validate

from ..bans.schemas import DEFAULT_PAGE, MAX_PAGE
from ..schemas import (
    MAX_NAME_LENGTH,
    FlatList,
    RequestSchema,
    RoomQuery,
    StrictBoolean,
    cursor_field,
    moment,
    name,
    name_text,
    resume,
)
from .model import After

#: Most identities one admit or deny names.
MAX_IDENTITIES = 1000


def cursor(room_name: str, after: After) -> str:
    """The opaque cursor of ``room_name``'s lobby listing, resuming after (knocked_at, identity)."""
    raw = json.dumps([room_name, after[0], after[1]], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def read_cursor(text: str, room_name: str) -> After:
    """The (knocked_at, identity) a cursor of ``room_name``'s lobby listing resumes after;
    ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        room, knocked_at, identity = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise ValueError("not a cursor") from None
    if (
        room != room_name
        or isinstance(knocked_at, bool)
        or not isinstance(knocked_at, (int, float))
        or not math.isfinite(knocked_at)
        or not isinstance(identity, str)
    ):
        raise ValueError("not a cursor of this listing")
    return float(knocked_at), identity


class LobbyRequest(RequestSchema):
    """A lobby route's body: unlike the older routes' bodies, an unknown field is refused (400),
    so a misspelt field never passes for a request that did something else."""

    class Meta:
        unknown = RAISE


class LockRequest(LobbyRequest):
    """Body of ``POST /livekit/room/lock``."""

    room_name = name("LiveKit room name, used exactly as given.")
    locked = StrictBoolean(
        required=True,
        metadata={"description": "true: lock (only admitted identities get a token); false: unlock."},
    )


class LockResponse(Schema):
    """Answer of ``POST /livekit/room/lock``."""

    room_name = fields.String(required=True)
    locked = fields.Boolean(required=True)


def identities(description: str) -> FlatList:
    """1 to :data:`MAX_IDENTITIES` identities, each a name."""
    return FlatList(
        fields.String(
            validate=[name_text, validate.Length(max=MAX_NAME_LENGTH)],
            metadata={"minLength": 1, "maxLength": MAX_NAME_LENGTH},
        ),
        required=True,
        validate=validate.Length(min=1, max=MAX_IDENTITIES),
        metadata={
            "description": description,
            "minItems": 1,
            "maxItems": MAX_IDENTITIES,
        },
    )


class AdmitRequest(LobbyRequest):
    """Body of ``POST /livekit/lobby/admit``."""

    room_name = name("LiveKit room name, used exactly as given.")
    participant_identities = identities(
        f"Identities to admit (1 to {MAX_IDENTITIES}); one that has not knocked yet is admitted in advance."
    )


class DenyRequest(LobbyRequest):
    """Body of ``POST /livekit/lobby/deny``."""

    room_name = name("LiveKit room name, used exactly as given.")
    participant_identities = identities(f"Identities to deny (1 to {MAX_IDENTITIES}).")


class AdmitResponse(Schema):
    """Answer of ``POST /livekit/lobby/admit``."""

    room_name = fields.String(required=True)
    admitted = fields.List(
        fields.String(), required=True, metadata={"description": "The identities admitted."}
    )


class DenyResponse(Schema):
    """Answer of ``POST /livekit/lobby/deny``."""

    room_name = fields.String(required=True)
    denied = fields.List(fields.String(), required=True, metadata={"description": "The identities denied."})


class LobbyQuery(RoomQuery):
    """Query string of ``GET /livekit/lobby``: the room, and which page."""

    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={
            "description": f"Waiting people per page (1 to {MAX_PAGE}).",
            "minimum": 1,
            "maximum": MAX_PAGE,
        },
    )
    cursor = cursor_field()

    @post_load
    def _resume(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        resume(data, "after", lambda text: read_cursor(text, data["room_name"]))
        return data


class WaitingSchema(Schema):
    """One person waiting in the lobby."""

    participant_identity = fields.String(required=True)
    name = fields.String(
        required=True, allow_none=True, metadata={"description": "The name they knocked with (null: none)."}
    )
    knocked_at = moment("Their first knock since the room was locked: RFC 3339, UTC.")


class LobbyResponse(Schema):
    """Answer of ``GET /livekit/lobby``: whether the room is locked, and one page of who waits."""

    room_name = fields.String(required=True)
    locked = fields.Boolean(required=True)
    waiting = fields.List(
        fields.Nested(WaitingSchema),
        required=True,
        metadata={"description": "Who waits, in knock order (first knock first)."},
    )
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass it as `cursor` for the next page; null: this was the last page."},
    )
