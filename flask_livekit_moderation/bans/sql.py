"""The SQL stores: SQLite (the default, ``sqlite:///path``) and PostgreSQL (``postgresql://``).

Both run the same statements (:class:`SQLBanStore`: bans, listing pages, leases); only the
driver under them differs. PostgreSQL goes through SQLAlchemy Core 2.x with psycopg 3
(``pip install 'flask-livekit-moderation[postgresql]'``). SQLite keeps Python's own ``sqlite3``
under the same statements: through SQLAlchemy its look-up with 1,000,000 bans still meets the
0.2 ms target, but costs 2.6 times as much on the hot path of every webhook and token
(``benchmarks/bans.py``, README "Choosing the store"); SQLAlchemy is not needed for the default
store; and noticing a deleted file needs the connections themselves, which a pool hides.

Names are stored as SQLite ``TEXT`` and as PostgreSQL ``BYTEA`` (their UTF-8): PostgreSQL text
cannot hold NUL, which JSON lets a room name or identity contain, and ``BYTEA`` compares like
SQLite's ``TEXT`` (byte by byte), so both list in the same order.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .base import STORE_TIMEOUT, After, BanStore, unavailable
from .model import Ban, Clock, utc_datetime

#: Seconds a SQLite write waits for the file's write lock. Longer than the other stores'
#: timeout: the workers of a host queue for one lock, and a transaction's Python statements
#: between BEGIN and COMMIT need the GIL, so under a burst of concurrent writes (a raid's
#: webhooks) the wait is the queue's, not a failure (measured: 1 s refused 22 of 300).
SQLITE_BUSY_TIMEOUT = 5.0

if TYPE_CHECKING:
    import sqlalchemy

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flask_livekit_moderation")

_BAN_COLUMNS = "owner, room_name, identity, expires_at, banned_at, reason"
_UPSERT_BAN = (
    f"INSERT INTO livekit_moderation_bans ({_BAN_COLUMNS}) "
    "VALUES (:owner, :room_name, :identity, :expires_at, :banned_at, :reason) "
    "ON CONFLICT (room_name, owner, identity) DO UPDATE SET "
    "expires_at = excluded.expires_at, banned_at = excluded.banned_at, reason = excluded.reason"
)
#: As :data:`_UPSERT_BAN`, keeping whichever of the two bans was made last.
_MERGE_BAN = _UPSERT_BAN + " WHERE excluded.banned_at > livekit_moderation_bans.banned_at"
_PURGE_BANS = "DELETE FROM livekit_moderation_bans WHERE expires_at <= :now"
_GET_BAN = (
    f"SELECT {_BAN_COLUMNS} FROM livekit_moderation_bans "
    "WHERE room_name = :room_name AND owner = :owner AND identity = :identity AND expires_at > :now"
)
_ACTIVE_BANS = f"SELECT {_BAN_COLUMNS} FROM livekit_moderation_bans WHERE expires_at > :now"
_BANNED_ROOMS = (
    "SELECT DISTINCT owner, room_name FROM livekit_moderation_bans WHERE expires_at > :now "
    "ORDER BY room_name, owner"
)
_ANY_ACTIVE = "SELECT 1 FROM livekit_moderation_bans WHERE expires_at > :now LIMIT 1"
_PURGE_LEASES = "DELETE FROM livekit_moderation_leases WHERE expires_at <= :now"
_TAKE_LEASE = (
    "INSERT INTO livekit_moderation_leases (name, holder, expires_at) VALUES (:name, :holder, :expires_at) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE livekit_moderation_leases.holder = excluded.holder OR livekit_moderation_leases.expires_at <= :now"
)
_LEASE_HOLDER = "SELECT holder FROM livekit_moderation_leases WHERE name = :name"
_HAND_OVER = (
    "UPDATE livekit_moderation_leases SET holder = :new_holder, expires_at = :expires_at "
    "WHERE name = :name AND holder = :holder AND expires_at > :now"
)
_RELEASE = "DELETE FROM livekit_moderation_leases WHERE name = :name AND holder = :holder"


@functools.lru_cache(maxsize=16)
def _listing(one_owner: bool, resumed: bool, limited: bool) -> str:
    """The listing statement: one owner's or every owner's, after a key or from the start, paged or not."""
    sql = f"{_ACTIVE_BANS} AND room_name = :room_name"
    if one_owner:
        sql += " AND owner = :owner"
    if resumed:
        sql += " AND (identity, owner) > (:after_identity, :after_owner)"
    sql += " ORDER BY identity, owner"
    if limited:
        sql += " LIMIT :limit"
    return sql


def _lift(one_owner: bool) -> tuple[str, str]:
    where = "WHERE room_name = :room_name AND identity = :identity" + (
        " AND owner = :owner" if one_owner else ""
    )
    return (
        f"SELECT {_BAN_COLUMNS} FROM livekit_moderation_bans {where} AND expires_at > :now",
        f"DELETE FROM livekit_moderation_bans {where}",
    )


class _Result(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> Sequence[Any]: ...


class _Session(Protocol):
    """One transaction of a SQL store, whatever the driver."""

    def execute(self, sql: str, params: Mapping[str, Any]) -> _Result: ...

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None: ...


class SQLBanStore(BanStore):
    """Bans and leases in two SQL tables, with statements both SQLite and PostgreSQL run.

    A driver gives :meth:`_read` (one statement outside a transaction) and :meth:`_write`
    (one transaction), and how names go in and come out (:meth:`_name`, :meth:`_text`).
    """

    @abc.abstractmethod
    def _read(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        """The rows of one statement."""

    @abc.abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[_Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""

    def _name(self, text: str) -> Any:
        """A name (or reason) as the database keeps it."""
        return text

    def _text(self, value: Any) -> str:
        """A name (or reason) as the database gave it back."""
        return str(value)

    def _ban(self, row: Sequence[Any]) -> Ban:
        owner, room_name, identity, expires_at, banned_at, reason = row
        text = self._text
        return Ban(
            text(owner),
            text(room_name),
            text(identity),
            utc_datetime(expires_at),
            utc_datetime(banned_at),
            None if reason is None else text(reason),
        )

    def _ban_row(self, ban: Ban) -> dict[str, Any]:
        name = self._name
        return {
            "owner": name(ban.owner),
            "room_name": name(ban.room_name),
            "identity": name(ban.participant_identity),
            "expires_at": ban.expires_at.timestamp(),
            "banned_at": ban.banned_at.timestamp(),
            "reason": None if ban.reason is None else name(ban.reason),
        }

    def put(self, ban: Ban) -> None:
        self.put_many((ban,))

    def put_many(self, bans: Iterable[Ban]) -> None:
        rows = [self._ban_row(ban) for ban in bans]
        with self._write() as session:
            session.execute(_PURGE_BANS, {"now": self.clock()})
            if rows:
                session.execute_many(_UPSERT_BAN, rows)

    def get(self, owner: str, room_name: str, identity: str) -> Ban | None:
        name = self._name
        params = {"room_name": name(room_name), "owner": name(owner), "identity": name(identity)}
        params["now"] = self.clock()
        rows = self._read(_GET_BAN, params)
        return self._ban(rows[0]) if rows else None

    def list_bans(
        self, owner: str | None, room_name: str, *, limit: int | None = None, after: After | None = None
    ) -> list[Ban]:
        name = self._name
        params: dict[str, Any] = {"room_name": name(room_name), "now": self.clock()}
        if owner is not None:
            params["owner"] = name(owner)
        if after is not None:
            params["after_identity"], params["after_owner"] = name(after[0]), name(after[1])
        if limit is not None:
            params["limit"] = limit
        sql = _listing(owner is not None, after is not None, limit is not None)
        return [self._ban(row) for row in self._read(sql, params)]

    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        name = self._name
        params: dict[str, Any] = {"room_name": name(room_name), "identity": name(identity)}
        if owner is not None:
            params["owner"] = name(owner)
        select, delete = _lift(owner is not None)
        with self._write() as session:
            rows = session.execute(select, {**params, "now": self.clock()}).fetchall()
            session.execute(delete, params)
        return sorted((self._ban(row) for row in rows), key=lambda ban: (ban.participant_identity, ban.owner))

    def banned_rooms(self) -> list[tuple[str, str]]:
        rows = self._read(_BANNED_ROOMS, {"now": self.clock()})
        return [(self._text(owner), self._text(room)) for owner, room in rows]

    def any_active(self) -> bool:
        return bool(self._read(_ANY_ACTIVE, {"now": self.clock()}))

    def lease(self, name: str, holder: str, seconds: float) -> str:
        now = self.clock()
        key = self._name(name)
        with self._write() as session:
            session.execute(_PURGE_LEASES, {"now": now})
            session.execute(
                _TAKE_LEASE,
                {"name": key, "holder": self._name(holder), "expires_at": now + seconds, "now": now},
            )
            rows = session.execute(_LEASE_HOLDER, {"name": key}).fetchall()
        return self._text(rows[0][0])

    def hand_over(self, name: str, holder: str, new_holder: str, seconds: float) -> bool:
        now = self.clock()
        params = {
            "name": self._name(name),
            "holder": self._name(holder),
            "new_holder": self._name(new_holder),
            "expires_at": now + seconds,
            "now": now,
        }
        with self._write() as session:
            return session.execute(_HAND_OVER, params).rowcount == 1

    def release(self, name: str, holder: str) -> None:
        with self._write() as session:
            session.execute(_RELEASE, {"name": self._name(name), "holder": self._name(holder)})


# -- SQLite -----------------------------------------------------------------------------------

_SQLITE_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS livekit_moderation_bans_listing
    ON livekit_moderation_bans (room_name, identity, owner);
CREATE TABLE IF NOT EXISTS livekit_moderation_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS livekit_moderation_audit (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    room_name TEXT,
    identity TEXT,
    details TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS livekit_moderation_audit_room ON livekit_moderation_audit (owner, room_name, id);
CREATE INDEX IF NOT EXISTS livekit_moderation_audit_expiry ON livekit_moderation_audit (id);
CREATE TABLE IF NOT EXISTS livekit_moderation_idempotency (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    token TEXT NOT NULL,
    claim_until REAL NOT NULL,
    unknown INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    answer TEXT,
    PRIMARY KEY (scope, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS livekit_moderation_idempotency_expiry
    ON livekit_moderation_idempotency (expires_at);
CREATE TABLE IF NOT EXISTS livekit_moderation_lobby_rooms (
    room_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    locked_at REAL NOT NULL,
    PRIMARY KEY (room_name, owner)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS livekit_moderation_lobby_entries (
    room_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    identity TEXT NOT NULL,
    status TEXT NOT NULL,
    knocked_at REAL,
    name TEXT,
    PRIMARY KEY (room_name, owner, identity)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS livekit_moderation_lobby_waiting
    ON livekit_moderation_lobby_entries (room_name, owner, knocked_at, identity) WHERE status = 'waiting';
"""


