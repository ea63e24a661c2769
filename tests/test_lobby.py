"""The lobby over real HTTP: lock, knock, list, admit, deny, unlock; the token refusal; the
webhook and the reconciler removing who joins a locked room unadmitted; tenancy; bad input.

The host app (its own ``/knock`` and ``/token`` routes) is served by a threaded werkzeug server
on the default SQLite store; the LiveKit stand-in sends it LiveKit-signed webhooks. Each test
asserts the HTTP answers, what the stand-in saw and the signals sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import point_webhooks, rejoin, settle, utc
from tests.helpers import JSON, MASKED_ROOM_404, TENANTS, TEXT, TOKEN_A, TOKEN_B
from tests.lobby_helpers import ADMIT, DENY, LOBBY, LOCK, LobbyHost, lobby_hosts


@pytest.fixture
def build(livekit_emulator: LiveKitEmulator, tmp_path: Path) -> Iterator[Callable[..., LobbyHost]]:
    """Lobby hosts with auth (TENANTS) on the SQLite store (the default kind), in ``tmp_path``."""
    with lobby_hosts(livekit_emulator) as factory:

        def make(**config: object) -> LobbyHost:
            config.setdefault("LIVEKIT_MODERATION_AUTH_REQUIRED", True)
            config.setdefault("LIVEKIT_MODERATION_API_SECRETS", TENANTS)
            config.setdefault("LIVEKIT_MODERATION_BAN_STORE", f"sqlite:///{tmp_path}/lobby.sqlite3")
            return factory(**config)

        yield make


def test_lock_knock_admit_deny_unlock(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()
    point_webhooks(emu, host)
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    emu.join("standup", "alice", tracks=[])
    settle(emu)
    emu.clear_calls()

    # Lock: alice, present, is admitted by it.
    answer = host.lock("standup", token=TOKEN_A)
    assert (answer.status_code, answer.json()) == (200, {"room_name": "standup", "locked": True})
    assert emu.call_names() == ["ListRooms", "ListParticipants"]
    (locked,) = host.signalled("room_locked")
    assert (locked["auth_id"], locked["room_owner"], locked["admitted"]) == (
        "tenant-a",
        "tenant-a",
        ["alice"],
    )
    locked_at = locked["locked_at"]

    # A guest knocks: waiting, listed, refused a token.
    knocked = host.knock("standup", "guest", name="Guest One")
    assert knocked.status_code == 200 and knocked.json()["status"] == "waiting"
    first_knock = knocked.json()["knocked_at"]
    again = host.knock("standup", "guest", name="Other name")
    assert again.json() == {"status": "waiting", "knocked_at": first_knock}  # the first knock is kept
    listing = host.lobby("standup", token=TOKEN_A)
    assert listing.status_code == 200
    body = listing.json()
    (waiting,) = body.pop("waiting")
    assert body == {"room_name": "standup", "locked": True, "next_cursor": None}
    assert waiting["participant_identity"] == "guest" and waiting["name"] == "Guest One"
    assert timedelta(0) <= utc(waiting["knocked_at"]) - locked_at < timedelta(seconds=5)
    refused = host.token("standup", "guest")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "This participant has not been admitted to the locked room.",
        "code": "PARTICIPANT_NOT_ADMITTED",
    }
    # Alice, present at the lock, may reconnect.
    assert host.token("standup", "alice").status_code == 200
    (signal,) = [s for s in host.signalled("lobby_knocked") if s["name"] == "Guest One"][:1]
    assert (signal["room_owner"], signal["status"], signal["auth_id"]) == ("tenant-a", "waiting", None)

    # Admit: the knock answers admitted, the token is given, the lobby is empty.
    admitted = host.admit("standup", "guest", "guest", token=TOKEN_A)
    assert (admitted.status_code, admitted.json()) == (200, {"room_name": "standup", "admitted": ["guest"]})
    assert host.knock("standup", "guest").json() == {"status": "admitted", "knocked_at": first_knock}
    assert host.token("standup", "guest").status_code == 200
    assert host.lobby("standup", token=TOKEN_A).json()["waiting"] == []
    (signal,) = host.signalled("lobby_admitted")
    assert signal == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",  # the credential has no actor label: its id acted
        "room_owner": "tenant-a",
        "room_name": "standup",
        "participant_identities": ["guest"],
        "outcome": "admitted",
    }

    # Deny, then knock: denied, refused, not listed.
    host.knock("standup", "pest")
    denied = host.deny("standup", "pest", token=TOKEN_A)
    assert (denied.status_code, denied.json()) == (200, {"room_name": "standup", "denied": ["pest"]})
    assert host.knock("standup", "pest").json()["status"] == "denied"
    assert host.token("standup", "pest").json()["code"] == "PARTICIPANT_NOT_ADMITTED"
    assert host.lobby("standup", token=TOKEN_A).json()["waiting"] == []
    assert host.signalled("lobby_denied")[0]["participant_identities"] == ["pest"]

    # Unlock: the lobby is gone; the denied one's next knock is admitted, and so is a newcomer's.
    unlocked = host.lock("standup", False, token=TOKEN_A)
    assert (unlocked.status_code, unlocked.json()) == (200, {"room_name": "standup", "locked": False})
    assert host.knock("standup", "pest").json() == {"status": "admitted", "knocked_at": "None"}
    assert host.token("standup", "pest").status_code == 200
    assert host.token("standup", "newcomer").status_code == 200
    assert host.lobby("standup", token=TOKEN_A).json() == {
        "room_name": "standup",
        "locked": False,
        "waiting": [],
        "next_cursor": None,
    }
    (signal,) = host.signalled("room_unlocked")
    assert (signal["auth_id"], signal["room_owner"], signal["outcome"]) == (
        "tenant-a",
        "tenant-a",
        "unlocked",
    )


def test_admitting_before_the_knock_and_before_the_lock(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    assert host.admit("standup", "vip", token=TOKEN_A).status_code == 200
    assert host.lock("standup", token=TOKEN_A).status_code == 200
    assert host.knock("standup", "vip").json()["status"] == "admitted"
    assert host.token("standup", "vip").status_code == 200
    assert host.token("standup", "nobody").json()["code"] == "PARTICIPANT_NOT_ADMITTED"
    # A ban comes first.
    assert host.ban("standup", "vip", token=TOKEN_A).status_code == 201
    assert host.token("standup", "vip").json()["code"] == "PARTICIPANT_BANNED"


def test_the_webhook_removes_who_joins_a_locked_room_unadmitted(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()
    point_webhooks(emu, host)
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    emu.join("standup", "alice", tracks=[])
    settle(emu)
    assert host.lock("standup", token=TOKEN_A).status_code == 200
    locked_at = host.signalled("room_locked")[0]["locked_at"]
    host.admit("standup", "guest", token=TOKEN_A)
    settle(emu)
    emu.clear_calls()

    # Someone with a token minted elsewhere (or before the lock) joins: removed, their old tokens revoked.
    emu.join("standup", "sneaky", tracks=[])
    settle(emu)
    assert emu.participant("standup", "sneaky") is None
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]
    removal = [c for c in emu.calls if c.method == "RemoveParticipant"][0]
    assert removal.revoke_token_ts == int(locked_at.timestamp()) + 1
    (signal,) = host.signalled("unadmitted_participant_removed")
    assert (signal["room_owner"], signal["participant_identity"], signal["source"]) == (
        "tenant-a",
        "sneaky",
        "webhook",
    )
    (finished,) = [f for f in host.signalled("moderation_finished") if f["action"] == "enforce_lock"]
    assert (finished["auth_id"], finished["outcome"], finished["status"]) == ("tenant-a", "removed", 200)

    # Present at the lock, or admitted: they stay.
    emu.clear_calls()
    emu.leave("standup", "alice")
    emu.join("standup", "alice", tracks=[])
    emu.join("standup", "guest", tracks=[])
    settle(emu)
    assert emu.participant("standup", "alice") is not None and emu.participant("standup", "guest") is not None
    assert "RemoveParticipant" not in emu.call_names()

    # Another tenant's room of the same name is not A's lobby: nobody is removed there.
    emu.remove_room("standup")
    emu.add_room("standup", metadata=room_metadata("tenant-b"))
    emu.clear_calls()
    rejoin(emu, "standup", "sneaky", tracks=[])  # LiveKit Cloud revoked A's tokens by room name
    settle(emu)
    assert emu.participant("standup", "sneaky") is not None
    assert emu.call_names() == []


def test_the_reconciler_removes_who_the_webhook_missed(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()  # no webhooks pointed at the app: they are all missed
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    emu.join("standup", "alice", tracks=[])
    assert host.lock("standup", token=TOKEN_A).status_code == 200
    emu.join("standup", "sneaky", tracks=[])
    emu.join("standup", "guest", tracks=[])
    host.admit("standup", "guest", token=TOKEN_A)
    emu.clear_calls()

    found = host.moderation.reconcile()

    assert [r.participant_identity for r in found.unadmitted] == ["sneaky"] and found.removed == []
    assert emu.participant("standup", "sneaky") is None
    assert emu.participant("standup", "alice") is not None and emu.participant("standup", "guest") is not None
    assert emu.call_names() == ["ListRooms", "ListParticipants", "ListRooms", "RemoveParticipant"]
    (signal,) = host.signalled("unadmitted_participant_removed")
    assert (signal["source"], signal["event_id"]) == ("reconciler", None)
    # Unlocked: nothing left to do, no LiveKit call.
    host.lock("standup", False, token=TOKEN_A)
    emu.clear_calls()
    assert host.moderation.reconcile().rooms == 0 and emu.call_names() == []


def test_tenant_b_gets_the_masked_404_and_cannot_admit_into_a_room_of_a(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    assert host.lock("standup", token=TOKEN_A).status_code == 200
    host.knock("standup", "guest")

    for answer in (
        host.lock("standup", token=TOKEN_B),
        host.lock("standup", False, token=TOKEN_B),
        host.lobby("standup", token=TOKEN_B),
        host.admit("standup", "guest", token=TOKEN_B),
        host.deny("standup", "guest", token=TOKEN_B),
        # A room that does not exist answers the same.
        host.lobby("nowhere", token=TOKEN_B),
        host.admit("nowhere", "guest", token=TOKEN_B),
    ):
        assert (answer.status_code, answer.json()) == (404, MASKED_ROOM_404)
    # Nothing of A's lobby changed.
    assert host.token("standup", "guest").json()["code"] == "PARTICIPANT_NOT_ADMITTED"
    assert host.knock("standup", "guest").json()["status"] == "waiting"
    assert [w["participant_identity"] for w in host.lobby("standup", token=TOKEN_A).json()["waiting"]] == [
        "guest"
    ]
    assert host.lobby("standup", token=TOKEN_A).json()["locked"] is True
    assert host.signalled("lobby_admitted") == [] and host.signalled("lobby_denied") == []
    refused = [r for r in host.signalled("moderation_refused") if r["status"] == 404]
    assert {r["action"] for r in refused} == {"lock", "list_lobby", "admit", "deny"}
    # Without a token: 401.
    assert host.lobby("standup").status_code == 401


def test_the_lobby_pages_in_knock_order(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = build()
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    host.lock("standup", token=TOKEN_A)
    knocked = [f"guest-{n:02d}" for n in range(25)][::-1]  # knock order is not name order
    for identity in knocked:
        assert host.knock("standup", identity).json()["status"] == "waiting"
    host.deny("standup", knocked[3], token=TOKEN_A)
    expected = [identity for identity in knocked if identity != knocked[3]]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} if cursor is None else {"limit": 10, "cursor": cursor}
        answer = host.lobby("standup", token=TOKEN_A, **params)
        assert answer.status_code == 200
        body = answer.json()
        seen += [w["participant_identity"] for w in body["waiting"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == 3
    bad = host.lobby("standup", token=TOKEN_A, cursor="not-a-cursor")
    assert bad.status_code == 400 and bad.json()["details"] == {
        "cursor": ["Not a cursor of this listing: pass the next_cursor it answered."]
    }
    assert host.lobby("standup", token=TOKEN_A, limit=0).status_code == 400
    assert host.lobby("standup", token=TOKEN_A, limit=1001).status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (LOCK, {"room_name": "standup", "locked": "true"}, "locked"),
        (LOCK, {"room_name": "", "locked": True}, "room_name"),
        (LOCK, {"room_name": "x" * 257, "locked": True}, "room_name"),
        (LOCK, {"locked": True}, "room_name"),
        (LOCK, {"room_name": "standup", "locked": True, "lockd": True}, "lockd"),
        (ADMIT, {"room_name": "standup", "participant_identities": []}, "participant_identities"),
        (ADMIT, {"room_name": "standup", "participant_identities": ["g"] * 1001}, "participant_identities"),
        (ADMIT, {"room_name": "standup", "participant_identities": ["ok", " "]}, "participant_identities"),
        (ADMIT, {"room_name": "standup", "participant_identities": "guest"}, "participant_identities"),
        (ADMIT, {"room_name": "standup", "participant_identity": "guest"}, "participant_identity"),
        (DENY, {"room_name": "standup", "participant_identities": ["x" * 257]}, "participant_identities"),
        (DENY, {"room": "standup", "participant_identities": ["g"]}, "room"),
    ],
)
def test_bad_input_is_400(
    build: Callable[..., LobbyHost],
    livekit_emulator: LiveKitEmulator,
    path: str,
    body: dict[str, object],
    field: str,
) -> None:
    host = build()
    livekit_emulator.add_room("standup", metadata=room_metadata("tenant-a"))
    livekit_emulator.clear_calls()
    answer = host.request("POST", path, TOKEN_A, json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST" and field in answer.json()["details"]
    assert livekit_emulator.call_names() == []


@pytest.mark.parametrize("path", [LOCK, ADMIT, DENY])
def test_a_body_not_sent_as_json_is_415(build: Callable[..., LobbyHost], path: str) -> None:
    host = build()
    answer = host.request("POST", path, TOKEN_A, data='{"room_name": "standup"}', headers=TEXT)
    assert answer.status_code == 415 and answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    broken = host.request("POST", path, TOKEN_A, data="{", headers=JSON)
    assert broken.status_code == 400 and broken.json()["code"] == "INVALID_REQUEST"
    assert host.request("GET", LOBBY, TOKEN_A).status_code == 400  # no room_name


def test_the_openapi_document_describes_the_lobby_routes(build: Callable[..., LobbyHost]) -> None:
    document = build().request("GET", "/livekit/openapi.json").json()
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if "lobby" in path or path.endswith("/room/lock")
    }
    assert {(path, method) for path, method in operations} == {
        ("/livekit/room/lock", "post"),
        ("/livekit/lobby", "get"),
        ("/livekit/lobby/admit", "post"),
        ("/livekit/lobby/deny", "post"),
    }
    for operation in operations.values():
        assert {"200", "400", "401", "404", "503"} <= set(operation["responses"])
        assert operation["summary"] and operation["description"]
    admit = document["components"]["schemas"]["LiveKitModerationAdmitRequest"]
    assert admit["additionalProperties"] is False
    assert admit["properties"]["participant_identities"]["maxItems"] == 1000


def test_the_lobby_compares_identities_by_the_hosts_identity_key(
    build: Callable[..., LobbyHost], livekit_emulator: LiveKitEmulator
) -> None:
    """With ``@moderation.identity_key`` (here: case-folded), a knock, an admission, a denial,
    the token and the webhook all compare the key; LiveKit still gets the real identity."""
    emu = livekit_emulator
    host = build()
    host.moderation.identity_key(lambda identity: identity.strip().casefold())
    point_webhooks(emu, host)
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    assert host.lock("standup", token=TOKEN_A).status_code == 200
    assert host.knock("standup", "Guest").json()["status"] == "waiting"
    assert [w["participant_identity"] for w in host.lobby("standup", token=TOKEN_A).json()["waiting"]] == [
        "guest"
    ]
    assert host.admit("standup", "GUEST ", token=TOKEN_A).json()["admitted"] == ["guest"]
    assert host.token("standup", "gUeSt").status_code == 200
    host.deny("standup", "Pest", token=TOKEN_A)
    assert host.knock("standup", "PEST").json()["status"] == "denied"
    settle(emu)
    emu.clear_calls()
    emu.join("standup", "PEST", tracks=[])  # a look-alike of the denied identity joins
    settle(emu)
    assert emu.participant("standup", "PEST") is None
    (removal,) = [c for c in emu.calls if c.method == "RemoveParticipant"]
    assert getattr(removal.request, "identity", None) == "PEST"  # LiveKit gets the identity it knows
    emu.join("standup", "Guest", tracks=[])
    settle(emu)
    assert emu.participant("standup", "Guest") is not None
