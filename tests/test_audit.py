"""The audit log: one entry per moderation write (done, refused or failed) and per ban
enforcement, in the ban store; GET /livekit/audit lists the caller's own entries, newest first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_livekit_moderation import room_metadata, signals
from flask_livekit_moderation.audit import Entry, new_id
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import WEBHOOK, Host, joined, rejoin, signed
from tests.helpers import TOKEN_A, TOKEN_B

AUDIT = "/livekit/audit"
ALICE = "alice-secret-0123456789"
#: Tenant A's moderator "alice", and the two tenants of the suite (no actor: their id acts).
SECRETS = [
    {"id": "tenant-a", "secret": ALICE, "actor": "alice"},
    {"id": "tenant-a", "secret": TOKEN_A},
    {"id": "tenant-b", "secret": TOKEN_B},
]


def audit(host: Host, token: str, **params: Any) -> dict[str, Any]:
    answer = host.request("GET", AUDIT, token, params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def summary(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["actor"], e["action"], e["participant_identity"], e["outcome"]) for e in entries]


def test_every_write_and_enforcement_in_a_room_is_listed_newest_first_and_only_to_its_tenant(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts(LIVEKIT_MODERATION_API_SECRETS=SECRETS)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.add_room("elsewhere", metadata=room_metadata("tenant-a"))
    emu.join("r", "kicked", tracks=[])
    emu.join("r", "noisy")
    emu.join("r", "troll", tracks=[])
    emu.join("r", "pardoned", tracks=[])
    emu.join("elsewhere", "someone", tracks=[])
    noisy = emu.participant("r", "noisy")
    assert noisy is not None
    track = noisy.tracks[0].sid

    assert (
        host.request(
            "DELETE", "/livekit/participant", ALICE, json={"room_name": "r", "participant_identity": "kicked"}
        ).status_code
        == 200
    )
    assert (
        host.request(
            "POST",
            "/livekit/participant/mute",
            ALICE,
            json={"room_name": "r", "participant_identity": "noisy", "track_sid": track, "muted": True},
        ).status_code
        == 200
    )
    assert host.ban("r", "troll", 600, token=ALICE, reason="spam").status_code == 201
    assert host.ban("r", "pardoned", 600, token=TOKEN_A).status_code == 201
    assert host.lift("r", "pardoned", ALICE).status_code == 200
    # The banned troll comes back: LiveKit's webhook has the extension remove them.
    rejoin(emu, "r", "troll", tracks=[])
    body, headers = signed(emu, joined(emu, "r", "troll"))
    enforced = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert (enforced.status_code, enforced.json()["removed"]) == (200, True)
    # A refusal is an entry too; a read never is.
    missing = host.request(
        "DELETE", "/livekit/participant", ALICE, json={"room_name": "r", "participant_identity": "nobody"}
    )
    assert missing.status_code == 404
    assert host.request("GET", "/livekit/participants", ALICE, params={"room_name": "r"}).status_code == 200
    assert host.bans("r", ALICE).status_code == 200
    # Another room of the tenant: not in this room's listing.
    assert (
        host.request(
            "DELETE",
            "/livekit/participant",
            ALICE,
            json={"room_name": "elsewhere", "participant_identity": "someone"},
        ).status_code
        == 200
    )

    entries = audit(host, ALICE, room_name="r")["entries"]
    assert summary(entries) == [
        ("alice", "remove", "nobody", "PARTICIPANT_NOT_FOUND"),
        (None, "enforce_ban", "troll", "removed"),
        ("alice", "lift_ban", "pardoned", "lifted"),
        ("tenant-a", "ban", "pardoned", "banned"),
        ("alice", "ban", "troll", "banned"),
        ("alice", "mute", "noisy", "muted"),
        ("alice", "remove", "kicked", "removed"),
    ]
    assert [e["status"] for e in entries] == [404, 200, 200, 201, 201, 200, 200]
    assert {e["room_name"] for e in entries} == {"r"}
    assert {e["owner"] for e in entries} == {"tenant-a"}
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    by_action = {e["action"]: e for e in entries}
    assert by_action["mute"]["details"] == {"track_sid": track, "muted": True}
    assert by_action["enforce_ban"]["details"]["source"] == "webhook"
    assert by_action["enforce_ban"]["details"]["event_id"] == "EV_testtroll"
    troll_ban = entries[4]
    assert troll_ban["details"]["reason"] == "spam" and troll_ban["details"]["duration_seconds"] == 600
    assert troll_ban["details"]["removed"] is True and troll_ban["details"]["expires_at"].endswith("Z")
    assert by_action["lift_ban"]["details"] == {"lifted": 1}

    # Filters: action, actor; the whole log of the tenant has the other room too.
    assert summary(audit(host, TOKEN_A, room_name="r", action="ban")["entries"]) == [
        ("tenant-a", "ban", "pardoned", "banned"),
        ("alice", "ban", "troll", "banned"),
    ]
    assert len(audit(host, TOKEN_A, actor="alice")["entries"]) == 6
    assert len(audit(host, TOKEN_A)["entries"]) == 8

    # Tenant B sees none of it, filtered or not.
    assert audit(host, TOKEN_B, room_name="r")["entries"] == []
    assert audit(host, TOKEN_B)["entries"] == []
    assert audit(host, TOKEN_B, actor="alice")["entries"] == []


def test_the_reconciler_enforcement_is_an_entry_of_the_rooms_owner(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "troll", 600, token=TOKEN_A).status_code == 201
    rejoin(emu, "r", "troll", tracks=[])  # no webhook: LiveKit lost the event
    done = host.moderation.reconcile()
    assert len(done.removed) == 1
    (entry, ban) = audit(host, TOKEN_A, room_name="r")["entries"]
    assert (entry["actor"], entry["action"], entry["outcome"], entry["status"]) == (
        None,
        "enforce_ban",
        "removed",
        None,
    )
    assert entry["details"]["source"] == "reconciler"
    assert ban["action"] == "ban"
    assert audit(host, TOKEN_B)["entries"] == []


def test_failures_are_entries_and_the_answer_stays_what_livekit_did(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "x", tracks=[])
    with emu.down():
        answer = host.request(
            "DELETE", "/livekit/participant", TOKEN_A, json={"room_name": "r", "participant_identity": "x"}
        )
    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    invalid = host.request("DELETE", "/livekit/participant", TOKEN_A, json={"room_name": "r"})
    assert invalid.status_code == 400
    unauthenticated = host.request(
        "DELETE", "/livekit/participant", None, json={"room_name": "r", "participant_identity": "x"}
    )
    assert unauthenticated.status_code == 401
    entries = audit(host, TOKEN_A)["entries"]
    assert [(e["outcome"], e["status"], e["room_name"]) for e in entries] == [
        ("INVALID_REQUEST", 400, None),
        ("LIVEKIT_UNAVAILABLE", 503, "r"),
    ]


def test_a_store_failure_while_writing_never_turns_a_done_action_into_an_error(
    hosts: Callable[..., Host],
    livekit_emulator: LiveKitEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = livekit_emulator
    (tmp_path / "a-file").write_text("")  # the store's directory is a file: every write fails
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/a-file/bans.sqlite3")
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "x", tracks=[])
    with caplog.at_level(logging.INFO, logger="flask_livekit_moderation"):
        answer = host.request(
            "DELETE", "/livekit/participant", TOKEN_A, json={"room_name": "r", "participant_identity": "x"}
        )
        assert host.served.app.extensions["livekit_moderation"].audit_log.flush()  # written in the background
    assert (answer.status_code, answer.json()["status"]) == (200, "removed")
    assert emu.participant("r", "x") is None
    unavailable = [r for r in caplog.records if "ban store unavailable" in r.getMessage()]
    assert len(unavailable) == 2  # tried once more
    (lost,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "entry lost" in lost.getMessage() and "'x'" in lost.getMessage()
    listed = host.request("GET", AUDIT, TOKEN_A)
    assert (listed.status_code, listed.json()["code"]) == (503, "BAN_STORE_UNAVAILABLE")


def test_signals_and_the_log_line_name_the_acting_moderator(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = livekit_emulator
    host = hosts(LIVEKIT_MODERATION_API_SECRETS=SECRETS)
    removed: list[dict[str, Any]] = []
    signals.participant_removed.connect_via(host.served.app)(lambda sender, **data: removed.append(data))
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "x", tracks=[])
    with caplog.at_level(logging.INFO, logger="flask_livekit_moderation"):
        assert (
            host.request(
                "DELETE", "/livekit/participant", ALICE, json={"room_name": "r", "participant_identity": "x"}
            ).status_code
            == 200
        )
        assert host.ban("r", "y", token=TOKEN_A).status_code == 201
    assert removed[0]["actor"] == "alice" and removed[0]["auth_id"] == "tenant-a"
    assert host.signalled("moderation_finished")[0]["actor"] == "alice"
    assert host.signalled("participant_banned")[0]["actor"] == "tenant-a"  # no actor: the id acts
    lines = [r for r in caplog.records if r.getMessage().startswith("livekit moderation action=")]
    assert "actor='alice'" in lines[0].getMessage() and lines[0].moderation_actor == "alice"  # type: ignore[attr-defined]


def _fill(host: Host, count: int, rooms: tuple[str, ...], owner: str = "tenant-a") -> list[str]:
    """``count`` entries of ``owner`` written straight into the host's log (one per ms, rooms in turn)."""
    log = host.served.app.extensions["livekit_moderation"].audit_log
    start = time.time() - count / 1000 - 1
    ids = []
    for n in range(count):
        entry = Entry(
            new_id(start + n / 1000),
            owner,
            "bot",
            "mute",
            rooms[n % len(rooms)],
            f"p{n}",
            {"n": n},
            "muted",
            200,
        )
        log.add(entry)
        ids.append(entry.id)
    return ids


