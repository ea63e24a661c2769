"""The LiveKit call sequences behind each route, with the fewest round trips possible.

| operation | caller has an auth id                               | anonymous caller                 |
|-----------|-----------------------------------------------------|----------------------------------|
| remove    | ListRooms, then RemoveParticipant                   | RemoveParticipant                |
| mute      | ListRooms + GetParticipant at once, then Mute...    | GetParticipant, then Mute...     |
| list      | ListRooms + ListParticipants at once                | ListParticipants                 |

Each coroutine runs on the client's event loop and makes its calls through
:class:`~.client.RoomCalls` (timed out and recorded for the audit log). LiveKit failures
become :class:`ModerationError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp
from google.protobuf.message import DecodeError
from livekit.api import TwirpError
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import (
    ListParticipantsRequest,
    ListRoomsRequest,
    MuteRoomTrackRequest,
    RoomParticipantIdentity,
)

from . import errors
from .access import may_access
from .client import RoomCalls
from .errors import ModerationError

T = TypeVar("T")

#: What a transport failure looks like from livekit-api: no answer, or no usable answer.
_UNAVAILABLE = (aiohttp.ClientError, asyncio.TimeoutError, OSError, DecodeError)


def _translate(exc: BaseException, failure: errors.ErrorCode) -> ModerationError:
    """Map a LiveKit failure that has no route-specific meaning to a 500."""
    if isinstance(exc, ModerationError):
        return exc
    if isinstance(exc, TwirpError):
        if exc.status == 401:
            return errors.LIVEKIT_AUTH_FAILED()
        if exc.status >= 500:
            return errors.LIVEKIT_UNAVAILABLE()
        return failure()
    if isinstance(exc, _UNAVAILABLE):
        return errors.LIVEKIT_UNAVAILABLE()
    raise exc


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, TwirpError) and exc.code == "not_found"


def _find_room(rooms: Sequence[Room], name: str) -> Room | None:
    return next((room for room in rooms if room.name == name), None)


async def _lookup_room(lk: RoomCalls, room_name: str) -> Room | None:
    answer = await lk.call("ListRooms", lk.rooms.list_rooms(ListRoomsRequest(names=[room_name])))
    return _find_room(answer.rooms, room_name)


async def _guarded(work: Callable[[], Awaitable[T]], failure: errors.ErrorCode) -> T:
    try:
        return await work()
    except ModerationError:
        raise
    except Exception as exc:  # noqa: BLE001 - every other failure is translated or re-raised
        raise _translate(exc, failure) from None


async def remove_participant(lk: RoomCalls, auth_id: str | None, room_name: str, identity: str) -> None:
    """Remove ``identity`` from ``room_name`` if the caller may moderate that room."""

    async def work() -> None:
        if auth_id is not None and not may_access(auth_id, await _lookup_room(lk, room_name)):
            raise errors.PARTICIPANT_NOT_FOUND()
        try:
            await lk.call(
                "RemoveParticipant",
                lk.rooms.remove_participant(RoomParticipantIdentity(room=room_name, identity=identity)),
            )
        except TwirpError as exc:
            if _is_not_found(exc):
                raise errors.PARTICIPANT_NOT_FOUND() from None
            raise

    await _guarded(work, errors.REMOVAL_FAILED)


async def _alongside_room_check(
    lk: RoomCalls, auth_id: str | None, room_name: str, request: Awaitable[T]
) -> T | BaseException:
    """Await ``request``, running the room check beside it when the caller has an auth id.

    Raises the masked 404 for a refused room (whatever ``request`` did) and the room
    look-up's own failure; otherwise hands back ``request``'s result or the exception it
    raised, for the caller to interpret.
    """
    if auth_id is None:
        try:
            return await request
        except Exception as exc:  # noqa: BLE001 - handed back, as gather would
            return exc
    room, result = await asyncio.gather(_lookup_room(lk, room_name), request, return_exceptions=True)
    if isinstance(room, BaseException):
        raise room
    if not may_access(auth_id, room):
        raise errors.PARTICIPANT_NOT_FOUND()
    return result


async def _participant(lk: RoomCalls, auth_id: str | None, room_name: str, identity: str) -> ParticipantInfo:
    """GetParticipant, with the room check beside it when the caller has an auth id.

    GetParticipant, not MutePublishedTrack, is what says "no such participant": LiveKit
    answers a mute for an unknown participant only after its RPC wait, as a 503.
    """
    participant = await _alongside_room_check(
        lk,
        auth_id,
        room_name,
        lk.call(
            "GetParticipant",
            lk.rooms.get_participant(RoomParticipantIdentity(room=room_name, identity=identity)),
        ),
    )
    if isinstance(participant, BaseException):
        if _is_not_found(participant):
            raise errors.PARTICIPANT_NOT_FOUND()
        raise participant
    return participant


async def set_track_muted(
    lk: RoomCalls,
    auth_id: str | None,
    room_name: str,
    identity: str,
    track_sid: str,
    muted: bool,
) -> bool:
    """Mute or unmute one published track; returns the muted state LiveKit reports."""

    async def work() -> bool:
        participant = await _participant(lk, auth_id, room_name, identity)
        if not any(track.sid == track_sid for track in participant.tracks):
            raise errors.TRACK_NOT_FOUND()
        try:
            answer = await lk.call(
                "MutePublishedTrack",
                lk.rooms.mute_published_track(
                    MuteRoomTrackRequest(room=room_name, identity=identity, track_sid=track_sid, muted=muted)
                ),
            )
        except TwirpError as exc:
            if not muted and exc.code == "failed_precondition":
                raise errors.REMOTE_UNMUTE_DISABLED() from None
            raise
        # The track can be unpublished between the two calls; LiveKit then answers with no track.
        if not answer.HasField("track"):
            raise errors.TRACK_NOT_FOUND()
        return answer.track.muted

    return await _guarded(work, errors.MUTE_FAILED)


async def list_participants(lk: RoomCalls, auth_id: str | None, room_name: str) -> Sequence[ParticipantInfo]:
    """The participants of ``room_name`` (empty for an unknown room, when anonymous)."""

    async def work() -> Sequence[ParticipantInfo]:
        answer = await _alongside_room_check(
            lk,
            auth_id,
            room_name,
            lk.call("ListParticipants", lk.rooms.list_participants(ListParticipantsRequest(room=room_name))),
        )
        if isinstance(answer, BaseException):
            raise answer
        return answer.participants

    return await _guarded(work, errors.LIST_FAILED)
