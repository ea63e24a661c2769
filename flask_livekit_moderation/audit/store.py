"""Where the audit log is kept: in the ban store (memory, SQLite, PostgreSQL, Redis).

:func:`open_audit_log` wraps the app's :class:`~..bans.base.BanStore` in the audit log of its
kind, so the log lives, is shared and is backed up with the bans. Every log keeps entries for
its retention (``LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS``) and lists one owner's entries newest
first, by id (:mod:`.model`). A listing whose store fails raises 503 ``BAN_STORE_UNAVAILABLE``.

The SQL and Redis logs write in the background (:class:`BatchedAuditLog`): a request only
queues its entry, and one thread per process writes what gathered in one transaction (SQL) or
one round trip (Redis) at most :data:`BATCH_SECONDS` later. One INSERT per request cost a
request about 0.3 ms of CPU on SQLite (the target is 0.1 ms, ``benchmarks/audit.py``); a batch
costs each entry a fraction of that. A listing writes this process's queue first; another
process's entries show within about :data:`BATCH_SECONDS`. The queue is written when the app's
store is closed, and at interpreter exit (a worker's graceful stop); a process killed outright
loses at most the entries of its last :data:`BATCH_SECONDS`.
"""

from __future__ import annotations

import abc
import atexit
import bisect
import functools
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModerationError
from .model import Entry, id_bound

if TYPE_CHECKING:
    from ..bans.base import BanStore
    from ..bans.redis_store import RedisBanStore
    from ..bans.sql import SQLBanStore
    from ..bans.stores import MemoryBanStore

#: Seconds between two purges of expired entries by one process (a purge on every write would
#: cost every write a DELETE).
PURGE_INTERVAL = 60.0
DAY = 86_400.0
#: Seconds an entry may wait in its process's queue, gathering others to be written with it.
BATCH_SECONDS = 0.2
#: Seconds the writing thread waits for an entry before it ends (the next entry starts one).
IDLE_SECONDS = 5.0
#: Entries written in one transaction at most.
BATCH_MAX = 500

logger = logging.getLogger("flask_livekit_moderation")


@dataclass(frozen=True)
class Filter:
    """Which of one owner's entries a listing wants."""

    owner: str
    room_name: str | None = None
    action: str | None = None
    actor: str | None = None
    #: Entries made at or after / at or before these moments (seconds since the epoch).
    since: float | None = None
    until: float | None = None
    #: Entries older than this id (the cursor: the last id of the previous page).
    before: str | None = None

    def id_range(self, cutoff: float) -> tuple[str, str | None]:
        """The ids to look at: at least the first (retention, ``since``), below the second."""
        low = id_bound(max(cutoff, self.since or 0.0))
        high = None if self.until is None else id_bound(self.until + 1e-6)
        if self.before is not None and (high is None or self.before < high):
            high = self.before
        return low, high

    def matches(self, entry: Entry) -> bool:
        return (
            (self.room_name is None or entry.room_name == self.room_name)
            and (self.action is None or entry.action == self.action)
            and (self.actor is None or entry.actor == self.actor)
        )


class AuditLog(abc.ABC):
    """One kind of store's audit log (see the module)."""

    def __init__(self, store: BanStore, retention_days: int) -> None:
        self.store = store
        self.retention = retention_days * DAY
        #: When (``time.monotonic()``) this process next forgets the entries past their retention.
        self._next_purge = 0.0

    def cutoff(self) -> float:
        """Entries made before this moment are past their retention."""
        return self.store.clock() - self.retention

    @abc.abstractmethod
    def add(self, entry: Entry) -> None:
        """Keep ``entry`` (and, now and then, forget those past their retention)."""

    def flush(self, timeout: float = 10.0) -> bool:  # noqa: ARG002 - nothing queued here
        """Write what this process queued; whether all of it was written within ``timeout``."""
        return True

    def close(self) -> None:  # noqa: B027 - nothing to release for most logs
        """Write what is queued; the log keeps working."""

    @abc.abstractmethod
    def list(self, wanted: Filter, limit: int) -> list[Entry]:
        """At most ``limit`` of the entries ``wanted`` selects, newest first."""


