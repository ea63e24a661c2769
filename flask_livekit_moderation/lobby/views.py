"""The lobby routes: lock or unlock a room, list who waits, admit, deny."""

from __future__ import annotations

from typing import Any

from .. import errors, signals
from ..bans.model import utc_datetime
from ..bans.schemas import MAX_PAGE
from ..errors import BODY_ERRORS, LIVEKIT_ERRORS, ROOM_CALLER_ERRORS
from ..pipeline import Answer, Call
from ..routing import Routes
from . import operations
from .model import ADMITTED, DENIED, Status
from .operations import lobby_identity
from .schemas import (
    MAX_IDENTITIES,
    AdmitRequest,
    AdmitResponse,
    DenyRequest,
    DenyResponse,
    LobbyQuery,
    LobbyResponse,
    LockRequest,
    LockResponse,
    cursor,
)
from .store import lobby_store

routes = Routes()

#: What every lobby route may answer besides: the room check fails, the store fails.
LOBBY_ERRORS = (*ROOM_CALLER_ERRORS, *LIVEKIT_ERRORS, errors.LIST_FAILED, errors.BAN_STORE_UNAVAILABLE)
STATUS_MEANING = {
    503: "LiveKit or the store (LIVEKIT_MODERATION_BAN_STORE) is unavailable, or too many requests "
    "are waiting on LiveKit: try again after the `Retry-After` seconds.",
}


@routes.route(
    "POST",
    "/room/lock",
    action="lock",
    scope="lobby",
    operation_id="lockRoom",
    body=LockRequest,
    answer=LockResponse,
    answer_description="The room is locked (or unlocked).",
    errors=(*LOBBY_ERRORS, *BODY_ERRORS),
    status_meaning=STATUS_MEANING,
)
def lock_room(call: Call, body: dict[str, Any]) -> Answer:
    """Lock or unlock a room

    While a room is locked, the host's `participant_token()` gives a token only to identities a
    moderator admitted (`POST /livekit/lobby/admit`); others knock (`knock()` in the host's
    join route) and wait in the lobby (`GET /livekit/lobby`), and one who joins anyway (a token
    minted elsewhere, or before the lock) is removed by the webhook route and the reconciler.
    Locking admits whoever is in the room at that moment (ListRooms, then ListParticipants), so
    they may reconnect; locking a locked room admits those present and changes nothing else.
    Unlocking (`locked: false`) deletes the lobby: the waiting list, the admissions and the
    denials; anyone not banned may join again. The room must be running and, for a caller
    with an auth id, be the caller's (else the masked 404).
    """
    room_name, locked = body["room_name"], body["locked"]
    owner, present = call.livekit().run(operations.lock_room, call.auth_id, room_name, locked)
    present = [lobby_identity(call.state, identity) for identity in present]
    lobby = lobby_store(call.bans())
    fields: dict[str, Any] = {"auth_id": call.auth_id, "room_owner": owner or None, "room_name": room_name}
    if locked:
        locked_at = lobby.lock(owner, room_name, present)
        signal = (signals.room_locked, {**fields, "admitted": present, "locked_at": utc_datetime(locked_at)})
    else:
        lobby.unlock(owner, room_name)
        signal = (signals.room_unlocked, fields)
    outcome = "locked" if locked else "unlocked"
    signal[1]["outcome"] = outcome
    return Answer({"room_name": room_name, "locked": locked}, outcome, [signal])


