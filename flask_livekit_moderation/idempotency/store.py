"""Where keys are kept: the same store as bans, so every worker and host sharing it agrees.

One small class per kind of ban store wraps the store instance (:func:`records_for`): a
structure kept on a :class:`~..bans.stores.MemoryBanStore`, one table of the SQL stores
(``livekit_moderation_idempotency``), one hash per key in Redis
(``livekit_moderation:idempotency:...``). Each decides a request in one atomic step
(:meth:`Records.begin`: one transaction, one Lua script), so two requests with one key can never
both run. Like the bans, a store that fails raises 503 ``BAN_STORE_UNAVAILABLE``, never
"no such key".

A key's record: its :class:`~.model.State`, the fingerprint of its first request, the token of
the request holding it, until when that claim holds, whether an attempt ended with an unknown
outcome, the kept answer, and when the record expires. A claim whose holder died (its
``claim_until`` passed) counts as no claim: as nothing, or as the "outcome unknown" mark it
took over.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .model import Begun, Kept, State, Verdict

if TYPE_CHECKING:
    # Imported where used: the bans package imports the pipeline, which imports this one.
    from ..bans.base import BanStore
    from ..bans.redis_store import RedisBanStore
    from ..bans.sql import SQLBanStore
    from ..bans.stores import MemoryBanStore


@dataclass(frozen=True)
class Record:
    """One key's record (see the module's docstring)."""

    state: State
    fingerprint: str
    token: str
    claim_until: float
    unknown: bool
    expires_at: float
    kept: Kept | None = None


def decide(record: Record | None, fingerprint: str, now: float) -> tuple[Verdict, Record | None]:
    """The verdict for a request with ``fingerprint`` finding ``record`` (unexpired, or ``None``).

    :data:`Verdict.CLAIMED` comes with the record it takes over (``None``: there was none).
    """
    if record is not None and record.state is State.RUNNING and record.claim_until <= now:
        # Its holder died: what it took over (an "outcome unknown" mark), or nothing.
        record = replace(record, state=State.UNKNOWN) if record.unknown else None
    if record is None:
        return Verdict.CLAIMED, None
    if record.fingerprint != fingerprint:
        return Verdict.REUSED, record
    if record.state is State.DONE:
        return Verdict.REPLAY, record
    if record.state is State.RUNNING:
        return Verdict.RUNNING, record
    return Verdict.CLAIMED, record


def claim(taken: Record | None, fingerprint: str, token: str, now: float, seconds: float) -> Record:
    """The record of a request claiming a key: a fresh one, or one over an "outcome unknown" mark
    (which it keeps until its own expiry, so a dead holder leaves the mark in place)."""
    if taken is None:
        return Record(State.RUNNING, fingerprint, token, now + seconds, False, now + seconds)
    return Record(
        State.RUNNING, fingerprint, token, now + seconds, True, max(taken.expires_at, now + seconds)
    )


def begun(verdict: Verdict, record: Record | None) -> Begun:
    """The :class:`~.model.Begun` of a verdict."""
    if verdict is Verdict.REPLAY:
        assert record is not None
        return Begun(verdict, kept=record.kept)
    return Begun(verdict, after_unknown=verdict is Verdict.CLAIMED and record is not None)


class Records(abc.ABC):
    """The keys of one store. Every method raises 503 ``BAN_STORE_UNAVAILABLE`` when it fails."""

    def __init__(self, store: BanStore) -> None:
        self.store = store

    def now(self) -> float:
        return self.store.clock()

    @abc.abstractmethod
    def begin(self, scope: str, key: str, fingerprint: str, token: str, claim_seconds: float) -> Begun:
        """Decide a request with ``key`` of ``scope`` (see :func:`decide`); when claimed, it holds
        the key as ``token`` for ``claim_seconds``."""

    @abc.abstractmethod
    def finish(self, scope: str, key: str, token: str, kept: Kept, seconds: float) -> None:
        """Keep ``kept`` as the key's answer for ``seconds``, if ``token`` still holds the key."""

    @abc.abstractmethod
    def release(self, scope: str, key: str, token: str, *, unknown: bool, seconds: float) -> None:
        """End ``token``'s claim without an answer: the key is free again, or (``unknown``) marked
        "outcome unknown" for ``seconds``."""


# -- memory -----------------------------------------------------------------------------------

#: Seconds between two purges of the memory store's expired keys.
_MEMORY_PURGE_SECONDS = 60.0


