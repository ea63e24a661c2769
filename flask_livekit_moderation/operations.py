"""The LiveKit call sequences behind each route, with the fewest round trips possible.

| operation | caller with an auth id                              | caller for all rooms             |
|-----------|-----------------------------------------------------|----------------------------------|
| remove    | ListRooms, then RemoveParticipant                   | RemoveParticipant                |
| mute      | ListRooms + GetParticipant at once, then Mute...    | GetParticipant, then Mute...     |
| list      | ListRooms + ListParticipants at once                | ListParticipants                 |

Each is a coroutine run by :meth:`~.client.RoomCalls.run` on the client's loop. The calls
of :class:`~.client.RoomCalls` already turned transport failures, 5xx and 401s into
:class:`~.errors.ModerationError`; what reaches an operation as a ``TwirpError`` is a
refusal from a LiveKit that is up, interpreted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from livekit.api import TwirpError
from livekit.protocol.models import ParticipantInfo

from . import errors
from .access import may_access, room_owner
from .client import RoomCalls
from .errors import ErrorCode, ModerationError

T = TypeVar("T")


def _refusal(exc: TwirpError, failure: ErrorCode) -> ModerationError:
    """A LiveKit refusal: ``not_found`` is the masked 404, anything else the route's failure."""
    if exc.code == "not_found":
        return errors.PARTICIPANT_NOT_FOUND()
    return failure()


async def _check_room(lk: RoomCalls, auth_id: str, room_name: str) -> None:
    """The masked 404 unless the room exists and its metadata names ``auth_id``."""
    if not may_access(auth_id, await lk.find_room(room_name)):
        raise errors.PARTICIPANT_NOT_FOUND()


async def _beside_room_check(
    lk: RoomCalls, auth_id: str | None, room_name: str, call: Coroutine[Any, Any, T]
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
        await _check_room(lk, auth_id, room_name)
    except BaseException:
        task.cancel()
        # Its outcome is of no interest any more; fetch it so asyncio does not log it.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise
    return await task


async def remove_participant(lk: RoomCalls, auth_id: str | None, room_name: str, identity: str) -> None:
    """Remove ``identity`` from ``room_name`` if the caller may moderate that room."""
    try:
        if auth_id is not None:
            # Sequential, not beside: a removal must never reach a room that is not the caller's.
            await _check_room(lk, auth_id, room_name)
        await lk.remove_participant(room_name, identity)
    except TwirpError as exc:
        raise _refusal(exc, errors.REMOVAL_FAILED) from None


async def set_track_muted(
    lk: RoomCalls,
    auth_id: str | None,
    room_name: str,
    identity: str,
    track_sid: str,
    muted: bool,
) -> bool:
    """Mute or unmute one published track; returns the muted state LiveKit reports.

    GetParticipant, not MutePublishedTrack, is what says "no such participant" or "no such
    track": LiveKit answers a mute for an unknown participant only after its RPC wait, as a
    503, and a mute of an unknown track with 200 and no track.
    """
    try:
        participant = await _beside_room_check(
            lk, auth_id, room_name, lk.get_participant(room_name, identity)
        )
    except TwirpError as exc:
        raise _refusal(exc, errors.MUTE_FAILED) from None
    if not any(track.sid == track_sid for track in participant.tracks):
        raise errors.TRACK_NOT_FOUND()
    try:
        track = await lk.mute_published_track(room_name, identity, track_sid, muted)
    except TwirpError as exc:
        if not muted and exc.code == "failed_precondition":
            raise errors.REMOTE_UNMUTE_DISABLED() from None
        raise errors.MUTE_FAILED() from None
    # The track can be unpublished between the two calls; LiveKit then answers with no track.
    if track is None:
        raise errors.TRACK_NOT_FOUND()
    return track.muted


async def list_participants(lk: RoomCalls, auth_id: str | None, room_name: str) -> Sequence[ParticipantInfo]:
    """The participants of ``room_name`` (none for an unknown room, when for all rooms)."""
    try:
        return await _beside_room_check(lk, auth_id, room_name, lk.list_participants(room_name))
    except TwirpError:
        # LiveKit answers an unknown room with an empty list, so any refusal here is a failure.
        raise errors.LIST_FAILED() from None


# -- bans ---------------------------------------------------------------------------------
#
# | operation   | LiveKit calls                                                              |
# |-------------|----------------------------------------------------------------------------|
# | ban         | ListRooms, then (ban recorded) RemoveParticipant; any caller               |
# | check_room  | ListRooms (listing bans when a caller with an auth id has none there)       |
# | enforce_ban | ListRooms, then RemoveParticipant if the room is still the ban owner's     |


async def _remove_if_present(lk: RoomCalls, room_name: str, identity: str) -> bool:
    """Remove ``identity``; ``False`` when LiveKit says it is not in the room."""
    try:
        await lk.remove_participant(room_name, identity)
    except TwirpError as exc:
        if exc.code == "not_found":
            return False
        raise errors.REMOVAL_FAILED() from None
    return True


async def ban_participant(
    lk: RoomCalls,
    auth_id: str | None,
    room_name: str,
    identity: str,
    record: Callable[[str], T],
) -> tuple[T, bool]:
    """Ban ``identity`` from ``room_name`` and remove them if present.

    The room must exist, and be the caller's when the caller has an auth id (else the masked
    404). ``record(owner)`` stores the ban for the room's owner as LiveKit names it (``""``
    when none) before the removal, in a worker thread (it does blocking I/O); its result is
    returned with whether LiveKit removed someone.
    """
    try:
        room = await lk.find_room(room_name)
    except TwirpError as exc:
        raise _refusal(exc, errors.REMOVAL_FAILED) from None
    if room is None or not may_access(auth_id, room):
        raise errors.PARTICIPANT_NOT_FOUND()
    recorded = await asyncio.to_thread(record, room_owner(room.metadata) or "")
    return recorded, await _remove_if_present(lk, room_name, identity)


async def check_room(lk: RoomCalls, auth_id: str, room_name: str) -> None:
    """The masked 404 unless ``room_name`` exists and is ``auth_id``'s."""
    try:
        await _check_room(lk, auth_id, room_name)
    except TwirpError as exc:
        raise _refusal(exc, errors.LIST_FAILED) from None


async def current_owner(lk: RoomCalls, room_name: str) -> str | None:
    """The owner LiveKit names for ``room_name`` now (``""``: none), ``None`` when it is not running."""
    try:
        room = await lk.find_room(room_name)
    except TwirpError:
        raise errors.LIST_FAILED() from None
    return None if room is None else room_owner(room.metadata) or ""


#: What :func:`enforce_ban` did.
REMOVED, NOT_PRESENT, ROOM_CHANGED = "removed", "not_present", "room_changed"


async def enforce_ban(lk: RoomCalls, owner: str, room_name: str, identity: str) -> str:
    """Remove a banned participant who joined ``owner``'s room ``room_name``.

    The webhook's event is signed, but an old one (LiveKit retries late; a signed request
    lives five minutes) may describe a room that has since closed and been created again by
    another owner. So the room as LiveKit has it now must still be ``owner``'s: otherwise
    nothing is removed (:data:`ROOM_CHANGED`).
    """
    try:
        room = await lk.find_room(room_name)
    except TwirpError:
        raise errors.REMOVAL_FAILED() from None
    if room is None or (room_owner(room.metadata) or "") != owner:
        return ROOM_CHANGED
    return REMOVED if await _remove_if_present(lk, room_name, identity) else NOT_PRESENT
