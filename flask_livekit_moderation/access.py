"""Room access policy: which caller may moderate which room.

A room belongs to the tenant named by the JSON ``auth_id`` in its LiveKit metadata.
Callers without an auth id (anonymous, the backward-compatible mode) may act on every
room; callers with one may act only on rooms whose ``auth_id`` equals theirs exactly.
"""

from __future__ import annotations

import json

from livekit.protocol.models import Room


class RoomMetadataError(ValueError):
    """Room metadata cannot carry the requested ``auth_id``.

    Raised by :func:`room_metadata` when the existing metadata is not a JSON object,
    when it already names a different ``auth_id``, or when the ``auth_id`` is blank.
    """


def room_owner(metadata: str) -> str | None:
    """The ``auth_id`` a room's metadata names, or ``None`` if it names none.

    Metadata that is not JSON, not a JSON object, or whose ``auth_id`` is not a
    string names no owner: such a room is reachable only by anonymous callers.
    """
    if not metadata:
        return None
    try:
        parsed = json.loads(metadata)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    owner = parsed.get("auth_id")
    return owner if isinstance(owner, str) else None


def room_metadata(auth_id: str, existing: str = "") -> str:
    """Room metadata naming ``auth_id`` as the owner, merged into ``existing``.

    Pass the result as ``metadata`` when creating the room (``CreateRoomRequest``) or
    updating it (``UpdateRoomMetadataRequest``). Other keys of ``existing`` are kept;
    an empty ``existing`` counts as ``{}``. Giving the ``auth_id`` the room already names
    returns equivalent metadata, so the call is safe to repeat.

    Raises :class:`RoomMetadataError` when ``auth_id`` is not a non-blank string, when
    ``existing`` is not a JSON object, or when it already names another ``auth_id`` (a
    room never changes hands through this helper: a tenant cannot take over a room).
    """
    if not isinstance(auth_id, str) or not auth_id.strip():
        raise RoomMetadataError("auth_id must be a non-empty string that is not only whitespace")
    if not isinstance(existing, str):
        raise RoomMetadataError(f"existing metadata must be a str, got {type(existing).__name__}")
    if existing.strip():
        try:
            parsed = json.loads(existing)
        except (ValueError, RecursionError):
            raise RoomMetadataError("existing room metadata is not JSON; expected a JSON object") from None
        if not isinstance(parsed, dict):
            raise RoomMetadataError(
                f"existing room metadata is a JSON {_json_kind(parsed)}; expected a JSON object"
            )
    else:
        parsed = {}
    if "auth_id" in parsed and parsed["auth_id"] != auth_id:
        # The other owner's id is not quoted: it is not the caller's business.
        if not isinstance(parsed["auth_id"], str):
            raise RoomMetadataError("the room's metadata has an auth_id that is not a string")
        raise RoomMetadataError("the room's metadata already names a different auth_id")
    parsed["auth_id"] = auth_id
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def may_access(auth_id: str | None, room: Room | None) -> bool:
    """Decide whether a caller may moderate ``room``.

    ``auth_id`` is the caller's resolved id (``None`` when anonymous); ``room`` is the
    LiveKit room as ``ListRooms`` returned it, or ``None`` when it does not exist.
    The comparison is exact and case-sensitive.
    """
    if auth_id is None:
        return True
    if room is None:
        return False
    return room_owner(room.metadata) == auth_id