class MemoryRecords(Records):
    """Keys in a dict of this process, kept on the memory ban store (:func:`records_for`)."""

    def __init__(self, store: MemoryBanStore) -> None:
        super().__init__(store)
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], Record] = {}
        self._next_purge = 0.0

    def begin(self, scope: str, key: str, fingerprint: str, token: str, claim_seconds: float) -> Begun:
        now = self.now()
        with self._lock:
            records = self._records
            if now >= self._next_purge:  # a walk over every key: once a minute at most
                for stale in [name for name, record in records.items() if record.expires_at <= now]:
                    del records[stale]
                self._next_purge = now + _MEMORY_PURGE_SECONDS
            found = records.get((scope, key))
            verdict, record = decide(
                None if found is None or found.expires_at <= now else found, fingerprint, now
            )
            if verdict is Verdict.CLAIMED:
                records[(scope, key)] = claim(record, fingerprint, token, now, claim_seconds)
        return begun(verdict, record)

    def finish(self, scope: str, key: str, token: str, kept: Kept, seconds: float) -> None:
        with self._lock:
            record = self._records.get((scope, key))
            if record is not None and record.token == token:
                self._records[(scope, key)] = replace(
                    record, state=State.DONE, kept=kept, expires_at=self.now() + seconds
                )

    def release(self, scope: str, key: str, token: str, *, unknown: bool, seconds: float) -> None:
        with self._lock:
            record = self._records.get((scope, key))
            if record is None or record.token != token:
                return
            if unknown:
                self._records[(scope, key)] = replace(
                    record, state=State.UNKNOWN, unknown=True, expires_at=self.now() + seconds
                )
            else:
                del self._records[(scope, key)]


# -- SQL (SQLite, PostgreSQL) -----------------------------------------------------------------

_TABLE = "livekit_moderation_idempotency"
_COLUMNS = "state, fingerprint, token, claim_until, unknown, expires_at, answer"
_PURGE = f"DELETE FROM {_TABLE} WHERE expires_at <= :now"
_SELECT = f"SELECT {_COLUMNS} FROM {_TABLE} WHERE scope = :scope AND idempotency_key = :key"
_INSERT = (
    f"INSERT INTO {_TABLE} (scope, idempotency_key, {_COLUMNS}) "
    "VALUES (:scope, :key, :state, :fingerprint, :token, :claim_until, :unknown, :expires_at, NULL) "
    "ON CONFLICT (scope, idempotency_key) DO NOTHING"
)
#: Takes over a record only as it was read (its token): a request that changed it meanwhile wins.
_TAKE_OVER = (
    f"UPDATE {_TABLE} SET state = :state, fingerprint = :fingerprint, token = :token, "
    "claim_until = :claim_until, unknown = :unknown, expires_at = :expires_at, answer = NULL "
    "WHERE scope = :scope AND idempotency_key = :key AND token = :old_token"
)
_FINISH = (
    f"UPDATE {_TABLE} SET state = :state, answer = :answer, expires_at = :expires_at "
    "WHERE scope = :scope AND idempotency_key = :key AND token = :token"
)
_MARK_UNKNOWN = (
    f"UPDATE {_TABLE} SET state = :state, unknown = 1, expires_at = :expires_at "
    "WHERE scope = :scope AND idempotency_key = :key AND token = :token"
)
_DELETE = f"DELETE FROM {_TABLE} WHERE scope = :scope AND idempotency_key = :key AND token = :token"


class SQLRecords(Records):
    """Keys in the SQL store's ``livekit_moderation_idempotency`` table (schema in ``bans/sql.py``).

    :meth:`begin` is one transaction: a record is inserted only where none is (``ON CONFLICT DO
    NOTHING``) and taken over only as it was read (its token), so of two requests racing in
    two processes one claims and the other reads the winner's record.
    """

    store: SQLBanStore

    def _record(self, row: Sequence[Any]) -> Record:
        state, fingerprint, token, claim_until, unknown, expires_at, answer = row
        kept = None if answer is None else Kept.loads(self.store._text(answer))
        return Record(
            State(state), fingerprint, token, float(claim_until), bool(unknown), float(expires_at), kept
        )

    def _key(self, scope: str, key: str) -> dict[str, Any]:
        return {"scope": self.store._name(scope), "key": self.store._name(key)}

    def begin(self, scope: str, key: str, fingerprint: str, token: str, claim_seconds: float) -> Begun:
        now = self.now()
        names = self._key(scope, key)
        with self.store._write() as session:
            session.execute(_PURGE, {"now": now})
            rows = session.execute(_SELECT, names).fetchall()
            verdict, record = decide(self._record(rows[0]) if rows else None, fingerprint, now)
            if verdict is not Verdict.CLAIMED:
                return begun(verdict, record)
            mine = claim(record, fingerprint, token, now, claim_seconds)
            values = {
                **names,
                "state": mine.state.value,
                "fingerprint": fingerprint,
                "token": token,
                "claim_until": mine.claim_until,
                "unknown": int(mine.unknown),
                "expires_at": mine.expires_at,
            }
            if record is None:
                taken = session.execute(_INSERT, values).rowcount == 1
            else:
                taken = session.execute(_TAKE_OVER, {**values, "old_token": record.token}).rowcount == 1
            if taken:
                return begun(verdict, record)
            # Another request claimed it between our read and our write (PostgreSQL): its record.
            rows = session.execute(_SELECT, names).fetchall()
            verdict, record = decide(self._record(rows[0]) if rows else None, fingerprint, now)
            return begun(Verdict.RUNNING if verdict is Verdict.CLAIMED else verdict, record)

    def finish(self, scope: str, key: str, token: str, kept: Kept, seconds: float) -> None:
        params = {
            **self._key(scope, key),
            "token": token,
            "state": State.DONE.value,
            "answer": self.store._name(kept.dumps()),
            "expires_at": self.now() + seconds,
        }
        with self.store._write() as session:
            session.execute(_FINISH, params)

    def release(self, scope: str, key: str, token: str, *, unknown: bool, seconds: float) -> None:
        params: dict[str, Any] = {**self._key(scope, key), "token": token}
        with self.store._write() as session:
            if unknown:
                params.update(state=State.UNKNOWN.value, expires_at=self.now() + seconds)
                session.execute(_MARK_UNKNOWN, params)
            else:
                session.execute(_DELETE, params)


