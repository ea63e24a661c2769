"""The ban stores behind one interface: memory, SQLite (a real file), Redis and PostgreSQL
(real servers).

Every store runs the same contract with a controllable clock (bans, listing pages, the rooms
with bans, leases); then what each one adds: SQLite's lazy file, WAL and purge; Redis's expiring
keys and index; the URLs ``init_app`` accepts and refuses; and 503 ``BAN_STORE_UNAVAILABLE``
when a store cannot be reached.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_livekit_moderation import ConfigurationError, LiveKitModeration, ModerationError, errors
from flask_livekit_moderation.bans import (
    Ban,
    BanStore,
    MemoryBanStore,
    PostgreSQLBanStore,
    RedisBanStore,
    SQLiteBanStore,
    open_store,
)
from tests.redis_server import free_port, redis_server


class Clock:
    """Unix time that the test moves forward by hand (starting from the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def store_and_clock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BanStore, Clock]]:
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
    try:
        yield store, clock
    finally:
        store.close()


def ban(clock: Clock, owner: str, room: str, identity: str, seconds: float, reason: str | None = None) -> Ban:
    return Ban.starting_now(owner, room, identity, seconds, reason, clock)


def keys(bans: list[Ban]) -> list[tuple[str, str, str]]:
    return [(b.owner, b.room_name, b.participant_identity) for b in bans]


def test_put_get_replace_and_expire(store_and_clock: tuple[BanStore, Clock]) -> None:
    store, clock = store_and_clock
    assert store.get("a", "r", "troll") is None
    store.put(ban(clock, "a", "r", "troll", 60, "spam"))
    found = store.get("a", "r", "troll")
    assert found is not None and found.reason == "spam"
    assert found.expires_at.timestamp() == pytest.approx(clock.now + 60, abs=0.002)
    # Banning again replaces the expiry and the reason, even with a shorter one.
    clock.now += 5
    store.put(ban(clock, "a", "r", "troll", 10, None))
    again = store.get("a", "r", "troll")
    assert again is not None and again.reason is None
    assert again.expires_at.timestamp() == pytest.approx(clock.now + 10, abs=0.002)
    assert len(store.list_bans("a", "r")) == 1
    clock.now += 10.01
    assert store.get("a", "r", "troll") is None
    assert store.list_bans("a", "r") == [] and store.list_bans(None, "r") == []
    assert store.lift("a", "r", "troll") == []  # an expired ban is no ban


def test_owners_rooms_and_identities_are_separate(store_and_clock: tuple[BanStore, Clock]) -> None:
    store, clock = store_and_clock
    store.put_many(
        [
            ban(clock, "a", "r", "troll", 60),
            ban(clock, "b", "r", "troll", 60),
            ban(clock, "", "r", "bob", 60),
            ban(clock, "a", "r2", "troll", 60),
            # Names that a naive key join would confuse.
            ban(clock, "a\x00b", "r", "c", 60),
            ban(clock, "a", "r", "b\x00c", 60),
            ban(clock, 'x"}{', "r", "ü ✓", 60),
        ]
    )
    assert store.get("c", "r", "troll") is None and store.get("", "r", "troll") is None
    assert keys(store.list_bans("a", "r")) == [("a", "r", "b\x00c"), ("a", "r", "troll")]
    assert keys(store.list_bans("", "r")) == [("", "r", "bob")]
    assert keys(store.list_bans(None, "r")) == [
        ("a", "r", "b\x00c"),
        ("", "r", "bob"),
        ("a\x00b", "r", "c"),
        ("a", "r", "troll"),
        ("b", "r", "troll"),
        ('x"}{', "r", "ü ✓"),
    ]
    assert store.get('x"}{', "r", "ü ✓") is not None and store.get("a", "r", "b") is None
    # Lifting for one owner leaves the other owners' bans.
    assert keys(store.lift("a", "r", "troll")) == [("a", "r", "troll")]
    assert store.get("b", "r", "troll") is not None and store.get("a", "r2", "troll") is not None
    assert store.lift("a", "r", "troll") == []
    # Lifting for every owner (a caller for all rooms).
    store.put(ban(clock, "a", "r", "troll", 60))
    assert keys(store.lift(None, "r", "troll")) == [("a", "r", "troll"), ("b", "r", "troll")]
    assert store.get("a", "r", "troll") is None and store.get("b", "r", "troll") is None
    assert store.get("a", "r2", "troll") is not None