class _SQLiteSession:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Mapping[str, Any]) -> _Result:
        return self.connection.execute(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.connection.executemany(sql, rows)


#: Tables of other features kept in the same file, copied (rows the new file lacks) when the
#: file is deleted or replaced under the running app, as the active bans are: e.g. the
#: lobby's locks, whose loss would let everyone into a locked room. Features append their
#: table names (see :func:`carry_over`).
_CARRIED_TABLES: list[str] = []


def carry_over(table: str) -> None:
    """Have ``table`` (in :data:`_SQLITE_SCHEMA`) copied into a SQLite file that replaced the one
    the app had open, like the active bans."""
    if table not in _CARRIED_TABLES:
        _CARRIED_TABLES.append(table)


#: What a SQLite database in WAL mode keeps beside its file.
_LEFTOVERS = ("-wal", "-shm", "-journal")
#: What identifies a file on disk: its device and inode (``None``: no file at the path).
FileId = tuple[int, int] | None


def _file_id(path: str) -> FileId:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class _Opened(NamedTuple):
    """What the store keeps of one open connection."""

    #: The file it opened (a deleted file keeps its device and inode).
    file_id: FileId
    #: Held while a thread runs statements on it. Python's sqlite3 crashes the process (a
    #: segfault, on 3.10 and 3.11) when a connection is closed under another thread's statement,
    #: so no connection is closed while this is held: e.g. :meth:`SQLiteBanStore.close` run by an
    #: app's finalizer while its reconciler's pass is reading.
    in_use: threading.Lock


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, waiting for the file like any write would.

    Switching a new file to WAL takes its exclusive lock, and SQLite answers "database is
    locked" at once rather than through the busy timeout: of 200 fresh files opened by six
    threads at once, 7 to 10 refused a thread so (a host's first concurrent requests, answered
    503). Once the file is in WAL mode the statement is a no-op and never waits.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteBanStore(SQLBanStore):
    """Bans in one SQLite file shared by every process of a host (``sqlite:///path``).

    One connection per thread and process (a forked worker opens its own); WAL mode so
    readers never wait for the writer; the directory, the file and the tables are created on
    first use, not at start-up.

    The file a connection has open must be the one at the path. Each use compares the path's
    device and inode with those of the file the connection opened (one ``stat``): a file
    deleted or replaced under the running app is noticed at once, logged as an ERROR, and the
    file at the path is opened (created, with its schema, when it is gone), the active bans
    still readable through the old file are copied into it, and the operation goes on there.
    So a ban answered 201 is always in the file at the configured path.
    """

    kind = "sqlite"

    def __init__(self, path: str, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.path = path
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._local = threading.local()
        #: Every thread's open connection.
        self._opened: dict[sqlite3.Connection, _Opened] = {}
        #: Connections of other threads whose file another thread already replaced (and logged).
        self._superseded: set[sqlite3.Connection] = set()

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A forked child: the parent's connections are not ours to use or close, and its
            # lock may have been held at fork time. (Two threads racing here both start afresh:
            # the loser merely opens its connection again on its next call.)
            self._lock, self._local = threading.Lock(), threading.local()
            self._opened, self._superseded = {}, set()
            self._pid = os.getpid()
        local = self._local  # read once: close() replaces it, maybe while this thread is here
        connection: sqlite3.Connection | None = getattr(local, "connection", None)
        if connection is None:
            # A thread's first use (the ban route writes from a worker thread) must notice a
            # file deleted under another thread's connection as well, or it would start afresh.
            stale = self._stale_elsewhere()
            return self._open() if stale is None else self._reopen(stale, owned=False)
        if _file_id(self.path) != local.file_id:
            return self._reopen(connection)
        return connection

    def _stale_elsewhere(self) -> sqlite3.Connection | None:
        """Another thread's connection to a file that is no longer the one at the path."""
        # The connections first, then the path: a connection another thread opens (creating the
        # file) between the two must not look like one to a file since deleted.
        with self._lock:
            opened = [(c, o.file_id) for c, o in self._opened.items() if c not in self._superseded]
        current = _file_id(self.path)
        return next((connection for connection, file_id in opened if file_id != current), None)

    def _connect(self) -> tuple[sqlite3.Connection, FileId]:
        """A connection to the file at the path (created, with its directory, when missing),
        in WAL mode, with the schema; and which file it opened."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            _switch_to_wal(connection)
            connection.executescript(_SQLITE_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection, _file_id(self.path)

    def _keep(self, connection: sqlite3.Connection, file_id: FileId) -> sqlite3.Connection:
        local = self._local
        local.connection, local.file_id = connection, file_id
        with self._lock:
            self._opened[connection] = _Opened(file_id, threading.Lock())
        return connection

    def _orphaned(self) -> bool:
        """No database at the path, but what is left of a deleted one (its WAL, its index)."""
        return _file_id(self.path) is None and any(os.path.exists(self.path + s) for s in _LEFTOVERS)

    def _remove_leftovers(self) -> None:
        """Delete the WAL and shared-memory index at the path: they belong to a database that is
        no longer there, and must not be read as the next one's (only under :meth:`_file_lock`)."""
        for suffix in _LEFTOVERS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)

    def _open(self) -> sqlite3.Connection:
        if self._orphaned():
            with self._file_lock() as adopted:
                if _file_id(self.path) is None:
                    self._remove_leftovers()
                connection, file_id = self._connect()
                adopted(file_id)
        else:
            connection, file_id = self._connect()
        return self._keep(connection, file_id)

    def _reopen(self, stale: sqlite3.Connection, owned: bool = True) -> sqlite3.Connection:
        """The file at the path is not the one ``stale`` has open: it was deleted or replaced.

        The first process to notice (the lock file names the file adopted last) deletes the old
        file's WAL and index at the path, so the file there starts clean; the others just open it.
        The old file's active bans, still readable through ``stale``, are copied into it.
        ``owned`` False: ``stale`` is another thread's, left open for it to notice quietly.
        """
        if stale in self._superseded:  # another thread already moved to the new file, and said so
            self._local.connection = None
            self._retire(stale)
            return self._open()
        if self._moved_already(stale):
            # Another thread of this process noticed first, re-opened and copied (and said so):
            # this thread just follows (every write route records an audit entry from its
            # request thread, so several threads hold connections). Another thread's stale
            # connection is left for that thread to notice.
            if owned:
                self._forget_connection()
            return self._open()
        with self._held(stale, wait=SQLITE_BUSY_TIMEOUT + 1) as readable:
            # Another thread's connection is read only while that thread is not using it.
            rows = self._active_rows(stale) if readable else None
            carried = self._carried_rows(stale) if readable else {}
        with self._file_lock() as adopted:
            current = _file_id(self.path)
            gone = current is None
            if gone or current != adopted(None):
                self._remove_leftovers()
            # Closed first: SQLite sees the old file has moved, so closing it neither checkpoints
            # into it nor deletes the WAL at the path.
            self._local.connection = None
            if owned:
                self._close_when_free(stale, self._unregister(stale))  # self._lock is held here
            fresh, file_id = self._connect()
            adopted(file_id)
        if not owned:
            with self._lock:
                if stale in self._opened:
                    self._superseded.add(stale)
        copied = None if rows is None else self._merge(fresh, rows)
        self._copy_carried(fresh, carried)
        logger.error(
            "SQLite ban store %s was %s while the app had it open: re-opened the file at that path "
            "(schema re-created) and copied %s active bans from the old file into it",
            self.path,
            "deleted" if gone else "replaced",
            "no" if copied is None else copied,
        )
        return self._keep(fresh, file_id)

    def _moved_already(self, stale: sqlite3.Connection) -> bool:
        """Whether another connection of this process has the file now at the path open."""
        current = _file_id(self.path)
        with self._lock:
            return current is not None and any(
                opened.file_id == current
                for connection, opened in self._opened.items()
                if connection is not stale
            )

    def _active_rows(self, stale: sqlite3.Connection) -> list[Any] | None:
        """The old file's active bans, ``None`` when it cannot be read any more."""
        try:
            return stale.execute(_ACTIVE_BANS, {"now": self.clock()}).fetchall()
        except sqlite3.Error as exc:
            logger.error("the old SQLite ban store file could not be read: %s", type(exc).__name__)
            return None

    @staticmethod
    def _carried_rows(stale: sqlite3.Connection) -> dict[str, list[Any]]:
        """The rows of the :data:`_CARRIED_TABLES` still readable in the old file."""
        found = {}
        for table in _CARRIED_TABLES:
            try:
                found[table] = stale.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - our names
            except sqlite3.Error as exc:
                logger.error("the old SQLite file's %s could not be read: %s", table, type(exc).__name__)
        return found

    @staticmethod
    def _copy_carried(fresh: sqlite3.Connection, carried: dict[str, list[Any]]) -> None:
        """Copy ``carried`` rows into ``fresh``, keeping the rows it has already (same key)."""
        fresh.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in carried.items():
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    fresh.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)  # noqa: S608
        except BaseException:
            fresh.execute("ROLLBACK")
            raise
        fresh.execute("COMMIT")

    @staticmethod
    def _merge(fresh: sqlite3.Connection, rows: list[Any]) -> int:
        """Copy ``rows`` (bans) into ``fresh``, keeping whichever of two bans was made last."""
        names = ("owner", "room_name", "identity", "expires_at", "banned_at", "reason")
        fresh.execute("BEGIN IMMEDIATE")
        try:
            fresh.executemany(_MERGE_BAN, (dict(zip(names, row, strict=True)) for row in rows))
        except BaseException:
            fresh.execute("ROLLBACK")
            raise
        fresh.execute("COMMIT")
        return len(rows)

    @contextmanager
    def _file_lock(self) -> Iterator[Callable[[FileId], FileId]]:
        """This process's lock and, across processes, an advisory lock on ``<path>.lock``.

        Yields ``adopted(file_id)``: records ``file_id`` as the file every process should now
        use and returns it; ``adopted(None)`` returns the one recorded (``None``: none yet).
        """
        with self._lock:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)

                def adopted(file_id: FileId) -> FileId:
                    if file_id is not None:
                        os.ftruncate(fd, 0)
                        os.pwrite(fd, f"{file_id[0]} {file_id[1]}".encode(), 0)
                        return file_id
                    recorded = os.pread(fd, 64, 0).split()
                    return (int(recorded[0]), int(recorded[1])) if len(recorded) == 2 else None

                yield adopted
            finally:
                os.close(fd)

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            self._retire(connection)

    def _retire(self, connection: sqlite3.Connection) -> None:
        """Close ``connection`` once no thread runs a statement on it. Whoever takes it out of
        the registry closes it, so it is closed once however many threads retire it at once."""
        with self._lock:
            in_use = self._unregister(connection)
        self._close_when_free(connection, in_use)

    def _unregister(self, connection: sqlite3.Connection) -> threading.Lock | None:
        """Take ``connection`` out of the registry (under ``self._lock``); its lock, ``None``
        when another thread took it out first."""
        self._superseded.discard(connection)
        opened = self._opened.pop(connection, None)
        return None if opened is None else opened.in_use

    def _close_when_free(self, connection: sqlite3.Connection, in_use: threading.Lock | None) -> None:
        if in_use is None:
            return
        if getattr(self._local, "running", None) is connection:
            # This thread is inside a statement on it (a finalizer run by the garbage collector
            # mid-statement): closing it now would crash; it is left to be freed with the thread.
            return
        if not in_use.acquire(timeout=SQLITE_BUSY_TIMEOUT + 1):
            logger.warning("a SQLite ban store connection still in use was left open")
            return
        try:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        finally:
            in_use.release()

    @contextmanager
    def _held(self, connection: sqlite3.Connection, wait: float = -1) -> Iterator[bool]:
        """Hold ``connection``'s lock for the block (no thread closes it meanwhile); yields
        whether it is held: ``False`` when the connection was closed, or ``wait`` seconds ran
        out."""
        running = getattr(self._local, "running", None)
        if running is connection:  # a statement within this thread's own use: it is held already
            yield True
            return
        opened = self._opened.get(connection)  # one dict lookup: atomic, no lock needed
        if opened is None or not opened.in_use.acquire(timeout=wait):
            yield False
            return
        in_use = opened.in_use
        self._local.running = connection
        try:
            yield True
        finally:
            self._local.running = running
            in_use.release()

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._connection()
            with self._held(connection) as held:
                if not held:
                    raise sqlite3.ProgrammingError("the store was closed")
                yield connection
        except (sqlite3.Error, OSError) as exc:
            # A broken connection (directory gone, disk full) is opened afresh next time.
            self._forget_connection()
            raise unavailable(self.kind, exc) from None

    def _read(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        with self._using() as connection:
            return connection.execute(sql, params).fetchall()

    def _nothing_here(self) -> bool:
        """No file at the path and none open in this thread: no ban (and nothing is created)."""
        if getattr(self._local, "connection", None) is None and self._pid == os.getpid():
            try:
                return _file_id(self.path) is None and not self._orphaned()
            except OSError:
                pass  # e.g. a file where a directory should be: the store answers 503 on use
        return False

    # Asked every interval by the reconciler: a store never used is not created for the asking.
    def banned_rooms(self) -> list[tuple[str, str]]:
        return [] if self._nothing_here() else super().banned_rooms()

    def any_active(self) -> bool:
        return False if self._nothing_here() else super().any_active()

    @contextmanager
    def _write(self) -> Iterator[_Session]:
        with self._using() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteSession(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection, each once its thread's statement (if any) is done."""
        if self._pid != os.getpid():
            with self._lock:  # a forked child's copies of the parent's connections are not ours
                self._opened, self._superseded = {}, set()
                self._local = threading.local()
            return
        with self._lock:
            connections = list(self._opened)
        for connection in connections:
            self._retire(connection)
        # A connection opened meanwhile by another thread is that thread's: it stays registered,
        # and the next close() closes it.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<SQLiteBanStore {self.path!r}>"


# -- PostgreSQL -------------------------------------------------------------------------------

_POSTGRESQL_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS livekit_moderation_bans (
    room_name BYTEA NOT NULL,
    owner BYTEA NOT NULL,
    identity BYTEA NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    banned_at DOUBLE PRECISION NOT NULL,
    reason BYTEA,
    PRIMARY KEY (room_name, owner, identity)
)""",
    "CREATE INDEX IF NOT EXISTS livekit_moderation_bans_expiry ON livekit_moderation_bans (expires_at)",
    "CREATE INDEX IF NOT EXISTS livekit_moderation_bans_listing "
    "ON livekit_moderation_bans (room_name, identity, owner)",
    """CREATE TABLE IF NOT EXISTS livekit_moderation_leases (
    name BYTEA PRIMARY KEY,
    holder BYTEA NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS livekit_moderation_audit (
    owner BYTEA NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    actor BYTEA,
    action BYTEA NOT NULL,
    room_name BYTEA,
    identity BYTEA,
    details TEXT NOT NULL,
    outcome BYTEA NOT NULL,
    status INTEGER,
    PRIMARY KEY (owner, id)
)""",
    "CREATE INDEX IF NOT EXISTS livekit_moderation_audit_room "
    "ON livekit_moderation_audit (owner, room_name, id)",
    "CREATE INDEX IF NOT EXISTS livekit_moderation_audit_expiry ON livekit_moderation_audit (id)",
    """CREATE TABLE IF NOT EXISTS livekit_moderation_idempotency (
    scope BYTEA NOT NULL,
    idempotency_key BYTEA NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    token TEXT NOT NULL,
    claim_until DOUBLE PRECISION NOT NULL,
    unknown INTEGER NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    answer BYTEA,
    PRIMARY KEY (scope, idempotency_key)
)""",
    "CREATE INDEX IF NOT EXISTS livekit_moderation_idempotency_expiry "
    "ON livekit_moderation_idempotency (expires_at)",
    """CREATE TABLE IF NOT EXISTS livekit_moderation_lobby_rooms (
    room_name BYTEA NOT NULL,
    owner BYTEA NOT NULL,
    locked_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (room_name, owner)
)""",
    """CREATE TABLE IF NOT EXISTS livekit_moderation_lobby_entries (
    room_name BYTEA NOT NULL,
    owner BYTEA NOT NULL,
    identity BYTEA NOT NULL,
    status TEXT NOT NULL,
    knocked_at DOUBLE PRECISION,
    name BYTEA,
    PRIMARY KEY (room_name, owner, identity)
)""",
    # Partial: only the listing (status 'waiting') may use it; a look-up by identity takes the key.
    "CREATE INDEX IF NOT EXISTS livekit_moderation_lobby_waiting "
    "ON livekit_moderation_lobby_entries (room_name, owner, knocked_at, identity) WHERE status = 'waiting'",
)
#: The advisory lock the schema is created under (two processes starting at once).
_SCHEMA_LOCK = 0x4C4B4D42  # "LKMB"


@functools.lru_cache(maxsize=64)
def _statement(sql: str) -> sqlalchemy.TextClause:
    from sqlalchemy import text

    return text(sql)


class _AlchemySession:
    def __init__(self, connection: sqlalchemy.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Mapping[str, Any]) -> _Result:
        return self.connection.execute(_statement(sql), dict(params))

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.connection.execute(_statement(sql), [dict(row) for row in rows])


class PostgreSQLBanStore(SQLBanStore):
    """Bans in PostgreSQL (``postgresql://user:password@host:5432/db``), through SQLAlchemy Core.

    A pool of connections per process (a forked worker starts its own); the tables are
    created on first use. Connecting, each statement and each lock wait are bounded by
    :data:`~.base.STORE_TIMEOUT` (connecting: 2 s, libpq's least); options in the URL's query
    (``?connect_timeout=5``) are passed on to psycopg.
    """

    kind = "postgresql"

    def __init__(self, url: str, clock: Clock = time.time) -> None:
        """Raises ``ValueError`` for a URL SQLAlchemy cannot read (nothing is connected yet)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        super().__init__(clock)
        try:
            parsed = make_url(url)
            _ = parsed.port  # an unreadable port raises here
        except (ArgumentError, ValueError):
            raise ValueError("not a usable PostgreSQL URL") from None
        self.url = parsed.set(drivername="postgresql+psycopg")
        self._lock = threading.Lock()
        self._engine: sqlalchemy.Engine | None = None
        self._reader: sqlalchemy.Engine | None = None
        self._pid = os.getpid()
        self._ready = False

    def _engine_here(self) -> sqlalchemy.Engine:
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        from sqlalchemy import create_engine

        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                # A forked child: leave the parent's connections to the parent.
                self._engine.dispose(close=False)
                self._engine, self._lock = None, threading.Lock()
            if self._engine is None:
                timeout_ms = int(STORE_TIMEOUT * 1000)
                connect_args: dict[str, Any] = {
                    "connect_timeout": max(2, math.ceil(STORE_TIMEOUT)),
                    "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                }
                connect_args.update(self.url.query)
                self._engine = create_engine(
                    self.url.set(query={}),
                    connect_args=connect_args,
                    pool_size=8,
                    max_overflow=16,
                    pool_timeout=STORE_TIMEOUT,
                )
                # One statement alone needs no transaction: no BEGIN, no ROLLBACK (round trips).
                self._reader = self._engine.execution_options(isolation_level="AUTOCOMMIT")
                self._pid = os.getpid()
            return self._engine

    def _name(self, text: str) -> Any:
        return text.encode("utf-8")

    def _text(self, value: Any) -> str:
        return bytes(value).decode("utf-8")

    @contextmanager
    def _calling(self) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable(self.kind, exc) from None

    def _schema(self, engine: sqlalchemy.Engine) -> None:
        if self._ready:
            return
        from sqlalchemy import text

        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            for statement in _POSTGRESQL_SCHEMA:
                connection.execute(text(statement))
        self._ready = True

    def _read(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        from sqlalchemy.exc import DBAPIError

        with self._calling():
            engine = self._engine_here()
            self._schema(engine)
            reader = self._reader
            assert reader is not None
            try:
                with reader.connect() as connection:
                    return connection.execute(_statement(sql), dict(params)).fetchall()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            # The server closed a pooled connection (a restart): once more, on a new one.
            with reader.connect() as connection:
                return connection.execute(_statement(sql), dict(params)).fetchall()

    @contextmanager
    def _write(self) -> Iterator[_Session]:
        with self._calling():
            engine = self._engine_here()
            self._schema(engine)
            with engine.begin() as connection:
                yield _AlchemySession(connection)

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose(close=self._pid == os.getpid())

    def __repr__(self) -> str:
        return "<PostgreSQLBanStore>"