@pytest.mark.parametrize("limit", [1000, 7])
def test_pagination_over_2500_entries_has_no_gap_and_no_duplicate(
    hosts: Callable[..., Host], limit: int
) -> None:
    host = hosts()
    ids = _fill(host, 2500, ("r", "s"))
    _fill(host, 40, ("r",), owner="tenant-b")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"room_name": "r", "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = audit(host, TOKEN_A, **params)
        pages += 1
        seen += [e["id"] for e in page["entries"]]
        if pages == 2:  # written while paging: newer than every page to come, so not in them
            _fill(host, 3, ("r",))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [i for n, i in enumerate(ids) if n % 2 == 0][::-1]
    assert seen == expected
    assert pages == -(-1250 // limit)


def test_query_checks(hosts: Callable[..., Host]) -> None:
    host = hosts()
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "bm90LW91cnM"}, "cursor"),
        ({"since": "yesterday"}, "since"),
        ({"room_name": "  "}, "room_name"),
    ]:
        answer = host.request("GET", AUDIT, TOKEN_A, params=params)
        assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST")
        assert field in answer.json()["details"]


def test_since_until_and_retention(hosts: Callable[..., Host]) -> None:
    host = hosts(LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS=30)
    log = host.served.app.extensions["livekit_moderation"].audit_log
    now = time.time()
    for days in (31, 20, 10, 0):
        log.add(
            Entry(new_id(now - days * 86400), "tenant-a", "a", "remove", "r", f"d{days}", {}, "removed", 200)
        )
    listed = lambda **p: [e["participant_identity"] for e in audit(host, TOKEN_A, **p)["entries"]]  # noqa: E731
    assert listed() == ["d0", "d10", "d20"]  # 31 days old is past the retention
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 15 * 86400))
    until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 5 * 86400))
    assert listed(since=since) == ["d0", "d10"]
    assert listed(since=since, until=until) == ["d10"]