class BatchedAuditLog(AuditLog):
    """An audit log written by a thread of its own, in batches (see the module)."""

    def __init__(self, store: BanStore, retention_days: int) -> None:
        super().__init__(store, retention_days)
        self._lock = threading.Condition()
        self._pending: list[Entry] = []
        self._writing = False
        self._hurry = threading.Event()
        #: The process whose thread writes (``None``: no thread runs now).
        self._pid: int | None = None
        #: The process the queue belongs to.
        self._forked_from: int | None = None
        self._closed = False

    @abc.abstractmethod
    def _write_many(self, entries: list[Entry]) -> None:
        """Write ``entries`` at once; raises 503 ``BAN_STORE_UNAVAILABLE`` when the store fails."""

    def add(self, entry: Entry) -> None:
        """Queue ``entry``; it is written within :data:`BATCH_SECONDS` (never raises)."""
        if self._forked_from is not None and self._forked_from != os.getpid():
            self._after_fork()
        with self._lock:
            self._pending.append(entry)
            if self._pid != os.getpid():
                self._start()
            self._lock.notify()

    def _after_fork(self) -> None:
        # A forked worker: the queue copied with the fork is the parent's to write, and the lock
        # may have been held by the parent's thread at fork time. (Two threads racing here both
        # start afresh: at worst one entry of the race is dropped, and logged by no one.)
        self._lock, self._pending, self._writing = threading.Condition(), [], False
        self._hurry, self._pid, self._forked_from = threading.Event(), None, os.getpid()

    def _start(self) -> None:
        self._pid, self._forked_from, self._closed = os.getpid(), os.getpid(), False
        _LOGS.add(self)
        threading.Thread(target=self._run, name="livekit-moderation-audit", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._closed, IDLE_SECONDS)
                if not self._pending:
                    # Closed, or idle: the thread ends (an app dropped, e.g. one per test, must
                    # not keep one waiting forever); the next entry starts another.
                    if self._pid == os.getpid():
                        self._pid = None
                    return
            self._hurry.wait(BATCH_SECONDS)  # let others gather, unless a listing waits
            with self._lock:
                batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
                self._writing = True
                self._hurry.clear()
            try:
                self._write_batch(batch)
            finally:
                with self._lock:
                    self._writing = False
                    self._lock.notify_all()

    def _write_batch(self, batch: list[Entry]) -> None:
        """Write ``batch``, once more when the store fails, else log each entry lost at ERROR."""
        for attempt in (1, 2):
            try:
                self._write_many(batch)
                return
            except ModerationError:
                if attempt == 2:
                    break
            except Exception:  # noqa: BLE001 - the thread must outlive a bug
                logger.exception("audit log: %d entries could not be written: %r", len(batch), batch)
                return
        for entry in batch:
            logger.error("audit log: the store is unavailable; entry lost: %r", entry)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write this process's queue now; whether it is empty within ``timeout`` seconds."""
        if self._forked_from != os.getpid():
            return True  # nothing queued in this process
        with self._lock:
            if self._pending and self._pid != os.getpid():
                self._start()  # its thread ended meanwhile
            self._hurry.set()
            self._lock.notify_all()
            return self._lock.wait_for(lambda: not self._pending and not self._writing, timeout)

    def close(self) -> None:
        """Write the queue and stop the thread (a later entry starts it again)."""
        self.flush()
        with self._lock:
            self._closed = True
            self._lock.notify_all()


#: The batched logs of this process, written once more at interpreter exit.
_LOGS: weakref.WeakSet[BatchedAuditLog] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for log in list(_LOGS):
        log.flush(timeout=5.0)


class MemoryAuditLog(AuditLog):
    """Entries in a list on the :class:`~..bans.stores.MemoryBanStore` (one process)."""

    def __init__(self, store: MemoryBanStore, retention_days: int) -> None:
        super().__init__(store, retention_days)
        self._lock: threading.Lock = store.__dict__.setdefault("_audit_lock", threading.Lock())
        #: Sorted by id, kept on the store so every log of it shares them.
        self._entries: list[Entry] = store.__dict__.setdefault("_audit_entries", [])
        self._ids: list[str] = store.__dict__.setdefault("_audit_ids", [])

    def add(self, entry: Entry) -> None:
        with self._lock:
            now = time.monotonic()
            if now >= self._next_purge:
                self._next_purge = now + PURGE_INTERVAL
                keep = bisect.bisect_left(self._ids, id_bound(self.cutoff()))
                del self._entries[:keep], self._ids[:keep]
            at = bisect.bisect(self._ids, entry.id)
            self._ids.insert(at, entry.id)
            self._entries.insert(at, entry)

    def list(self, wanted: Filter, limit: int) -> list[Entry]:
        low, high = wanted.id_range(self.cutoff())
        with self._lock:
            start = bisect.bisect_left(self._ids, low)
            end = len(self._ids) if high is None else bisect.bisect_left(self._ids, high)
            found = []
            for entry in reversed(self._entries[start:end]):
                if entry.owner == wanted.owner and wanted.matches(entry):
                    found.append(entry)
                    if len(found) == limit:
                        break
        return found