# -- Redis ------------------------------------------------------------------------------------

_REDIS_PREFIX = "livekit_moderation:idempotency:"
# A key's hash expires with its record (PEXPIREAT); its own expires_at is what the scripts
# compare with the store's clock, as the SQL statements do.
# KEYS: the key's hash. ARGV: fingerprint, token, now (ms), claim until (ms).
# Returns {verdict, kept answer or '', '1' when claimed over an "outcome unknown" mark}.
_BEGIN_SCRIPT = """
local r = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'unknown', 'claim_until', 'answer',
                    'expires_at')
local now = tonumber(ARGV[3])
local state = r[1]
if state and tonumber(r[6]) <= now then state = false end
if state == 'running' and tonumber(r[4]) <= now then
  if r[3] == '1' then state = 'unknown' else state = false end
end
if not state then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'running', 'fingerprint', ARGV[1], 'token', ARGV[2],
             'unknown', '0', 'claim_until', ARGV[4], 'expires_at', ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  return {'claimed', '', '0'}
end
if r[2] ~= ARGV[1] then return {'reused', '', '0'} end
if state == 'done' then return {'replay', r[5], '0'} end
if state == 'running' then return {'running', '', '0'} end
redis.call('HSET', KEYS[1], 'state', 'running', 'token', ARGV[2], 'unknown', '1', 'claim_until', ARGV[4])
if tonumber(r[6]) < tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return {'claimed', '', '1'}
"""
# KEYS: the key's hash. ARGV: token, answer, expiry (ms).
_FINISH_SCRIPT = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'answer', ARGV[2], 'expires_at', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""
# KEYS: the key's hash. ARGV: token, '1' to mark "outcome unknown" (else delete), expiry (ms).
_RELEASE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'unknown', 'unknown', '1', 'expires_at', ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


class RedisRecords(Records):
    """Keys in Redis: one hash per key, expiring with its claim or its kept answer; each step is
    one Lua script (atomic on the server)."""

    store: RedisBanStore

    def __init__(self, store: RedisBanStore) -> None:
        super().__init__(store)
        client = store.client
        self._begin = client.register_script(_BEGIN_SCRIPT)
        self._finish = client.register_script(_FINISH_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    @staticmethod
    def _name(scope: str, key: str) -> str:
        return _REDIS_PREFIX + json.dumps([scope, key])

    def _ms(self, seconds: float = 0.0) -> int:
        return int((self.now() + seconds) * 1000)

    def begin(self, scope: str, key: str, fingerprint: str, token: str, claim_seconds: float) -> Begun:
        with self.store._calling():
            verdict, answer, unknown = self._begin(
                keys=[self._name(scope, key)], args=[fingerprint, token, self._ms(), self._ms(claim_seconds)]
            )
        verdict = Verdict(_text(verdict))
        if verdict is Verdict.REPLAY:
            return Begun(verdict, kept=Kept.loads(_text(answer)))
        return Begun(verdict, after_unknown=_text(unknown) == "1")

    def finish(self, scope: str, key: str, token: str, kept: Kept, seconds: float) -> None:
        with self.store._calling():
            self._finish(keys=[self._name(scope, key)], args=[token, kept.dumps(), self._ms(seconds)])

    def release(self, scope: str, key: str, token: str, *, unknown: bool, seconds: float) -> None:
        with self.store._calling():
            self._release(
                keys=[self._name(scope, key)], args=[token, "1" if unknown else "0", self._ms(seconds)]
            )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


# -- which ------------------------------------------------------------------------------------

#: The attribute of a ban store its keys are kept under (made on first use).
_ATTRIBUTE = "_livekit_moderation_idempotency"
_LOCK = threading.Lock()


def records_for(store: BanStore) -> Records:
    """The keys kept in ``store``: one :class:`Records` per store, kept on it, chosen by its type."""
    from ..bans.stores import MemoryBanStore, RedisBanStore, SQLBanStore

    found: Records | None = getattr(store, _ATTRIBUTE, None)
    if found is not None:
        return found
    with _LOCK:
        found = getattr(store, _ATTRIBUTE, None)
        if found is None:
            if isinstance(store, SQLBanStore):
                found = SQLRecords(store)
            elif isinstance(store, RedisBanStore):
                found = RedisRecords(store)
            elif isinstance(store, MemoryBanStore):
                found = MemoryRecords(store)
            else:
                raise TypeError(f"no idempotency records for {type(store).__name__}")
            setattr(store, _ATTRIBUTE, found)
        return found


__all__ = ["MemoryRecords", "Record", "Records", "RedisRecords", "SQLRecords", "records_for"]
