"""The audit log route's query string and answer."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from ..config import MAX_ACTOR_LENGTH
from ..schemas import MAX_NAME_LENGTH, RequestSchema, cursor_field, name_text, resume
from .model import ID_PATTERN

#: Entries per page of ``GET /livekit/audit``: by default, and at most.
DEFAULT_PAGE, MAX_PAGE = 100, 1000
#: Longest action name accepted as a filter.
MAX_ACTION_LENGTH = 64
_CURSOR_TAG = "audit:"


def cursor(entry_id: str) -> str:
    """The opaque cursor of a listing resuming after (older than) the entry ``entry_id``."""
    return base64.urlsafe_b64encode((_CURSOR_TAG + entry_id).encode("ascii")).decode("ascii").rstrip("=")


def read_cursor(text: str) -> str:
    """The entry id a cursor resumes after; ``ValueError`` for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor") from None
    entry_id = raw.removeprefix(_CURSOR_TAG)
    if not raw.startswith(_CURSOR_TAG) or not ID_PATTERN.fullmatch(entry_id):
        raise ValueError("not a cursor")
    return entry_id


def _optional_text(description: str, longest: int) -> fields.String:
    return fields.String(
        load_default=None,
        validate=[name_text, validate.Length(max=longest)],
        metadata={"description": description, "maxLength": longest},
    )


def _moment(description: str) -> fields.AwareDateTime:
    return fields.AwareDateTime(
        load_default=None, format="iso", default_timezone=timezone.utc, metadata={"description": description}
    )


class AuditQuery(RequestSchema):
    """Query string of ``GET /livekit/audit``: filters, and which page."""

    room_name = _optional_text("Only this room's entries.", MAX_NAME_LENGTH)
    action = _optional_text(
        "Only this action's entries (`remove`, `mute`, `room_mute`, `permissions`, `ban`, "
        "`lift_ban`, `enforce_ban`, ...).",
        MAX_ACTION_LENGTH,
    )
    actor = _optional_text("Only entries of this acting moderator.", MAX_ACTOR_LENGTH)
    since = _moment("Only entries made at or after this moment (RFC 3339; UTC when no offset).")
    until = _moment("Only entries made at or before this moment (RFC 3339; UTC when no offset).")
    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Entries per page (1 to {MAX_PAGE}).", "minimum": 1, "maximum": MAX_PAGE},
    )
    cursor = cursor_field("Leave out for the first page; keep the same filters.", max_length=128)

    @post_load
    def _resume(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        resume(data, "before", read_cursor)
        for key in ("since", "until"):
            moment: datetime | None = data[key]
            data[key] = None if moment is None else moment.timestamp()
        return data


class AuditEntrySchema(Schema):
    """One entry of the audit log."""

    id = fields.String(
        required=True, metadata={"description": "The entry's id (sorts as entries were made)."}
    )
    at = fields.String(required=True, metadata={"description": "When: RFC 3339, UTC.", "format": "date-time"})
    owner = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The auth id whose log it is in "
            "(null: callers for all rooms, rooms with no owner)."
        },
    )
    actor = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Who acted: the credential's actor, else its auth id; null for an enforcement."
        },
    )
    action = fields.String(
        required=True,
        metadata={"description": "remove, mute, room_mute, permissions, ban, lift_ban, enforce_ban, ..."},
    )
    room_name = fields.String(required=True, allow_none=True)
    participant_identity = fields.String(required=True, allow_none=True)
    details = fields.Dict(
        required=True,
        metadata={
            "description": "The rest of the request (track_sid, muted, duration_seconds, reason, "
            "...) and what the action reports (counts, `removed`, an enforcement's `source`)."
        },
    )
    outcome = fields.String(
        required=True,
        metadata={"description": "What came of it: `removed`, `muted`, ... or the error code answered."},
    )
    status = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The HTTP status answered (null: the reconciler)."},
    )


class AuditPageSchema(Schema):
    """Answer of ``GET /livekit/audit``: one page of entries, newest first."""

    entries = fields.List(fields.Nested(AuditEntrySchema), required=True)
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Pass it as `cursor` (with the same filters) for the next page; "
            "null: this was the last page."
        },
    )
