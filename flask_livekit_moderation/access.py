"""Room access policy: which caller may moderate which room, and the check every route makes.

A room belongs to the tenant named by the JSON ``auth_id`` in its LiveKit metadata.
Callers without an auth id (anonymous, the backward-compatible mode) may act on every
room; callers with one may act only on rooms whose ``auth_id`` equals theirs exactly.
Every refusal is the masked 404: a room that is not the caller's answers exactly like one
that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from livekit.api import TwirpError
from livekit.protocol.models import Room

from . import errors
from .client import RoomCalls
from .errors import ErrorCode, ModerationError

T = TypeVar("T")


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


# -- the room check, as LiveKit calls --------------------------------------------------------


def refusal(
    exc: TwirpError, failure: ErrorCode, not_found: ErrorCode = errors.PARTICIPANT_NOT_FOUND
) -> ModerationError:
    """A LiveKit refusal: ``not_found`` is the masked 404, anything else the route's failure."""
    if exc.code == "not_found":
        return not_found()
    return failure()


async def check_room(
    lk: RoomCalls, auth_id: str, room_name: str, refused: ErrorCode = errors.PARTICIPANT_NOT_FOUND
) -> None:
    """The masked 404 unless the room exists and its metadata names ``auth_id`` (ListRooms).

    ``refused`` is that 404: ``PARTICIPANT_NOT_FOUND`` for a route about one participant,
    ``ROOM_NOT_FOUND`` for a route about the room; either way one body for "missing" and
    "not yours".
    """
    if not may_access(auth_id, await lk.find_room(room_name)):
        raise refused()


async def beside_room_check(
    lk: RoomCalls,
    auth_id: str | None,
    room_name: str,
    call: Coroutine[Any, Any, T],
    refused: ErrorCode = errors.PARTICIPANT_NOT_FOUND,
) -> T:
    """Await ``call`` with the room check running beside it (one round trip for both).

    When the room check refuses, the answer goes out at once and ``call`` is cancelled: a
    foreign room must not take longer to refuse than a room that does not exist (a listing
    of a big foreign room would otherwise tell its size through timing).
    """
    if auth_id is None:
        return await call
    task = asyncio.ensure_future(call)
    try:
        await check_room(lk, auth_id, room_name, refused)
    except BaseException:
        task.cancel()
        # Its outcome is of no interest any more; fetch it so asyncio does not log it.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise
    return await task


async def current_owner(lk: RoomCalls, room_name: str) -> str | None:
    """The owner LiveKit names for ``room_name`` now (``""``: none), ``None`` when it is not running."""
    try:
        room = await lk.find_room(room_name)
    except TwirpError:
        raise errors.LIST_FAILED() from None
    return None if room is None else room_owner(room.metadata) or ""


async def rooms_of(lk: RoomCalls, auth_id: str | None) -> list[Room]:
    """The running rooms ``auth_id`` may moderate (every room for ``None``), by name (one ListRooms)."""
    try:
        rooms = await lk.list_rooms()
    except TwirpError:
        raise errors.LIST_FAILED() from None
    return sorted((room for room in rooms if may_access(auth_id, room)), key=lambda room: room.name)
