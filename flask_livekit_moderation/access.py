"""Room access policy: which caller may moderate which room.

A room belongs to the tenant named by the JSON ``auth_id`` in its LiveKit metadata.
Callers without an auth id (anonymous, the backward-compatible mode) may act on every
room; callers with one may act only on rooms whose ``auth_id`` equals theirs exactly.
"""

from __future__ import annotations

import json

from livekit.protocol.models import Room


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