# -- SQL (SQLite, PostgreSQL) ----------------------------------------------------------------

_AUDIT_COLUMNS = "id, owner, actor, action, room_name, identity, details, outcome, status"
_INSERT = (
    f"INSERT INTO livekit_moderation_audit ({_AUDIT_COLUMNS}) "
    "VALUES (:id, :owner, :actor, :action, :room_name, :identity, :details, :outcome, :status)"
)
_PURGE = "DELETE FROM livekit_moderation_audit WHERE id < :cutoff"


@functools.lru_cache(maxsize=64)
def _listing(room: bool, action: bool, actor: bool, high: bool) -> str:
    sql = f"SELECT {_AUDIT_COLUMNS} FROM livekit_moderation_audit WHERE owner = :owner AND id >= :low"
    if high:
        sql += " AND id < :high"
    if room:
        sql += " AND room_name = :room_name"
    if action:
        sql += " AND action = :action"
    if actor:
        sql += " AND actor = :actor"
    return sql + " ORDER BY id DESC LIMIT :limit"


class SQLAuditLog(BatchedAuditLog):
    """Entries in the ``livekit_moderation_audit`` table of the SQLite or PostgreSQL ban store."""

    store: SQLBanStore

    def _optional(self, text: str | None) -> Any:
        return None if text is None else self.store._name(text)

    def _row(self, entry: Entry) -> dict[str, Any]:
        store = self.store
        return {
            "id": entry.id,
            "owner": store._name(entry.owner),
            "actor": self._optional(entry.actor),
            "action": store._name(entry.action),
            "room_name": self._optional(entry.room_name),
            "identity": self._optional(entry.participant_identity),
            "details": entry.details_json(),
            "outcome": store._name(entry.outcome),
            "status": entry.status,
        }

    def _write_many(self, entries: list[Entry]) -> None:
        rows = [self._row(entry) for entry in entries]
        now = time.monotonic()
        purge = now >= self._next_purge
        if purge:
            self._next_purge = now + PURGE_INTERVAL
        with self.store._write() as session:
            session.execute_many(_INSERT, rows)
            if purge:
                session.execute(_PURGE, {"cutoff": id_bound(self.cutoff())})

    def list(self, wanted: Filter, limit: int) -> list[Entry]:
        self.flush()
        store = self.store
        low, high = wanted.id_range(self.cutoff())
        params: dict[str, Any] = {"owner": store._name(wanted.owner), "low": low, "limit": limit}
        if high is not None:
            params["high"] = high
        for key in ("room_name", "action", "actor"):
            if getattr(wanted, key) is not None:
                params[key] = store._name(getattr(wanted, key))
        sql = _listing(
            wanted.room_name is not None,
            wanted.action is not None,
            wanted.actor is not None,
            high is not None,
        )
        return [self._entry(row) for row in store._read(sql, params)]

    def _entry(self, row: Sequence[Any]) -> Entry:
        entry_id, owner, actor, action, room_name, identity, details, outcome, status = row
        text = self.store._text
        return Entry(
            id=str(entry_id),
            owner=text(owner),
            actor=None if actor is None else text(actor),
            action=text(action),
            room_name=None if room_name is None else text(room_name),
            participant_identity=None if identity is None else text(identity),
            details=json.loads(details),
            outcome=text(outcome),
            status=status,
        )


# -- Redis -------------------------------------------------------------------------------------

_REDIS_PREFIX = "livekit_moderation:audit:"
# KEYS: entry, owner index, room index (or ""). ARGV: entry id, value, expiry (ms), cutoff id.
# Each entry is a key expiring with its retention; the indexes are sets of ids sorted as text
# (every score 0), trimmed of expired ids as they are written, expiring with their newest entry.
_ADD_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
for i = 2, #KEYS do
  if KEYS[i] ~= '' then
    redis.call('ZADD', KEYS[i], 0, ARGV[1])
    redis.call('ZREMRANGEBYLEX', KEYS[i], '-', '(' .. ARGV[4])
    redis.call('PEXPIREAT', KEYS[i], ARGV[3])
  end
