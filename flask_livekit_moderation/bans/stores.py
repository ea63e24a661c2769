"""The stores that keep bans, behind one small interface (:class:`BanStore`).

Chosen by ``LIVEKIT_MODERATION_BAN_STORE`` (see :func:`open_store`):

- ``sqlite:///path`` (the default, under ``app.instance_path``): an embedded file shared by
  every worker process of one host; WAL mode, schema created on first use;
- ``redis://`` / ``rediss://``: one Redis shared by several hosts (``pip install
  'flask-livekit-moderation[redis]'``); a key per ban expiring with it, an index per room;
- ``memory://``: one process only (tests, demos).

Expired bans are never returned and are purged as the store is written to. A store that
cannot be reached raises 503 ``BAN_STORE_UNAVAILABLE`` (never "no ban": a store that is down
must not let a banned participant back in).
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .. import errors
from ..config import ConfigurationError
from ..errors import ModerationError
from .model import Ban, Clock, utc_datetime

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("flask_livekit_moderation")

#: Seconds a store operation may wait (SQLite's busy timeout, Redis's socket timeouts).
STORE_TIMEOUT = 1.0
#: The config key naming the store, and the default store's file under ``app.instance_path``.
CONFIG_KEY = "LIVEKIT_MODERATION_BAN_STORE"
DEFAULT_FILE = "livekit_moderation.sqlite3"


def _unavailable(store: str, exc: BaseException) -> ModerationError:
    # The exception's type only: a message may quote a URL with its password.
    logger.warning("ban store unavailable: %s failed with %s", store, type(exc).__name__)
    return errors.BAN_STORE_UNAVAILABLE()


class BanStore(abc.ABC):
    """Where bans are kept. Every method raises 503 ``BAN_STORE_UNAVAILABLE`` when the store fails.

    ``owner=None`` in :meth:`list_bans` and :meth:`lift` means "every owner" (callers for all
    rooms); a string names one owner (``""``: rooms with no owner).
    """

    #: The URL scheme, for logs (never the URL: it may hold a password).
    kind = "store"

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    @abc.abstractmethod
    def put(self, ban: Ban) -> None:
        """Record ``ban``, replacing the expiry and reason of a ban with the same key."""

    def put_many(self, bans: Iterable[Ban]) -> None:
        """Record many bans (one transaction or round trip where the store allows)."""
        for ban in bans:
            self.put(ban)

    @abc.abstractmethod
    def get(self, owner: str, room_name: str, identity: str) -> Ban | None:
        """The active ban of ``identity`` in ``owner``'s room ``room_name``, or ``None``."""

    @abc.abstractmethod
    def list_bans(self, owner: str | None, room_name: str) -> list[Ban]:
        """The active bans of ``room_name`` (of ``owner``'s room, or of every owner's)."""

    @abc.abstractmethod
    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        """Delete the bans of ``identity`` in ``room_name``; returns those that were active."""

    def close(self) -> None:  # noqa: B027 - nothing to release for most stores
        """Release connections; the store reconnects on its next use."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _sorted(bans: Iterable[Ban]) -> list[Ban]:
    return sorted(bans, key=lambda ban: (ban.participant_identity, ban.owner))


class MemoryBanStore(BanStore):
    """Bans in a dict of this process (``memory://``): for tests and demos, not for several workers."""

    kind = "memory"

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._bans: dict[tuple[str, str, str], Ban] = {}

    def _purge(self, now: float) -> None:
        for key in [key for key, ban in self._bans.items() if not ban.active(now)]:
            del self._bans[key]

    def put(self, ban: Ban) -> None:
        with self._lock:
            self._purge(self.clock())
            self._bans[(ban.owner, ban.room_name, ban.participant_identity)] = ban

    def get(self, owner: str, room_name: str, identity: str) -> Ban | None:
        ban = self._bans.get((owner, room_name, identity))
        return ban if ban is not None and ban.active(self.clock()) else None

    def list_bans(self, owner: str | None, room_name: str) -> list[Ban]:
        now = self.clock()
        with self._lock:
            found = [
                ban
                for (ban_owner, room, _), ban in self._bans.items()
                if room == room_name and (owner is None or ban_owner == owner) and ban.active(now)
            ]
        return _sorted(found)

    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        now = self.clock()
        with self._lock:
            keys = [
                key
                for key in self._bans
                if key[1] == room_name and key[2] == identity and (owner is None or key[0] == owner)
            ]
            lifted = [self._bans.pop(key) for key in keys]
        return _sorted(ban for ban in lifted if ban.active(now))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS livekit_moderation_bans (
    room_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    identity TEXT NOT NULL,
    expires_at REAL NOT NULL,
    banned_at REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (room_name, owner, identity)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS livekit_moderation_bans_expiry ON livekit_moderation_bans (expires_at);
"""
_COLUMNS = "owner, room_name, identity, expires_at, banned_at, reason"


def _row_ban(row: tuple[Any, ...]) -> Ban:
    owner, room_name, identity, expires_at, banned_at, reason = row
    return Ban(owner, room_name, identity, utc_datetime(expires_at), utc_datetime(banned_at), reason)


class SQLiteBanStore(BanStore):
    """Bans in one SQLite file shared by every process of a host (``sqlite:///path``).

    One connection per thread and process (a forked worker opens its own); WAL mode so
    readers never wait for the writer; the directory, the file and the table are created on
    first use, not at start-up.
    """

    kind = "sqlite"

    def __init__(self, path: str, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.path = path
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._ready = False

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A forked child: the parent's connections are not ours to use or close, and its
            # lock may have been held at fork time. (Two threads racing here both start afresh:
            # the loser merely opens its connection again on its next call.)
            self._lock, self._local, self._connections = threading.Lock(), threading.local(), []
            self._pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=STORE_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        connection.execute("PRAGMA journal_mode=WAL")
                        connection.executescript(_SCHEMA)
                        self._ready = True
        except BaseException:
            connection.close()
            raise
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            try:
                connection.close()
            except sqlite3.Error:
                pass

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connection()
        except (sqlite3.Error, OSError) as exc:
            # A broken connection (file deleted, disk full) is opened afresh next time.
            self._forget_connection()
            raise _unavailable(self.kind, exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _insert(self, connection: sqlite3.Connection, bans: Iterable[Ban]) -> None:
        connection.execute("DELETE FROM livekit_moderation_bans WHERE expires_at <= ?", (self.clock(),))
        connection.executemany(
            f"INSERT INTO livekit_moderation_bans ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (room_name, owner, identity) DO UPDATE SET "
            "expires_at = excluded.expires_at, banned_at = excluded.banned_at, reason = excluded.reason",
            (
                (
                    ban.owner,
                    ban.room_name,
                    ban.participant_identity,
                    ban.expires_at.timestamp(),
                    ban.banned_at.timestamp(),
                    ban.reason,
                )
                for ban in bans
            ),
        )

    def put(self, ban: Ban) -> None:
        with self._transaction() as connection:
            self._insert(connection, (ban,))

    def put_many(self, bans: Iterable[Ban]) -> None:
        with self._transaction() as connection:
            self._insert(connection, bans)

    def get(self, owner: str, room_name: str, identity: str) -> Ban | None:
        with self._using() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM livekit_moderation_bans "
                "WHERE room_name = ? AND owner = ? AND identity = ? AND expires_at > ?",
                (room_name, owner, identity, self.clock()),
            ).fetchone()
        return None if row is None else _row_ban(row)

    def list_bans(self, owner: str | None, room_name: str) -> list[Ban]:
        query = f"SELECT {_COLUMNS} FROM livekit_moderation_bans WHERE room_name = ? AND expires_at > ?"
        parameters: tuple[Any, ...] = (room_name, self.clock())
        if owner is not None:
            query, parameters = query + " AND owner = ?", (*parameters, owner)
        with self._using() as connection:
            rows = connection.execute(query + " ORDER BY identity, owner", parameters).fetchall()
        return [_row_ban(row) for row in rows]

    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        where = "WHERE room_name = ? AND identity = ?"
        parameters: tuple[Any, ...] = (room_name, identity)
        if owner is not None:
            where, parameters = where + " AND owner = ?", (*parameters, owner)
        now = self.clock()
        with self._transaction() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM livekit_moderation_bans {where} AND expires_at > ?",
                (*parameters, now),
            ).fetchall()
            connection.execute(f"DELETE FROM livekit_moderation_bans {where}", parameters)
        return _sorted(_row_ban(row) for row in rows)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        if self._pid != os.getpid():
            return
        for connection in connections:
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def __repr__(self) -> str:
        return f"<SQLiteBanStore {self.path!r}>"


# Redis: the key of a ban and the index of a room share a hash tag (the room's digest), so
# the scripts touch one slot. Names are JSON-encoded: any character may appear in them.
_REDIS_PREFIX = "livekit_moderation:bans:"
# KEYS: ban, index. ARGV: value, expiry (ms), index member, now (ms).
_PUT_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[2], last[2]) end
return 1
"""
# KEYS: ban, index. ARGV: index member. Returns the ban's value (nil when there was none).
_LIFT_SCRIPT = """
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RedisBanStore(BanStore):
    """Bans in Redis, shared by every host (``redis://`` or ``rediss://``).

    Each ban is one key that expires with the ban (``PEXPIREAT``); each room has a sorted set
    of its bans scored by expiry, for listing, that expires with its last ban. Looking a ban
    up is one ``GET``: one round trip.
    """

    kind = "redis"

    def __init__(self, client: redis.Redis, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.client = client
        self._put = client.register_script(_PUT_SCRIPT)
        self._lift = client.register_script(_LIFT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, clock: Clock = time.time) -> RedisBanStore:
        """A store on the Redis at ``url``; raises ``ValueError`` for a URL it cannot use.

        Timeouts default to :data:`STORE_TIMEOUT` and a failed call is retried once at
        once; options in the URL's query (``?socket_timeout=...``) win.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_timeout=STORE_TIMEOUT,
            socket_connect_timeout=STORE_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, clock)

    @staticmethod
    def _keys(owner: str, room_name: str, identity: str) -> tuple[str, str, str]:
        tag = hashlib.sha256(room_name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        ban = f"{_REDIS_PREFIX}{{{tag}}}:ban:" + json.dumps([owner, room_name, identity])
        index = f"{_REDIS_PREFIX}{{{tag}}}:room:" + json.dumps(room_name)
        return ban, index, json.dumps([owner, identity])

    @contextmanager
    def _calling(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.RedisError, OSError, ValueError) as exc:
            raise _unavailable(self.kind, exc) from None

    @staticmethod
    def _value(ban: Ban) -> str:
        return json.dumps(
            {
                "expires_at": ban.expires_at.timestamp(),
                "banned_at": ban.banned_at.timestamp(),
                "reason": ban.reason,
            }
        )

    @staticmethod
    def _ban(owner: str, room_name: str, identity: str, value: bytes | str) -> Ban:
        data = json.loads(value)
        return Ban(
            owner,
            room_name,
            identity,
            utc_datetime(data["expires_at"]),
            utc_datetime(data["banned_at"]),
            data["reason"],
        )

    def _put_args(self, ban: Ban, now_ms: int) -> tuple[list[str], list[Any]]:
        key, index, member = self._keys(ban.owner, ban.room_name, ban.participant_identity)
        return [key, index], [self._value(ban), _ms(ban.expires_at), member, now_ms]

    def put(self, ban: Ban) -> None:
        keys, args = self._put_args(ban, int(self.clock() * 1000))
        with self._calling():
            self._put(keys=keys, args=args)

    def put_many(self, bans: Iterable[Ban]) -> None:
        now_ms = int(self.clock() * 1000)
        with self._calling():
            pipe = self.client.pipeline(transaction=False)
            for ban in bans:
                keys, args = self._put_args(ban, now_ms)
                self._put(keys=keys, args=args, client=pipe)
            pipe.execute()

    def get(self, owner: str, room_name: str, identity: str) -> Ban | None:
        key, _, _ = self._keys(owner, room_name, identity)
        with self._calling():
            value = self.client.get(key)
            if value is None:
                return None
            ban = self._ban(owner, room_name, identity, value)
        return ban if ban.active(self.clock()) else None

    def _members(self, owner: str | None, room_name: str, identity: str | None) -> list[tuple[str, str]]:
        _, index, _ = self._keys("", room_name, "")
        now_ms = int(self.clock() * 1000)
        found = []
        members: list[bytes] = self.client.zrangebyscore(index, f"({now_ms}", "+inf")  # type: ignore[assignment]
        for raw in members:
            member_owner, member_identity = json.loads(raw)
            if (owner is None or member_owner == owner) and (identity is None or member_identity == identity):
                found.append((member_owner, member_identity))
        return found

    def list_bans(self, owner: str | None, room_name: str) -> list[Ban]:
        with self._calling():
            members = self._members(owner, room_name, None)
            if not members:
                return []
            values = self.client.mget([self._keys(o, room_name, i)[0] for o, i in members])
            bans = [
                self._ban(o, room_name, i, v)
                for (o, i), v in zip(members, values, strict=True)
                if v is not None
            ]
        now = self.clock()
        return _sorted(ban for ban in bans if ban.active(now))

    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        with self._calling():
            owners = (
                [owner] if owner is not None else [o for o, _ in self._members(None, room_name, identity)]
            )
            lifted = []
            for each in owners:
                key, index, member = self._keys(each, room_name, identity)
                value = self._lift(keys=[key, index], args=[member])
                if value is not None:
                    lifted.append(self._ban(each, room_name, identity, value))
        now = self.clock()
        return _sorted(ban for ban in lifted if ban.active(now))

    def close(self) -> None:
        self.client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return "<RedisBanStore>"


def default_url(instance_path: str) -> str:
    """The default store: ``sqlite:///{instance_path}/livekit_moderation.sqlite3``."""
    return f"sqlite:///{os.path.join(instance_path, DEFAULT_FILE)}"


def open_store(url: Any, instance_path: str) -> BanStore:
    """The store ``url`` names, checked now but connected on first use.

    ``sqlite:///relative.sqlite3`` is relative to ``instance_path`` (as Flask-SQLAlchemy
    reads it), ``sqlite:////abs/path.sqlite3`` absolute. Raises
    :class:`~.config.ConfigurationError` for a URL that cannot work (the message never
    quotes the URL: it may hold a password).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{CONFIG_KEY} must be a URL: sqlite:///path, redis://..., or memory://")
    scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        if url.lower() not in ("memory://", "memory:"):
            raise ConfigurationError(f"{CONFIG_KEY}: write the one-process store as memory://")
        return MemoryBanStore()
    if scheme == "sqlite":
        return SQLiteBanStore(_sqlite_path(url, instance_path))
    if scheme in ("redis", "rediss"):
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                f"{CONFIG_KEY} is a Redis URL but redis-py is not installed: "
                "pip install 'flask-livekit-moderation[redis]'"
            ) from None
        try:
            return RedisBanStore.from_url(url)
        except ValueError:
            raise ConfigurationError(f"{CONFIG_KEY} is not a usable Redis URL") from None
    raise ConfigurationError(
        f"{CONFIG_KEY}: unknown scheme {scheme!r}; use sqlite:///path, redis://host:port/db, "
        "rediss://... or memory://"
    )


def _sqlite_path(url: str, instance_path: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ConfigurationError(
            f"{CONFIG_KEY}: write SQLite URLs as sqlite:///relative or sqlite:////absolute"
        )
    path = url[len("sqlite:///") :]
    if "?" in path or "#" in path:
        raise ConfigurationError(f"{CONFIG_KEY}: a SQLite URL takes no query or fragment")
    path = unquote(path)
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"{CONFIG_KEY}: an in-memory SQLite database is not shared between threads; use memory://"
        )
    path = os.path.join(instance_path, path)  # an absolute path stays as it is
    if os.path.isdir(path):
        raise ConfigurationError(f"{CONFIG_KEY}: the SQLite path is a directory, not a file")
    return path