def test_retention_zero_keeps_no_audit_log(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    host = hosts(LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS=0)
    livekit_emulator.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "x", token=TOKEN_A).status_code == 201
    assert audit(host, TOKEN_A) == {"entries": [], "next_cursor": None}


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/restart.sqlite3"
    else:
        yield request.getfixturevalue("redis_url" if request.param == "redis" else "postgres_url")


def test_entries_survive_an_app_restart(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, store_url: str
) -> None:
    emu = livekit_emulator
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "x", tracks=[])
    first = hosts(LIVEKIT_MODERATION_BAN_STORE=store_url, LIVEKIT_MODERATION_API_SECRETS=SECRETS)
    assert (
        first.request(
            "DELETE", "/livekit/participant", ALICE, json={"room_name": "r", "participant_identity": "x"}
        ).status_code
        == 200
    )
    assert first.ban("r", "y", token=TOKEN_A, reason="nul\x00 and ünïcode").status_code == 201
    _fill(first, 30, ("r",), owner="tenant-b")
    before = audit(first, TOKEN_A)["entries"]
    first.moderation.close()

    again = hosts(LIVEKIT_MODERATION_BAN_STORE=store_url, LIVEKIT_MODERATION_API_SECRETS=SECRETS)
    after = audit(again, TOKEN_A, room_name="r")
    assert after["entries"] == before
    assert summary(after["entries"]) == [
        ("tenant-a", "ban", "y", "banned"),
        ("alice", "remove", "x", "removed"),
    ]
    assert after["entries"][0]["details"]["reason"] == "nul\x00 and ünïcode"
    first_page = audit(again, TOKEN_B, limit=20)
    rest = audit(again, TOKEN_B, limit=20, cursor=first_page["next_cursor"])
    assert len(first_page["entries"]) == 20 and len(rest["entries"]) == 10 and rest["next_cursor"] is None
    assert audit(again, TOKEN_B, action="ban")["entries"] == []
