"""The LiveKit call sequences behind the lobby, and the one door every identity goes through.

| operation     | LiveKit calls                                                            |
|---------------|--------------------------------------------------------------------------|
| lock          | ListRooms, then ListParticipants (those present are admitted)            |
| unlock        | ListRooms                                                                |
| list, admit,  | ListRooms                                                                |
| deny          |                                                                          |
| enforce_lock  | ListRooms, then RemoveParticipant if the room is still the lock owner's  |

Every route needs the room running and, for a caller with an auth id, the caller's (else the
masked 404, as every room-level route answers): the room's owner as LiveKit names it is the
owner of its lobby.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livekit.api import TwirpError

from .. import errors
from ..access import check_room, refusal, room_owner
from ..client import RoomCalls
from .model import Admission

if TYPE_CHECKING:
    from ..state import ModerationState


def lobby_identity(state: ModerationState, identity: str) -> str:
    """The key the lobby keeps ``identity`` under: every identity of the lobby (a knock, an
    admission, a denial, the token check, the webhook's and the reconciler's checks) goes
    through here, so it is compared as the bans compare it (the host's ``identity_key``
    function, :meth:`~..state.ModerationState.identity_key`). LiveKit always gets the real
    identity."""
    return state.identity_key(identity)


async def lobby_owner(lk: RoomCalls, auth_id: str | None, room_name: str) -> str:
    """The owner of ``room_name``'s lobby: the running room's owner as LiveKit names it (``""``:
    none). The masked 404 when the room is not running, or is not the caller's (ListRooms)."""
    try:
        if auth_id is not None:
            await check_room(lk, auth_id, room_name, errors.ROOM_NOT_FOUND)
            return auth_id
        room = await lk.find_room(room_name)
    except TwirpError as exc:
        raise refusal(exc, errors.LIST_FAILED, errors.ROOM_NOT_FOUND) from None
    if room is None:
        raise errors.ROOM_NOT_FOUND()
    return room_owner(room.metadata) or ""


async def lock_room(
    lk: RoomCalls, auth_id: str | None, room_name: str, locked: bool
) -> tuple[str, list[str]]:
    """The lobby's owner and, when locking, who is in the room now (ListRooms, then
    ListParticipants only once the room is known to be the caller's)."""
    owner = await lobby_owner(lk, auth_id, room_name)
    if not locked:
        return owner, []
    try:
        participants = await lk.list_participants(room_name)
    except TwirpError as exc:
        raise refusal(exc, errors.LIST_FAILED, errors.ROOM_NOT_FOUND) from None
    return owner, [participant.identity for participant in participants]


#: What :func:`enforce_lock` did (as :func:`~..bans.operations.enforce_ban`).
REMOVED, NOT_PRESENT, ROOM_CHANGED = "removed", "not_present", "room_changed"


async def enforce_lock(lk: RoomCalls, refused: Admission, identity: str) -> str:
    """Remove ``identity`` (as LiveKit names it; ``refused`` is its admission), who joined the
    locked room without being admitted.

    As for a ban, the room as LiveKit has it now must still be the lock owner's (a late webhook
    may describe a room closed and opened again by another owner), and the removal carries
    ``revoke_token_ts`` (the lock's start): tokens signed before the lock are dead on LiveKit Cloud.
    """
    try:
        room = await lk.find_room(refused.room_name)
    except TwirpError:
        raise errors.REMOVAL_FAILED() from None
    if room is None or (room_owner(room.metadata) or "") != refused.owner:
        return ROOM_CHANGED
    try:
        await lk.remove_participant(refused.room_name, identity, revoke_token_ts=refused.revoke_token_ts)
    except TwirpError as exc:
        if exc.code == "not_found":
            return NOT_PRESENT
        raise errors.REMOVAL_FAILED() from None
    return REMOVED