end
return 1
"""
#: Ids read from an index per round trip while a filtered listing looks for matches.
_BATCH = 200


class RedisAuditLog(BatchedAuditLog):
    """Entries in the Redis ban store: one key per entry, an index of ids per owner and per room.

    An owner's keys share a hash tag (its digest), so the script writing an entry touches one
    slot; a listing pages through the owner's (or the room's) index newest first.
    """

    store: RedisBanStore

    def __init__(self, store: RedisBanStore, retention_days: int) -> None:
        super().__init__(store, retention_days)
        self._add = store.client.register_script(_ADD_SCRIPT)

    @staticmethod
    def _tag(owner: str) -> str:
        digest = hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{_REDIS_PREFIX}{{{digest}}}"

    def _index(self, owner: str, room_name: str | None) -> str:
        if room_name is None:
            return self._tag(owner) + ":owner"
        return self._tag(owner) + ":room:" + json.dumps(room_name)

    def _queue(self, pipe: Any, entry: Entry) -> None:
        value = json.dumps(
            [
                entry.owner,
                entry.actor,
                entry.action,
                entry.room_name,
                entry.participant_identity,
                entry.details,
                entry.outcome,
                entry.status,
            ],
            separators=(",", ":"),
            default=str,
        )
        expires_ms = int((entry.at + self.retention) * 1000)
        room_index = "" if entry.room_name is None else self._index(entry.owner, entry.room_name)
        keys = [self._tag(entry.owner) + ":entry:" + entry.id, self._index(entry.owner, None), room_index]
        self._add(keys=keys, args=[entry.id, value, expires_ms, id_bound(self.cutoff())], client=pipe)

    def _write_many(self, entries: list[Entry]) -> None:
        with self.store._calling():
            pipe = self.store.client.pipeline(transaction=False)
            for entry in entries:
                self._queue(pipe, entry)
            pipe.execute()

    def list(self, wanted: Filter, limit: int) -> list[Entry]:
        self.flush()
        low, high = wanted.id_range(self.cutoff())
        index = self._index(wanted.owner, wanted.room_name)
        entry_prefix = self._tag(wanted.owner) + ":entry:"
        top = "+" if high is None else "(" + high
        found: list[Entry] = []
        client = self.store.client
        with self.store._calling():
            while len(found) < limit:
                batch = max(limit - len(found), _BATCH if (wanted.action or wanted.actor) else 0)
                raw_ids = client.zrevrangebylex(index, top, "[" + low, start=0, num=batch)
                ids = [raw.decode("ascii") if isinstance(raw, bytes) else str(raw) for raw in raw_ids]
                if not ids:
                    break
                values = client.mget([entry_prefix + entry_id for entry_id in ids])
                for entry_id, value in zip(ids, values, strict=True):
                    if value is None:
                        continue  # expired since it was indexed
                    entry = self._entry(entry_id, value)
                    if wanted.matches(entry):
                        found.append(entry)
                        if len(found) == limit:
                            break
                if len(ids) < batch:
                    break
                top = "(" + ids[-1]
        return found

    @staticmethod
    def _entry(entry_id: str, value: bytes | str) -> Entry:
        owner, actor, action, room_name, identity, details, outcome, status = json.loads(value)
        return Entry(entry_id, owner, actor, action, room_name, identity, details, outcome, status)


def open_audit_log(store: BanStore, retention_days: int) -> AuditLog | None:
    """The audit log kept in ``store`` (``None``: retention 0, no audit log)."""
    from ..bans.redis_store import RedisBanStore
    from ..bans.sql import SQLBanStore
    from ..bans.stores import MemoryBanStore

    if not retention_days:
        return None
    if isinstance(store, SQLBanStore):
        return SQLAuditLog(store, retention_days)
    if isinstance(store, RedisBanStore):
        return RedisAuditLog(store, retention_days)
    if isinstance(store, MemoryBanStore):
        return MemoryAuditLog(store, retention_days)
    raise TypeError(f"no audit log for {type(store).__name__}")


__all__ = [
    "AuditLog",
    "BatchedAuditLog",
    "Filter",
    "MemoryAuditLog",
    "RedisAuditLog",
    "SQLAuditLog",
    "open_audit_log",
]
