"""The ban routes: ban (and remove), list a room's bans, lift a ban."""

from __future__ import annotations

from typing import Any

from .. import errors, signals
from ..errors import BODY_ERRORS, CALLER_ERRORS, LIVEKIT_ERRORS, LIVEKIT_WRITE_ERRORS, ROOM_CALLER_ERRORS
from ..pipeline import Answer, Call
from ..routing import Routes
from ..schemas import cursor
from . import operations
from .model import Ban, rfc3339
from .schemas import (
    MAX_PAGE,
    BanRequest,
    BanResponse,
    LiftBanRequest,
    LiftBanResponse,
    ListBansQuery,
    ListBansResponse,
)

routes = Routes()

#: What the ban routes may answer besides: the store can fail.
STORE_ERRORS = (errors.BAN_STORE_UNAVAILABLE,)
STATUS_MEANING = {
    503: "LiveKit or the ban store is unavailable, or too many requests are waiting on LiveKit: "
    "try again after the `Retry-After` seconds.",
}


def _identity_key(call: Call, identity: str) -> str:
    """The key ``identity``'s bans are kept under; 400 when it leaves nothing to identify anyone."""
    key = call.state.identity_key(identity)
    if not key:
        # An empty key would be shared by every identity the function empties (e.g. only spaces).
        raise errors.INVALID_REQUEST("participant_identity has nothing left to identify a participant by.")
    return key


@routes.route(
    "POST",
    "/bans",
    action="ban",
    scope="ban",
    operation_id="banParticipant",
    body=BanRequest,
    answer=BanResponse,
    status=201,
    answer_description="The ban is recorded; `removed` says whether LiveKit removed the participant.",
    errors=(
        *CALLER_ERRORS,
        *LIVEKIT_ERRORS,
        *LIVEKIT_WRITE_ERRORS,
        *BODY_ERRORS,
        errors.REMOVAL_FAILED,
        *STORE_ERRORS,
    ),
    status_meaning=STATUS_MEANING,
)
def ban_participant(call: Call, body: dict[str, Any]) -> Answer:
    """Ban a participant from a room for a while, and remove them

    Records the ban for the room's owner as LiveKit names it (the metadata's `auth_id`), then
    removes the participant if present (`removed`). The room must be running (ListRooms, then
    RemoveParticipant). Banning again replaces the expiry and reason. While the ban lasts, the
    webhook route removes the participant whenever they join again, and
    `participant_token()` refuses them a token. If the removal fails (5xx), the ban is already
    recorded: send the same request again. The ban is kept under the identity's key (the host's
    `identity_key` function; by default the identity itself), which the listing shows.
    """
    store = call.state.bans
    room_name, identity = body["room_name"], body["participant_identity"]
    duration, reason = body["duration_seconds"], body["reason"]
    key = _identity_key(call, identity)

    def record(owner: str) -> Ban:
        ban = Ban.starting_now(owner, room_name, key, duration, reason, store.clock)
        store.put(ban)
        return ban

    ban, removed = call.livekit().run(operations.ban_participant, call.auth_id, room_name, identity, record)
    call.details.update(removed=removed, expires_at=rfc3339(ban.expires_at))
    return Answer(
        {
            "room_name": room_name,
            "participant_identity": identity,
            "expires_at": rfc3339(ban.expires_at),
            "reason": reason,
            "removed": removed,
        },
        "banned",
        [
            (
                signals.participant_banned,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "participant_identity": identity,
                    "room_owner": ban.room_owner,
                    "expires_at": ban.expires_at,
                    "reason": reason,
                    "removed": removed,
                    "outcome": "banned",
                },
            )
        ],
    )


@routes.route(
    "GET",
    "/bans",
    action="list_bans",
    scope="read",
    operation_id="listBans",
    query=ListBansQuery,
    answer=ListBansResponse,
    answer_description="One page of the active bans, by identity (then owner).",
    errors=(*ROOM_CALLER_ERRORS, *LIVEKIT_ERRORS, errors.LIST_FAILED, *STORE_ERRORS),
    status_meaning=STATUS_MEANING,
    doc_values={"max_page": MAX_PAGE},
)
def list_bans(call: Call, query: dict[str, Any]) -> Answer:
    """List a room's active bans, a page at a time

    A caller with an auth id sees its own bans of that room name, kept after the room closed;
    when it has none, the room must be running and be the caller's (ListRooms), else the
    masked 404. A caller for all rooms sees every owner's bans, with no LiveKit call. Bans come
    by identity, then owner, `limit` at a time (default 100, at most {max_page}); `next_cursor`,
    passed as `cursor`, gives the next page, and is null on the last one. A ban made while you
    page through comes in a later page if it sorts after the page you are at; none comes twice.
    """
    room_name, limit, after = query["room_name"], query["limit"], query["after"]
    bans = call.bans().list_bans(call.auth_id, room_name, limit=limit + 1, after=after)
    more, bans = len(bans) > limit, bans[:limit]
    if call.auth_id is not None and not bans and after is None:
        call.livekit().run(operations.check_bans_room, call.auth_id, room_name)
    last = bans[-1] if more else None
    return Answer(
        {
            "room_name": room_name,
            "bans": [ban.to_json() for ban in bans],
            "next_cursor": None if last is None else cursor(room_name, last.participant_identity, last.owner),
        },
        "listed_bans",
    )


@routes.route(
    "DELETE",
    "/bans",
    action="lift_ban",
    scope="ban",
    operation_id="liftBan",
    body=LiftBanRequest,
    answer=LiftBanResponse,
    answer_description="The ban is lifted: the participant may join again.",
    errors=(*CALLER_ERRORS, *BODY_ERRORS, *STORE_ERRORS),
    status_meaning={503: "The ban store is unavailable: try again after the `Retry-After` seconds."},
)
def lift_ban(call: Call, body: dict[str, Any]) -> Answer:
    """Lift a ban

    Deletes the caller's ban of the identity in that room (a caller for all rooms: every
    owner's), found by the identity's key. No active ban answers the masked 404. No LiveKit call.
    """
    room_name, identity = body["room_name"], body["participant_identity"]
    # A caller with an auth id reaches only its own bans; one for all rooms, every owner's.
    lifted = call.bans().lift(call.auth_id, room_name, _identity_key(call, identity))
    if not lifted:
        raise errors.PARTICIPANT_NOT_FOUND()
    call.details["lifted"] = len(lifted)
    return Answer(
        {"status": "lifted", "room_name": room_name, "participant_identity": identity},
        "lifted",
        [
            (
                signals.ban_lifted,
                {
                    "auth_id": call.auth_id,
                    "room_name": room_name,
                    "participant_identity": identity,
                    "room_owner": ban.room_owner,
                    "outcome": "lifted",
                },
            )
            for ban in lifted
        ],
    )