@routes.route(
    "GET",
    "/lobby",
    action="list_lobby",
    scope="read",
    operation_id="listLobby",
    query=LobbyQuery,
    answer=LobbyResponse,
    answer_description="Whether the room is locked, and one page of who waits, in knock order.",
    errors=LOBBY_ERRORS,
    status_meaning=STATUS_MEANING,
    doc_values={"max_page": MAX_PAGE},
)
def list_lobby(call: Call, query: dict[str, Any]) -> Answer:
    """List who waits to join a locked room, a page at a time

    Those who knocked and were neither admitted nor denied, first knock first, `limit` at a time
    (default 100, at most {max_page}); `next_cursor`, passed as `cursor`, gives the next page,
    and is null on the last one. An unlocked room answers `locked: false` and nobody waiting.
    The room must be running and, for a caller with an auth id, be the caller's (ListRooms;
    else the masked 404).
    """
    room_name, limit, after = query["room_name"], query["limit"], query["after"]
    owner = call.livekit().run(operations.lobby_owner, call.auth_id, room_name)
    lobby = lobby_store(call.bans())
    locked = lobby.locked_at(owner, room_name) is not None
    waiting = lobby.waiting(owner, room_name, limit=limit + 1, after=after) if locked else []
    more, waiting = len(waiting) > limit, waiting[:limit]
    last = waiting[-1] if more else None
    return Answer(
        {
            "room_name": room_name,
            "locked": locked,
            "waiting": [entry.to_json() for entry in waiting],
            "next_cursor": None
            if last is None
            else cursor(room_name, (last.knocked_at, last.participant_identity)),
        },
        "listed_lobby",
    )


def _decide(call: Call, body: dict[str, Any], status: Status) -> tuple[str, list[str], dict[str, Any]]:
    room_name = body["room_name"]
    keys = (lobby_identity(call.state, identity) for identity in body["participant_identities"])
    identities = list(dict.fromkeys(keys))
    owner = call.livekit().run(operations.lobby_owner, call.auth_id, room_name)
    lobby_store(call.bans()).decide(owner, room_name, identities, status)
    return (
        room_name,
        identities,
        {
            "auth_id": call.auth_id,
            "room_owner": owner or None,
            "room_name": room_name,
            "participant_identities": identities,
            "outcome": status,
        },
    )


@routes.route(
    "POST",
    "/lobby/admit",
    action="admit",
    scope="lobby",
    operation_id="admitParticipants",
    body=AdmitRequest,
    answer=AdmitResponse,
    answer_description="The identities are admitted: `participant_token()` gives them a token.",
    errors=(*LOBBY_ERRORS, *BODY_ERRORS),
    status_meaning=STATUS_MEANING,
    doc_values={"max_identities": MAX_IDENTITIES},
)
def admit(call: Call, body: dict[str, Any]) -> Answer:
    """Admit people into a room

    Each identity (1 to {max_identities}) may then get a token from the host's
    `participant_token()` while the room is locked; their next knock answers `admitted`. One who
    has not knocked yet is admitted in advance (also before the room is locked). Admitting a
    denied identity lifts the denial. The room must be running and, for a caller with an auth
    id, be the caller's (ListRooms; else the masked 404).
    """
    room_name, identities, fields = _decide(call, body, ADMITTED)
    return Answer(
        {"room_name": room_name, "admitted": identities}, "admitted", [(signals.lobby_admitted, fields)]
    )


@routes.route(
    "POST",
    "/lobby/deny",
    action="deny",
    scope="lobby",
    operation_id="denyParticipants",
    body=DenyRequest,
    answer=DenyResponse,
    answer_description="The identities are denied: their knocks answer `denied`.",
    errors=(*LOBBY_ERRORS, *BODY_ERRORS),
    status_meaning=STATUS_MEANING,
    doc_values={"max_identities": MAX_IDENTITIES},
)
def deny(call: Call, body: dict[str, Any]) -> Answer:
    """Deny people entry to a locked room

    Each identity (1 to {max_identities}) leaves the waiting list and stays denied (its knocks
    answer `denied`, `participant_token()` refuses it) until a moderator admits it or the room
    is unlocked. One in the room already is not removed by this call, but is no longer admitted:
    the reconciler removes them, and they cannot rejoin. The room must be running and, for a
    caller with an auth id, be the caller's (ListRooms; else the masked 404).
    """
    room_name, identities, fields = _decide(call, body, DENIED)
    return Answer({"room_name": room_name, "denied": identities}, "denied", [(signals.lobby_denied, fields)])
