"""The LiveKit call sequences behind the participant routes, with the fewest round trips possible.

| operation   | caller with an auth id                              | caller for all rooms             |
|-------------|-----------------------------------------------------|----------------------------------|
| remove      | ListRooms, then RemoveParticipant                   | RemoveParticipant                |
| mute        | ListRooms + GetParticipant at once, then Mute...    | GetParticipant, then Mute...     |
| list        | ListRooms + ListParticipants at once                | ListParticipants                 |
| permissions | ListRooms + GetParticipant at once, then Update...  | GetParticipant, then Update...   |
| room mute   | ListRooms + ListParticipants at once, then every    | ListParticipants, then every     |
|             | MutePublishedTrack at once (bounded)                | MutePublishedTrack at once       |

Each is a coroutine run by :meth:`~..client.RoomCalls.run` on the client's loop. The calls
of :class:`~..client.RoomCalls` already turned transport failures, 5xx and 401s into
:class:`~..errors.ModerationError`; what reaches an operation as a ``TwirpError`` is a
refusal from a LiveKit that is up, interpreted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from livekit.api import TwirpError
from livekit.protocol.models import (
    ParticipantInfo,
    ParticipantPermission,
    TrackInfo,
    TrackSource,
    TrackType,
)

from .. import errors
from ..access import beside_room_check, check_room, refusal
from ..client import RoomCalls, fans_out
from ..errors import ErrorCode, ModerationError

T = TypeVar("T")


async def remove_participant(
    lk: RoomCalls, auth_id: str | None, room_name: str, identity: str, *, removed_earlier: bool = False
) -> None:
    """Remove ``identity`` from ``room_name`` if the caller may moderate that room.

    ``removed_earlier``: an earlier attempt (with the same ``Idempotency-Key``) sent this removal
    and got no answer (``LIVEKIT_OUTCOME_UNKNOWN``). A participant LiveKit no longer has in the
    caller's room was then removed by it: the answer is a success, not the 404. The room check
    still comes first: another tenant's room is the masked 404 whatever happened before.
    """
    try:
        if auth_id is not None:
            # Sequential, not beside: a removal must never reach a room that is not the caller's.
            await check_room(lk, auth_id, room_name)
    except TwirpError as exc:
        raise refusal(exc, errors.REMOVAL_FAILED) from None
    try:
        await lk.remove_participant(room_name, identity)
    except TwirpError as exc:
        if removed_earlier and exc.code == "not_found":
            return
        raise refusal(exc, errors.REMOVAL_FAILED) from None


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
        participant = await beside_room_check(lk, auth_id, room_name, lk.get_participant(room_name, identity))
    except TwirpError as exc:
        raise refusal(exc, errors.MUTE_FAILED) from None
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
        return await beside_room_check(
            lk, auth_id, room_name, lk.list_participants(room_name), errors.ROOM_NOT_FOUND
        )
    except TwirpError:
        # LiveKit answers an unknown room with an empty list, so any refusal here is a failure.
        raise errors.LIST_FAILED() from None


#: MutePublishedTrack calls the room mutes of one app and process keep in flight at once, all
#: together (so two big room mutes cannot flood LiveKit or the process's connections). Every call
#: of a room mute is started together up to this bound, so a room of up to this many tracks costs
#: two round trips (the listing, then the mutes) and each further batch of this size about one
#: more. 128 rather than 64 (``benchmarks/room_mute.py`` at 20 ms per call, 1,000 participants:
#: 64 needs 16 batches, at least 320 ms of round trips alone, against the 400 ms target; with
#: 128, eight); 64 rather than 32 made a 50-participant room one batch instead of two.
ROOM_MUTE_CONCURRENCY = 128


@dataclass(frozen=True)
class PermissionChange:
    """The permission fields a moderator gives; ``None`` means "keep what LiveKit has"."""

    can_publish: bool | None = None
    #: TrackSource numbers; empty means every source, as in LiveKit.
    can_publish_sources: tuple[int, ...] | None = None
    can_subscribe: bool | None = None
    can_publish_data: bool | None = None


@dataclass(frozen=True)
class PermissionUpdate:
    """What a permission update did: the permission before and after, and the tracks it cost."""

    before: ParticipantPermission
    after: ParticipantPermission
    #: Tracks the participant published before and LiveKit unpublished for the new permission.
    unpublished: tuple[TrackInfo, ...]


def merged_permission(current: ParticipantPermission, change: PermissionChange) -> ParticipantPermission:
    """``current`` with only the fields of ``change`` replaced: what UpdateParticipant must get.

    LiveKit's UpdateParticipant replaces the WHOLE permission (livekit/protocol ``auth/grants.go``
    ``UpdateFromPermission``): every field not sent becomes false. So the full current
    permission is sent back with the given fields changed.
    """
    merged = ParticipantPermission()
    merged.CopyFrom(current)
    if change.can_publish is not None:
        merged.can_publish = change.can_publish
    if change.can_subscribe is not None:
        merged.can_subscribe = change.can_subscribe
    if change.can_publish_data is not None:
        merged.can_publish_data = change.can_publish_data
    if change.can_publish_sources is not None:
        del merged.can_publish_sources[:]
        # In LiveKit's order of sources, whatever order the caller named them in.
        merged.can_publish_sources.extend(cast("list[TrackSource]", sorted(change.can_publish_sources)))
    return merged


def may_publish(permission: ParticipantPermission, track: TrackInfo) -> bool:
    """Whether LiveKit lets a track stay published under ``permission`` (``GetCanPublishSource``;
    data tracks follow ``can_publish_data``)."""
    if track.type == TrackType.DATA:
        return permission.can_publish_data
    if not permission.can_publish:
        return False
    return not permission.can_publish_sources or track.source in permission.can_publish_sources


async def update_permissions(
    lk: RoomCalls, auth_id: str | None, room_name: str, identity: str, change: PermissionChange
) -> PermissionUpdate:
    """Change only the given permission fields of ``identity`` in ``room_name``.

    GetParticipant (beside the room check) reads the current permission, UpdateParticipant
    sends it back merged with the change. The two are not atomic: a permission changed by
    someone else between them is overwritten (LiveKit offers no compare-and-set).
    """
    try:
        participant = await beside_room_check(lk, auth_id, room_name, lk.get_participant(room_name, identity))
    except TwirpError as exc:
        raise refusal(exc, errors.PERMISSION_UPDATE_FAILED) from None
    if not participant.HasField("permission"):
        # Merging into nothing would send all-false: refuse rather than cut everything.
        raise errors.PERMISSION_UPDATE_FAILED(
            "LiveKit did not report the participant's current permission; nothing was changed."
        )
    wanted = merged_permission(participant.permission, change)
    try:
        updated = await lk.update_participant_permission(room_name, identity, wanted)
    except TwirpError as exc:
        # not_found: the participant left between the two calls.
        raise refusal(exc, errors.PERMISSION_UPDATE_FAILED) from None
    after = updated.permission
    remaining = {track.sid for track in updated.tracks}
    unpublished = tuple(
        track for track in participant.tracks if track.sid not in remaining and not may_publish(after, track)
    )
    return PermissionUpdate(participant.permission, after, unpublished)


@dataclass(frozen=True)
class TrackMuteOutcome:
    """One track of a room mute: the state LiveKit reports, or why it could not be changed."""

    participant_identity: str
    track_sid: str
    source: int
    #: The muted state LiveKit reported; ``None`` when the track failed.
    muted: bool | None = None
    #: The failure's code (one of ``schemas.ROOM_MUTE_FAILURES``); ``None`` when it worked.
    failure: str | None = None


#: Failures that are the server's, not the track's: when every track fails with one of them,
#: the whole request answers that error.
_REQUEST_FAILURES = {
    errors.LIVEKIT_UNAVAILABLE.code: errors.LIVEKIT_UNAVAILABLE,
    errors.REMOTE_UNMUTE_DISABLED.code: errors.REMOTE_UNMUTE_DISABLED,
}


async def _mute_one(
    lk: RoomCalls,
    slots: asyncio.Semaphore,
    room_name: str,
    identity: str,
    track: TrackInfo,
    muted: bool,
) -> TrackMuteOutcome:
    def failed(error: ErrorCode) -> TrackMuteOutcome:
        return TrackMuteOutcome(identity, track.sid, track.source, failure=error.code)

    async with slots:
        try:
            answer = await lk.mute_published_track(room_name, identity, track.sid, muted)
        except TwirpError as exc:
            if not muted and exc.code == "failed_precondition":
                return failed(errors.REMOTE_UNMUTE_DISABLED)
            if exc.code == "not_found":
                return failed(errors.PARTICIPANT_NOT_FOUND)
            return failed(errors.MUTE_FAILED)
        except ModerationError as exc:
            # A 5xx or transport failure of this one call; LIVEKIT_AUTH_FAILED fails them all.
            if exc.code != errors.LIVEKIT_UNAVAILABLE.code:
                raise
            return failed(errors.LIVEKIT_UNAVAILABLE)
    if answer is None:  # unpublished since the listing: LiveKit answers with no track
        return failed(errors.TRACK_NOT_FOUND)
    return TrackMuteOutcome(identity, track.sid, track.source, muted=answer.muted)


async def _all_at_once(calls: list[Coroutine[Any, Any, T]], width: int) -> list[T]:
    """Await every call, ``width`` at a time, in order of the list; the results in that order.
    The first unexpected failure cancels the others.

    ``width`` tasks take the calls one after another (rather than a task per call, each
    waiting on the bound): a room mute of 1,000 tracks then makes ``width`` tasks, not 1,000.
    """
    results: list[Any] = [None] * len(calls)
    pending = iter(enumerate(calls))

    async def worker() -> None:
        for index, call in pending:
            results[index] = await call

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(width, len(calls)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        for _, call in pending:
            call.close()  # never started
        raise
    return results


@fans_out
async def mute_room(
    lk: RoomCalls,
    auth_id: str | None,
    room_name: str,
    muted: bool,
    sources: frozenset[int],
    except_identities: frozenset[str],
) -> list[TrackMuteOutcome]:
    """Mute or unmute every published track of ``sources`` in the room, but those of
    ``except_identities``: ListParticipants (beside the room check), then every
    MutePublishedTrack at once, at most :data:`ROOM_MUTE_CONCURRENCY` in flight (with the other
    room mutes of the app in this process).

    A track that cannot be changed is an outcome with a ``failure``, not an error of the
    request, unless every track failed for the server's reason (LiveKit unavailable, remote
    unmute disabled): then that error is raised.
    """
    try:
        participants = await beside_room_check(
            lk, auth_id, room_name, lk.list_participants(room_name), errors.ROOM_NOT_FOUND
        )
    except TwirpError:
        raise errors.ROOM_MUTE_FAILED() from None
    slots = lk.shared_slots("room_mute", ROOM_MUTE_CONCURRENCY)
    outcomes = await _all_at_once(
        [
            _mute_one(lk, slots, room_name, participant.identity, track, muted)
            for participant in participants
            if participant.identity not in except_identities
            for track in participant.tracks
            if track.source in sources
        ],
        ROOM_MUTE_CONCURRENCY,
    )
    failures = {outcome.failure for outcome in outcomes}
    if len(failures) == 1:
        (failure,) = failures
        if failure in _REQUEST_FAILURES:
            raise _REQUEST_FAILURES[failure]()
    return outcomes
