"""The participant routes: remove, mute, list, permissions, room mute.

Each view gets the request (:class:`~..pipeline.Call`, its caller already resolved) and its
validated input, runs its LiveKit operation and answers; its docstring is its OpenAPI summary
and description.
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

from livekit.protocol.models import ParticipantInfo, ParticipantPermission

from .. import errors, signals
from ..errors import BODY_ERRORS, CALLER_ERRORS, LIVEKIT_ERRORS, LIVEKIT_WRITE_ERRORS, ROOM_CALLER_ERRORS
from ..pipeline import Answer, Call
from ..routing import Routes
from ..schemas import cursor
from . import operations
from .operations import ROOM_MUTE_CONCURRENCY
from .schemas import (
    MAX_PAGE,
    PARTICIPANT_STATES,
    PERMISSION_FIELDS,
    SOURCE_NUMBERS,
    TRACK_SOURCES,
    TRACK_TYPES,
    ListParticipantsQuery,
    ListParticipantsResponse,
    MuteTrackRequest,
    MuteTrackResponse,
    RemoveParticipantRequest,
    RemoveParticipantResponse,
    RoomMuteRequest,
    RoomMuteResponse,
    UpdatePermissionsRequest,
    UpdatePermissionsResponse,
)

routes = Routes()


@routes.route(
    "DELETE",
    "/participant",
    action="remove",
    scope="remove",
    operation_id="removeParticipant",
    body=RemoveParticipantRequest,
    answer=RemoveParticipantResponse,
    answer_description="LiveKit removed the participant.",
    errors=(*CALLER_ERRORS, *LIVEKIT_ERRORS, *LIVEKIT_WRITE_ERRORS, *BODY_ERRORS, errors.REMOVAL_FAILED),
)
def remove_participant(call: Call, body: dict[str, Any]) -> Answer:
    """Remove a participant from a room

    Disconnects the participant. LiveKit does not revoke their access token: issue
    short-lived tokens so a removed participant cannot simply rejoin.
    """
    room_name, identity = body["room_name"], body["participant_identity"]
    removed_earlier = call.idempotency is not None and call.idempotency.after_unknown
    call.livekit().run(
        operations.remove_participant, call.auth_id, room_name, identity, removed_earlier=removed_earlier
    )
    return Answer(
        {"status": "removed", "room_name": room_name, "participant_identity": identity},
        "removed",
        [
            (
                signals.participant_removed,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "participant_identity": identity,
                    "outcome": "removed",
                },
            )
        ],
    )


@routes.route(
    "POST",
    "/participant/mute",
    action="mute",
    scope="mute",
    operation_id="muteTrack",
    body=MuteTrackRequest,
    answer=MuteTrackResponse,
    answer_description="LiveKit changed the track; `muted` is the state LiveKit reports.",
    errors=(
        *CALLER_ERRORS,
        *LIVEKIT_ERRORS,
        *LIVEKIT_WRITE_ERRORS,
        *BODY_ERRORS,
        errors.TRACK_NOT_FOUND,
        errors.REMOTE_UNMUTE_DISABLED,
        errors.MUTE_FAILED,
    ),
)
def mute_track(call: Call, body: dict[str, Any]) -> Answer:
    """Mute or unmute a participant's published track

    Unmuting needs `room.enable_remote_unmute: true` in the LiveKit server configuration
    (off by default: REMOTE_UNMUTE_DISABLED). A muted participant can unmute themselves
    unless their permissions forbid publishing.
    """
    room_name, identity, track_sid = body["room_name"], body["participant_identity"], body["track_sid"]
    muted = call.livekit().run(
        operations.set_track_muted, call.auth_id, room_name, identity, track_sid, body["muted"]
    )
    outcome = "muted" if muted else "unmuted"
    return Answer(
        {"room_name": room_name, "participant_identity": identity, "track_sid": track_sid, "muted": muted},
        outcome,
        [
            (
                signals.track_mute_changed,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "participant_identity": identity,
                    "track_sid": track_sid,
                    "muted": muted,
                    "outcome": outcome,
                },
            )
        ],
    )


@routes.route(
    "GET",
    "/participants",
    action="list",
    scope="read",
    operation_id="listParticipants",
    query=ListParticipantsQuery,
    answer=ListParticipantsResponse,
    answer_description="The room's participants, enums as lower-case strings.",
    errors=(*ROOM_CALLER_ERRORS, *LIVEKIT_ERRORS, errors.LIST_FAILED),
    doc_values={"max_page": MAX_PAGE},
)
def list_participants(call: Call, query: dict[str, Any]) -> Answer:
    """List a room's participants and their tracks

    An unknown room is an empty list for anonymous callers (as LiveKit answers) and the
    masked 404 for callers with an auth id.

    Everyone in one answer by default, in LiveKit's order. With `limit` (1 to {max_page}), one
    page in identity order, and `next_cursor` (null on the last page) to pass as `cursor` for
    the next; a participant who joins or leaves while you page comes at most once. LiveKit
    itself answers the whole room each time, so pages save the transfer to your client and
    the JSON, not LiveKit's work. `tracks=false` leaves the tracks out.
    """
    room_name, limit, after = query["room_name"], query["limit"], query["after"]
    participants = call.livekit().run(operations.list_participants, call.auth_id, room_name)
    answer: dict[str, Any] = {"room_name": room_name}
    if limit is not None:
        # LiveKit lists in no set order and has no pages: identity order makes a cursor mean
        # the same thing from one LiveKit answer to the next.
        listed = sorted(participants, key=lambda participant: participant.identity)
        start = 0 if after is None else bisect.bisect_right(listed, after, key=lambda p: p.identity)
        participants = listed[start : start + limit]
        more = start + limit < len(listed)
        answer["next_cursor"] = cursor(room_name, participants[-1].identity) if more else None
    with_tracks = query["tracks"]
    answer["participants"] = [_participant_json(p, with_tracks) for p in participants]
    return Answer(answer, "listed")


def _participant_json(participant: ParticipantInfo, with_tracks: bool = True) -> dict[str, Any]:
    answer = {
        "identity": participant.identity,
        "name": participant.name,
        "sid": participant.sid,
        "state": PARTICIPANT_STATES.get(participant.state, "unknown"),
        "joined_at": participant.joined_at,
        "is_publisher": participant.is_publisher,
        # What a console needs to show a locked microphone truthfully: a participant who
        # reconnects gets their token's permission back, so no earlier answer can tell.
        "permission": _listed_permission(participant.permission.SerializeToString(deterministic=True))
        if participant.HasField("permission")
        else None,
    }
    if with_tracks:
        answer["tracks"] = [
            {
                "sid": track.sid,
                "type": TRACK_TYPES.get(track.type, "unknown"),
                "source": TRACK_SOURCES.get(track.source, "unknown"),
                "muted": track.muted,
                "name": track.name,
            }
            for track in participant.tracks
        ]
    return answer


@functools.lru_cache(maxsize=64)
def _listed_permission(serialized: bytes) -> dict[str, Any]:
    """The permission JSON of a listing, by LiveKit's bytes: most of a room shares a handful of
    permissions, and building each one's dict was a third of a 5,000-participant listing's CPU
    (``benchmarks/listing.py``). The dict is shared: nothing may change it."""
    return _permission_json(ParticipantPermission.FromString(serialized))


def _permission_json(permission: ParticipantPermission) -> dict[str, Any]:
    return {
        "can_subscribe": permission.can_subscribe,
        "can_publish": permission.can_publish,
        "can_publish_data": permission.can_publish_data,
        "can_publish_sources": [TRACK_SOURCES.get(s, "unknown") for s in permission.can_publish_sources],
        "can_update_metadata": permission.can_update_metadata,
        "hidden": permission.hidden,
        "can_subscribe_metrics": permission.can_subscribe_metrics,
        "can_manage_agent_session": permission.can_manage_agent_session,
    }


_AT_LEAST_ONE = "Give at least one of " + ", ".join(PERMISSION_FIELDS) + "."


@routes.route(
    "POST",
    "/participant/permissions",
    action="permissions",
    scope="permissions",
    operation_id="updateParticipantPermissions",
    body=UpdatePermissionsRequest,
    answer=UpdatePermissionsResponse,
    answer_description=(
        "LiveKit changed the permission; `permission` is what it now holds, "
        "`unpublished_tracks` the tracks it unpublished for it."
    ),
    errors=(
        *CALLER_ERRORS,
        *LIVEKIT_ERRORS,
        *LIVEKIT_WRITE_ERRORS,
        *BODY_ERRORS,
        errors.PERMISSION_UPDATE_FAILED,
    ),
    doc_values={"fields": ", ".join(f"`{name}`" for name in PERMISSION_FIELDS)},
)
def update_permissions(call: Call, body: dict[str, Any]) -> Answer:
    """Change what a participant may publish or subscribe to

    Only the permission fields given change; give at least one of {fields} (else 400).
    LiveKit's UpdateParticipant replaces the WHOLE permission, every field not sent becoming
    false, so the route reads the current permission (GetParticipant) and sends it back
    merged. Revoking a source (e.g. `microphone` from `can_publish_sources`) is the mute a
    participant cannot undo: LiveKit unpublishes their tracks of that source and refuses new
    ones until it is allowed again. Not atomic: a permission changed by someone else between
    the read and the update is overwritten.
    """
    if not any(name in body for name in PERMISSION_FIELDS):
        raise errors.INVALID_REQUEST(
            "Invalid request: give at least one of " + ", ".join(PERMISSION_FIELDS) + ".",
            details={"_schema": [_AT_LEAST_ONE]},
        )
    room_name, identity = body["room_name"], body["participant_identity"]
    sources = body.get("can_publish_sources")
    change = operations.PermissionChange(
        can_publish=body.get("can_publish"),
        can_publish_sources=None if sources is None else tuple(SOURCE_NUMBERS[s] for s in sources),
        can_subscribe=body.get("can_subscribe"),
        can_publish_data=body.get("can_publish_data"),
    )
    update = call.livekit().run(operations.update_permissions, call.auth_id, room_name, identity, change)
    permission = _permission_json(update.after)
    unpublished = [
        {"track_sid": track.sid, "source": TRACK_SOURCES.get(track.source, "unknown")}
        for track in update.unpublished
    ]
    return Answer(
        {
            "room_name": room_name,
            "participant_identity": identity,
            "permission": permission,
            "unpublished_tracks": unpublished,
        },
        "permissions_updated",
        [
            (
                signals.participant_permissions_changed,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "participant_identity": identity,
                    "permission": permission,
                    "previous": _permission_json(update.before),
                    "unpublished_tracks": unpublished,
                    "outcome": "permissions_updated",
                },
            )
        ],
    )


@routes.route(
    "POST",
    "/room/mute",
    action="room_mute",
    scope="mute",
    operation_id="muteRoom",
    body=RoomMuteRequest,
    answer=RoomMuteResponse,
    answer_description=(
        "Each matching track, in `tracks` with the state LiveKit reports or in `failed`; "
        "sorted by participant identity, then source."
    ),
    errors=(
        *ROOM_CALLER_ERRORS,
        *LIVEKIT_ERRORS,
        *LIVEKIT_WRITE_ERRORS,
        *BODY_ERRORS,
        errors.REMOTE_UNMUTE_DISABLED,
        errors.ROOM_MUTE_FAILED,
    ),
    doc_values={"concurrency": ROOM_MUTE_CONCURRENCY},
)
def mute_room(call: Call, body: dict[str, Any]) -> Answer:
    """Mute or unmute every published track of some sources in a room

    Lists the room's participants, then sends every MutePublishedTrack at once (at most
    {concurrency} in flight): two LiveKit round trips for a room of up to {concurrency}
    matching tracks. Tracks of `except_identities` are left alone. A track that could not be
    changed is listed in `failed` with its reason (`TRACK_NOT_FOUND`: unpublished meanwhile;
    `PARTICIPANT_NOT_FOUND`: the participant left; `REMOTE_UNMUTE_DISABLED`;
    `LIVEKIT_UNAVAILABLE`: this call failed or timed out; `MUTE_FAILED`: any other refusal),
    not an error of the request; when EVERY track failed because LiveKit is unavailable or
    remote unmute is disabled, the request answers that error. A muted participant can
    unmute themselves: revoke the source with the permissions route to keep them muted.
    """
    room_name, muted = body["room_name"], body["muted"]
    sources, spared = body["sources"], body["except_identities"]
    outcomes = call.livekit().run(
        operations.mute_room,
        call.auth_id,
        room_name,
        muted,
        frozenset(SOURCE_NUMBERS[s] for s in sources),
        frozenset(spared),
    )
    tracks: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for outcome in sorted(outcomes, key=lambda o: (o.participant_identity, o.source, o.track_sid)):
        entry: dict[str, Any] = {
            "participant_identity": outcome.participant_identity,
            "track_sid": outcome.track_sid,
            "source": TRACK_SOURCES.get(outcome.source, "unknown"),
        }
        if outcome.failure is None:
            tracks.append({**entry, "muted": outcome.muted})
        else:
            failed.append({**entry, "code": outcome.failure})
    call.details.update(tracks=len(tracks), failed=len(failed))
    result = "muted" if muted else "unmuted"
    return Answer(
        {"room_name": room_name, "muted": muted, "tracks": tracks, "failed": failed},
        result,
        [
            (
                signals.room_mute_finished,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "muted": muted,
                    "sources": list(sources),
                    "except_identities": list(spared),
                    "tracks": tracks,
                    "failed": failed,
                    "outcome": result,
                },
            )
        ],
    )
