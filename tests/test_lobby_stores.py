"""Every store keeps lobbies alike: memory, SQLite, a real Redis and a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_livekit_moderation import ModerationError
from flask_livekit_moderation.bans import (
    BanStore,
    MemoryBanStore,
    PostgreSQLBanStore,
    RedisBanStore,
    SQLiteBanStore,
)
from flask_livekit_moderation.lobby import LobbyStore, lobby_store
from tests.test_ban_stores import Clock


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def lobby(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LobbyStore, Clock]]:
    """The lobby in each store, on an empty store (the test process's servers, emptied)."""
    clock = Clock()
    store: BanStore
    if request.param == "memory":
        store = MemoryBanStore(clock)
    elif request.param == "sqlite":
        store = SQLiteBanStore(str(tmp_path / "bans.sqlite3"), clock)
    elif request.param == "redis":
        store = RedisBanStore.from_url(request.getfixturevalue("redis_url"), clock)
    else:
        store = PostgreSQLBanStore(request.getfixturevalue("postgres_url"), clock)
    found = lobby_store(store)
    assert lobby_store(store) is found
    try:
        yield found, clock
    finally:
        store.close()


def test_knock_lock_decide_unlock(lobby: tuple[LobbyStore, Clock]) -> None:
    store, clock = lobby
    # Unlocked: admitted at once, nothing recorded.
    assert store.knock("a", "r", "guest", "Guest").status == "admitted"
    assert store.admission("a", "r", "guest").admitted and store.locked_at("a", "r") is None
    assert store.locked_rooms() == [] and not store.any_locked()

    locked_at = store.lock("a", "r", ["present"])
    assert locked_at == clock.now
    clock.now += 5
    assert store.lock("a", "r", []) == locked_at  # locking again keeps the first lock
    assert store.locked_rooms() == [("a", "r")] and store.any_locked()
    assert store.admission("a", "r", "present").status == "admitted"

    first = store.knock("a", "r", "guest", "Guest \u00e9\x00")
    assert (first.status, first.name, first.locked) == ("waiting", "Guest \u00e9\x00", True)
    assert first.knocked_at is not None and abs(first.knocked_at.timestamp() - clock.now) < 1e-5
    assert first.revoke_token_ts == int(locked_at) + 1
    clock.now += 1
    again = store.knock("a", "r", "guest", "Other")
    assert (again.status, again.knocked_at, again.name) == ("waiting", first.knocked_at, "Guest \u00e9\x00")
    never = store.admission("a", "r", "stranger")
    assert (never.admitted, never.knocked_at) == (False, None)

    # Another owner's room of the same name is another lobby.
    assert store.knock("b", "r", "guest", None).status == "admitted"
    assert store.waiting("b", "r", limit=10) == []

    store.decide("a", "r", ["guest", "early"], "admitted")
    assert store.knock("a", "r", "guest", None).status == "admitted"
    assert store.knock("a", "r", "early", None).knocked_at is None  # admitted in advance: no knock
    store.knock("a", "r", "pest", None)
    store.decide("a", "r", ["pest"], "denied")
    assert store.knock("a", "r", "pest", None).status == "denied"
    assert store.waiting("a", "r", limit=10) == []

    assert store.unlock("a", "r") is True and store.unlock("a", "r") is False
    assert store.knock("a", "r", "pest", None).status == "admitted"
    assert store.locked_rooms() == []
    # Unlocking forgot everything: a new lock starts afresh.
    store.lock("a", "r", [])
    assert store.knock("a", "r", "guest", None).status == "waiting"


def test_decisions_before_the_lock_hold_once_locked(lobby: tuple[LobbyStore, Clock]) -> None:
    store, _ = lobby
    store.decide("a", "r", ["vip"], "admitted")
    store.decide("a", "r", ["pest"], "denied")
    store.lock("a", "r", [])
    assert store.admission("a", "r", "vip").admitted
    assert store.knock("a", "r", "pest", None).status == "denied"


def test_waiting_pages_in_knock_order(lobby: tuple[LobbyStore, Clock]) -> None:
    store, clock = lobby
    store.lock("a", "r", [])
    order = []
    for n in range(30):
        if n % 3 == 0:
            clock.now += 0.25  # three knocks share each moment: ties go by identity
        identity = f"g{(n * 7) % 30:02d}"
        store.knock("a", "r", identity, f"name {n}")
        order.append((clock.now, identity))
    expected = [identity for _, identity in sorted(order)]
    seen, after = [], None
    while True:
        page = store.waiting("a", "r", limit=4, after=after)
        seen += [w.participant_identity for w in page]
        if len(page) < 4:
            break
        after = (page[-1].knocked_at, page[-1].participant_identity)
    assert seen == expected
    first = store.waiting("a", "r", limit=1)[0]
    assert (first.name, first.knocked_at) == ("name 0", order[0][0])


def test_a_store_that_fails_answers_503_never_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "dir"
    path.write_text("a file where the database's directory should be")
    store = lobby_store(SQLiteBanStore(str(path / "bans.sqlite3")))
    for call in (
        lambda: store.knock("a", "r", "guest", None),
        lambda: store.admission("a", "r", "guest"),
        lambda: store.lock("a", "r", []),
    ):
        with pytest.raises(ModerationError) as refused:
            call()
        assert (refused.value.status, refused.value.code) == (503, "BAN_STORE_UNAVAILABLE")


def test_a_sqlite_file_deleted_mid_run_keeps_its_locks(tmp_path: Path) -> None:
    """As the bans: the lobby of a file deleted under the running app is copied into the new one
    (else its rooms would be unlocked)."""
    path = tmp_path / "bans.sqlite3"
    bans = SQLiteBanStore(str(path))
    store = lobby_store(bans)
    store.lock("a", "r", ["present"])
    store.knock("a", "r", "guest", "Guest")
    store.decide("a", "r", ["pest"], "denied")
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{path}{suffix}")
    assert store.knock("a", "r", "newcomer", None).status == "waiting"  # noticed, copied, still locked
    fresh = lobby_store(SQLiteBanStore(str(path)))
    assert fresh.locked_rooms() == [("a", "r")]
    assert [w.participant_identity for w in fresh.waiting("a", "r", limit=10)] == ["guest", "newcomer"]
    assert fresh.admission("a", "r", "present").admitted
    assert fresh.admission("a", "r", "pest").status == "denied"
    bans.close()