def test_listing_pages_through_in_identity_then_owner_order(store_and_clock: tuple[BanStore, Clock]) -> None:
    store, clock = store_and_clock
    identities = [f"user-{i:03d}" for i in range(25)] + ["", "Z", "a\x00", "ü", "✓"]
    identities.remove("")  # not a name a route accepts; the store needs none
    store.put_many(ban(clock, owner, "r", identity, 60) for identity in identities for owner in ("a", "b"))
    store.put(ban(clock, "a", "other-room", "user-000", 60))
    expected = sorted((identity, owner) for identity in identities for owner in ("a", "b"))
    assert [(b.participant_identity, b.owner) for b in store.list_bans(None, "r")] == expected
    # Every owner's, 7 at a time: each ban once, none missed, in order.
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        chunk = store.list_bans(None, "r", limit=7, after=after)
        seen += [(b.participant_identity, b.owner) for b in chunk]
        if len(chunk) < 7:
            break
        after = seen[-1]
    assert seen == expected
    # One owner's pages hold only that owner's bans.
    first = store.list_bans("a", "r", limit=10)
    rest = store.list_bans("a", "r", after=(first[-1].participant_identity, "a"))
    assert [b.participant_identity for b in first + rest] == sorted(identities)
    assert {b.owner for b in first + rest} == {"a"}
    # A key between two bans resumes at the next one; past the end there is nothing.
    assert [b.participant_identity for b in store.list_bans("b", "r", limit=2, after=("user-0035", "z"))] == [
        "user-004",
        "user-005",
    ]
    assert store.list_bans(None, "r", after=("\U0010ffff", "")) == []
    assert store.list_bans("nobody", "r", limit=5) == [] and store.list_bans(None, "r", limit=0) == []
    # Expired bans are skipped in pages too.
    clock.now += 61
    assert store.list_bans(None, "r", limit=5) == []


def test_banned_rooms_name_each_owner_and_room_with_an_active_ban(
    store_and_clock: tuple[BanStore, Clock],
) -> None:
    store, clock = store_and_clock
    assert store.banned_rooms() == [] and store.any_active() is False
    store.put_many(
        [
            ban(clock, "a", "r", "x", 60),
            ban(clock, "a", "r", "y", 60),
            ban(clock, "b", "r", "x", 10),
            ban(clock, "", "lobby", "x", 60),
            ban(clock, "a", "r\x00", "x", 60),
        ]
    )
    assert store.banned_rooms() == [("", "lobby"), ("a", "r"), ("b", "r"), ("a", "r\x00")]
    assert store.any_active() is True
    store.lift(None, "lobby", "x")
    clock.now += 11  # b's ban has expired
    assert store.banned_rooms() == [("a", "r"), ("a", "r\x00")]
    clock.now += 50  # all have expired
    assert store.banned_rooms() == [] and store.any_active() is False


def test_a_lease_has_one_holder_until_it_expires_or_is_released(
    store_and_clock: tuple[BanStore, Clock],
) -> None:
    store, clock = store_and_clock
    assert store.lease("reconciler", "one", 10) == "one"
    assert store.lease("reconciler", "two", 10) == "one"  # held: the other waits
    clock.now += 9
    assert store.lease("reconciler", "one", 10) == "one"  # renewed for 10 more
    clock.now += 9
    assert store.lease("reconciler", "two", 10) == "one"
    clock.now += 1.01  # expired: the holder died
    assert store.lease("reconciler", "two", 10) == "two"
    assert store.lease("reconciler", "one", 10) == "two"
    store.release("reconciler", "one")  # not its lease: nothing happens
    assert store.lease("reconciler", "one", 10) == "two"
    store.release("reconciler", "two")
    assert store.lease("reconciler", "one", 10) == "one"
    # Names are separate, and any text may be one.
    assert store.lease("event:EV_1\x00ü", "two", 10) == "two"
    # Handing over: only by the holder of an unexpired lease.
    assert store.hand_over("event:EV_1\x00ü", "one", "done", 600) is False
    assert store.hand_over("event:EV_1\x00ü", "two", "done", 600) is True
    assert store.lease("event:EV_1\x00ü", "three", 10) == "done"
    clock.now += 599
    assert store.lease("event:EV_1\x00ü", "three", 10) == "done"
    clock.now += 1.01
    assert store.lease("event:EV_1\x00ü", "three", 10) == "three"
    clock.now += 10.01
    assert store.hand_over("event:EV_1\x00ü", "three", "done", 600) is False  # it had expired
    # Bans and leases do not see each other.
    assert store.banned_rooms() == [] and store.get("", "reconciler", "one") is None


