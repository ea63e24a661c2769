"""The LiveKit call sequences behind bans.

| operation   | LiveKit calls                                                              |
|-------------|----------------------------------------------------------------------------|
| ban         | ListRooms, then (ban recorded) RemoveParticipant; any caller               |
| list bans   | ListRooms, only when a caller with an auth id has no ban in that room      |
| enforce_ban | ListRooms, then RemoveParticipant if the room is still the ban owner's     |

Every RemoveParticipant done for a ban carries the ban's ``revoke_token_ts``
(:attr:`~.model.Ban.revoke_token_ts`), so LiveKit Cloud also refuses the identity's older tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livekit.api import TwirpError

from .. import errors
from ..access import check_room, may_access, refusal, room_owner
from ..client import RoomCalls
from .model import Ban


async def remove_banned(lk: RoomCalls, ban: Ban, room_name: str, identity: str) -> bool:
    """RemoveParticipant of ``identity`` for ``ban``, with its ``revoke_token_ts``; ``False`` when
    LiveKit says the identity is not in the room (``not_found``), 500 ``REMOVAL_FAILED`` for
    another refusal.

    ``identity`` is the participant's real identity as LiveKit knows it: the ban is kept under its
    key (:meth:`~..state.ModerationState.identity_key`), which may differ. Sent through the
    request's :class:`~..client.RoomCalls` (recorded, under its deadline).
    """
    try:
        await lk.remove_participant(room_name, identity, revoke_token_ts=ban.revoke_token_ts)
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
    record: Callable[[str], Ban],
) -> tuple[Ban, bool]:
    """Ban ``identity`` from ``room_name`` and remove them if present.

    The room must exist, and be the caller's when the caller has an auth id (else the masked
    404). ``record(owner)`` stores the ban for the room's owner as LiveKit names it (``""``
    when none) before the removal, in a worker thread (it does blocking I/O); its result is
    returned with whether LiveKit removed someone.
    """
    try:
        room = await lk.find_room(room_name)
    except TwirpError as exc:
        raise refusal(exc, errors.REMOVAL_FAILED) from None
    if room is None or not may_access(auth_id, room):
        raise errors.PARTICIPANT_NOT_FOUND()
    ban = await asyncio.to_thread(record, room_owner(room.metadata) or "")
    return ban, await remove_banned(lk, ban, room_name, identity)


async def check_bans_room(lk: RoomCalls, auth_id: str, room_name: str) -> None:
    """The masked 404 unless ``room_name`` exists and is ``auth_id``'s (listing bans when it has none)."""
    try:
        await check_room(lk, auth_id, room_name, errors.ROOM_NOT_FOUND)
    except TwirpError as exc:
        raise refusal(exc, errors.LIST_FAILED, errors.ROOM_NOT_FOUND) from None


#: What :func:`enforce_ban` did.
REMOVED, NOT_PRESENT, ROOM_CHANGED = "removed", "not_present", "room_changed"


async def enforce_ban(lk: RoomCalls, ban: Ban, identity: str) -> str:
    """Remove ``identity``, banned by ``ban``, who joined the ban owner's room.

    The webhook's event is signed, but an old one (LiveKit retries late; a signed request
    lives five minutes) may describe a room that has since closed and been created again by
    another owner. So the room as LiveKit has it now must still be ``owner``'s: otherwise
    nothing is removed (:data:`ROOM_CHANGED`).
    """
    try:
        room = await lk.find_room(ban.room_name)
    except TwirpError:
        raise errors.REMOVAL_FAILED() from None
    if room is None or (room_owner(room.metadata) or "") != ban.owner:
        return ROOM_CHANGED
    return REMOVED if await remove_banned(lk, ban, ban.room_name, identity) else NOT_PRESENT