def test_sqlite_is_created_on_first_use_in_wal_mode_and_purges(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "instance" / "nested" / "bans.sqlite3"
    store = SQLiteBanStore(str(path), clock)
    assert not path.parent.exists()  # nothing on disk before the first use
    assert store.get("a", "r", "x") is None
    assert path.exists()
    store.put_many(ban(clock, "a", "r", f"p{i}", 1 + i) for i in range(5))
    clock.now += 3.5  # p0, p1 and p2 have expired
    store.put(ban(clock, "a", "r", "new", 60))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT identity FROM livekit_moderation_bans ORDER BY identity").fetchall()
    assert rows == [("new",), ("p3",), ("p4",)]  # the write purged what had expired
    # Another store on the same file (another worker process) sees the same bans.
    other = SQLiteBanStore(str(path), clock)
    assert [b.participant_identity for b in other.list_bans("a", "r")] == ["new", "p3", "p4"]
    store.close()
    other.close()
    assert store.get("a", "r", "new") is not None  # closing only drops connections


def test_redis_keys_expire_with_their_bans(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    raw.flushdb()
    store = RedisBanStore.from_url(redis_url)
    store.put(Ban.starting_now("a", "r", "troll", 30))
    store.put(Ban.starting_now("a", "r", "bob", 90))
    keys = [key.decode() if isinstance(key, bytes) else key for key in raw.keys("*")]
    rooms = "livekit_moderation:bans:rooms"
    by_kind = {key.split(":")[3]: key for key in keys if key != rooms}
    assert len(keys) == 4  # two bans, one index for the room, the set of rooms with bans
    ttls = sorted(raw.pttl(key) for key in keys)
    assert 29_000 < ttls[0] <= 30_000 and all(89_000 < ttl <= 90_000 for ttl in ttls[1:])
    assert 89_000 < raw.pttl(by_kind["room"]) <= 90_000  # the index lives as long as its last ban
    assert 89_000 < raw.pttl(rooms) <= 90_000  # and so does the set of rooms
    store.lift("a", "r", "bob")
    store.lift("a", "r", "troll")
    assert raw.keys("*") == [rooms.encode()]  # only the set of rooms is left, expiring by itself
    raw.flushdb()
    store.put(Ban.starting_now("a", "r", "short", 1))
    time.sleep(1.1)
    assert raw.keys("*") == [] and store.get("a", "r", "short") is None  # Redis expired them all
    store.close()


def test_an_unreachable_store_is_503_never_no_ban(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    down = RedisBanStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    broken = SQLiteBanStore(str(blocker / "bans.sqlite3"))  # its directory cannot be created
    postgres_down = PostgreSQLBanStore(f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres")
    for store in (down, broken, postgres_down):
        for call in (
            lambda s=store: s.get("a", "r", "x"),
            lambda s=store: s.put(Ban.starting_now("a", "r", "x", 60)),
            lambda s=store: s.list_bans("a", "r"),
            lambda s=store: s.lift(None, "r", "x"),
            lambda s=store: s.banned_rooms(),
            lambda s=store: s.any_active(),
            lambda s=store: s.lease("reconciler", "one", 10),
            lambda s=store: s.hand_over("reconciler", "one", "two", 10),
            lambda s=store: s.release("reconciler", "one"),
        ):
            with pytest.raises(ModerationError) as caught:
                call()
            assert (caught.value.status, caught.value.code) == (503, "BAN_STORE_UNAVAILABLE")
            assert caught.value.headers == {"Retry-After": "1"}


def test_redis_comes_back_after_a_restart() -> None:
    with redis_server() as first:
        store = RedisBanStore.from_url(first.url)
        store.put(Ban.starting_now("a", "r", "x", 60))
        port = first.port
    with pytest.raises(ModerationError):
        store.get("a", "r", "x")
    # A new server on the same port (nothing was persisted): the pooled client reconnects.
    with redis_server(port):
        assert store.get("a", "r", "x") is None
        store.put(Ban.starting_now("a", "r", "x", 60))
        assert store.get("a", "r", "x") is not None
    store.close()


def _closed_port() -> int:
    return free_port()


# -- the URL, read by init_app ------------------------------------------------------------


def _app(tmp_path: Path, **config: object) -> Flask:
    app = Flask("host", instance_path=str(tmp_path / "instance"))
    app.config.update({"LIVEKIT_MODERATION_AUTH_REQUIRED": False, **config})  # open mode, on purpose
    return app


def test_the_default_is_sqlite_under_the_instance_path_created_on_first_use(tmp_path: Path) -> None:
    app = _app(tmp_path)
    moderation = LiveKitModeration(app)
    store = app.extensions["livekit_moderation"].bans
    assert isinstance(store, SQLiteBanStore)
    assert store.path == str(tmp_path / "instance" / "livekit_moderation.sqlite3")
    assert not (tmp_path / "instance").exists()  # init_app writes nothing
    with app.app_context():
        assert moderation.active_ban("r", "x", owner="a") is None
    assert (tmp_path / "instance" / "livekit_moderation.sqlite3").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", MemoryBanStore),
        ("sqlite:///bans.db", SQLiteBanStore),
        ("redis://127.0.0.1:6399/2", RedisBanStore),
        ("rediss://:password@example.invalid:6380/0", RedisBanStore),
        ("postgresql://user:password@127.0.0.1:9/bans", PostgreSQLBanStore),
        ("postgresql+psycopg://user:password@db.example.invalid/bans?sslmode=require", PostgreSQLBanStore),
    ],
)
def test_accepted_urls(tmp_path: Path, url: str, expected: type[BanStore]) -> None:
    app = _app(tmp_path, LIVEKIT_MODERATION_BAN_STORE=url)
    LiveKitModeration(app)
    store = app.extensions["livekit_moderation"].bans
    assert type(store) is expected
    if isinstance(store, SQLiteBanStore):  # relative to the instance path, as Flask-SQLAlchemy does
        assert store.path == str(tmp_path / "instance" / "bans.db")
    assert "password" not in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "",
        42,
        "ftp://host/x",
        "postgres://user:secret@db/x",
        "memory://somewhere",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///bans.db?mode=ro",
        "sqlite://relative.db",
        "redis://host:port-is-not-a-number/0",
        "postgresql://user:secret@host:port-is-not-a-number/x",
        "postgresql+psycopg2://user:secret@db/x",
    ],
)
def test_bad_urls_fail_at_init_app(tmp_path: Path, url: object) -> None:
    app = _app(tmp_path, LIVEKIT_MODERATION_BAN_STORE=url)
    with pytest.raises(ConfigurationError) as caught:
        LiveKitModeration(app)
    assert "secret" not in str(caught.value)  # the URL, which may hold a password, is never quoted
    assert "livekit_moderation" not in app.extensions and not app.blueprints


def test_a_directory_is_no_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "instance" / "dir").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="directory"):
        open_store("sqlite:///dir", str(tmp_path / "instance"))


def test_open_store_reads_nothing_but_the_url(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path))
    factories: list[Callable[[], BanStore]] = [
        lambda: open_store("sqlite:///x/y/z.sqlite3", str(tmp_path)),
        lambda: open_store(f"redis://127.0.0.1:{_closed_port()}/0", str(tmp_path)),
        lambda: open_store(f"postgresql://u:p@127.0.0.1:{_closed_port()}/db", str(tmp_path)),
    ]
    for factory in factories:
        factory().close()
    assert set(os.listdir(tmp_path)) == before
    assert errors.BAN_STORE_UNAVAILABLE in errors.ALL
