"""Where lobbies are kept: in the ban store (memory, SQLite, PostgreSQL, Redis), so every worker
and host sharing it agrees on who may join a locked room.

Each class wraps the ban store instance (:func:`lobby_store` picks one by the store's type and
keeps it on the store); failures raise the ban store's 503 ``BAN_STORE_UNAVAILABLE``, never
"not locked".

A knock (:meth:`LobbyStore.knock`) is on the host's hot path: one round trip to the store
(PostgreSQL: one statement; Redis: one script; SQLite: one read, plus one write the first time
an identity knocks at a locked room).
"""

from __future__ import annotations

import abc
import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from ..bans.base import BanStore
from ..bans.redis_store import RedisBanStore
from ..bans.sql import PostgreSQLBanStore, SQLBanStore, SQLiteBanStore, carry_over
from ..bans.stores import MemoryBanStore
from .model import ADMITTED, WAITING, Admission, After, Entry, Status, Waiting, admission


class LobbyStore(abc.ABC):
    """The lobbies of locked rooms, keyed by (owner, room name). Identities come in already
    normalised (:func:`~.operations.lobby_identity`)."""

    def __init__(self, bans: BanStore) -> None:
        self.bans = bans

    def now(self) -> float:
        return self.bans.clock()

    @abc.abstractmethod
    def lock(self, owner: str, room_name: str, present: Sequence[str]) -> float:
        """Lock the room (a locked room stays locked since its first lock) and admit ``present``
        (those in the room now); returns when it was locked (Unix seconds)."""

    @abc.abstractmethod
    def unlock(self, owner: str, room_name: str) -> bool:
        """Delete the room's lobby with every entry; whether it was locked."""

    @abc.abstractmethod
    def knock(self, owner: str, room_name: str, identity: str, name: str | None) -> Admission:
        """``identity`` asks to join: admitted at once in an unlocked room; in a locked one, its
        entry (the first knock is recorded as waiting; a later knock changes nothing)."""

    @abc.abstractmethod
    def admission(self, owner: str, room_name: str, identity: str) -> Admission:
        """Whether ``identity`` may join, without knocking (one read)."""

    @abc.abstractmethod
    def decide(self, owner: str, room_name: str, identities: Sequence[str], status: Status) -> None:
        """Set each identity's status (admitted or denied), keeping its first knock; an identity
        that has not knocked gets an entry in advance."""

    @abc.abstractmethod
    def locked_at(self, owner: str, room_name: str) -> float | None:
        """When the room was locked (Unix seconds), ``None`` when it is not."""

    @abc.abstractmethod
    def waiting(self, owner: str, room_name: str, *, limit: int, after: After | None = None) -> list[Waiting]:
        """Who waits, in knock order (knocked_at, then identity): after ``after``, at most ``limit``."""

    @abc.abstractmethod
    def locked_rooms(self) -> list[tuple[str, str]]:
        """Every locked (owner, room name), in (room name, owner) order."""

    def any_locked(self) -> bool:
        """Whether any room is locked (asked by the reconciler every interval: cheap)."""
        return bool(self.locked_rooms())


#: Held while a lobby store is made: two threads' first use must not make two (the memory
#: store's lobbies live in it).
_MAKING = threading.Lock()


def lobby_store(bans: BanStore) -> LobbyStore:
    """The lobby store kept in ``bans`` (made on first use, then the same object)."""
    found: LobbyStore | None = getattr(bans, "_lobby_store", None)
    if found is not None:
        return found
    with _MAKING:
        made: LobbyStore | None = getattr(bans, "_lobby_store", None)
        if made is not None:
            return made
        if isinstance(bans, RedisBanStore):
            found = RedisLobbyStore(bans)
        elif isinstance(bans, PostgreSQLBanStore):
            found = PostgreSQLLobbyStore(bans)
        elif isinstance(bans, SQLBanStore):
            found = SQLiteLobbyStore(bans)
        elif isinstance(bans, MemoryBanStore):
            found = MemoryLobbyStore(bans)
        else:
            raise TypeError(f"no lobby store for {type(bans).__name__}")
        setattr(bans, "_lobby_store", found)  # noqa: B010 - kept on the store: its lifetime, no registry
    return found


# -- memory -----------------------------------------------------------------------------------


class MemoryLobbyStore(LobbyStore):
    """Lobbies in dicts of this process, beside the memory store's bans."""

    def __init__(self, bans: BanStore) -> None:
        super().__init__(bans)
        self._lock = threading.Lock()
        self._locked: dict[tuple[str, str], float] = {}
        #: Entries by room; a decision made before the lock is kept for when it comes.
        self._entries: dict[tuple[str, str], dict[str, Entry]] = {}

    def _decide(self, key: tuple[str, str], identities: Iterable[str], status: Status) -> None:
        entries = self._entries.setdefault(key, {})
        for identity in identities:
            old = entries.get(identity)
            entries[identity] = Entry(status) if old is None else Entry(status, old.knocked_at, old.name)

    def lock(self, owner: str, room_name: str, present: Sequence[str]) -> float:
        key = (owner, room_name)
        with self._lock:
            locked_at = self._locked.setdefault(key, self.now())
            self._decide(key, present, ADMITTED)
            return locked_at

    def unlock(self, owner: str, room_name: str) -> bool:
        key = (owner, room_name)
        with self._lock:
            self._entries.pop(key, None)
            return self._locked.pop(key, None) is not None

    def knock(self, owner: str, room_name: str, identity: str, name: str | None) -> Admission:
        key = (owner, room_name)
        with self._lock:
            locked_at = self._locked.get(key)
            if locked_at is None:
                return admission(owner, room_name, identity, None, None)
            entry = self._entries.setdefault(key, {}).setdefault(identity, Entry(WAITING, self.now(), name))
            return admission(owner, room_name, identity, locked_at, entry)

    def admission(self, owner: str, room_name: str, identity: str) -> Admission:
        key = (owner, room_name)
        with self._lock:
            locked_at = self._locked.get(key)
            entry = None if locked_at is None else self._entries.get(key, {}).get(identity)
            return admission(owner, room_name, identity, locked_at, entry)

    def decide(self, owner: str, room_name: str, identities: Sequence[str], status: Status) -> None:
        with self._lock:
            self._decide((owner, room_name), identities, status)

    def locked_at(self, owner: str, room_name: str) -> float | None:
        with self._lock:
            return self._locked.get((owner, room_name))

    def waiting(self, owner: str, room_name: str, *, limit: int, after: After | None = None) -> list[Waiting]:
        key = (owner, room_name)
        with self._lock:
            entries = list(self._entries.get(key, {}).items()) if key in self._locked else []
        found = sorted(
            (
                Waiting(identity, entry.name, entry.knocked_at)
                for identity, entry in entries
                if entry.status == WAITING and entry.knocked_at is not None
            ),
            key=lambda waiting: (waiting.knocked_at, waiting.participant_identity),
        )
        if after is not None:
            found = [w for w in found if (w.knocked_at, w.participant_identity) > after]
        return found[:limit]

    def locked_rooms(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._locked, key=lambda key: (key[1], key[0]))


# -- SQL (SQLite, PostgreSQL) -------------------------------------------------------------------

_ROOMS = "livekit_moderation_lobby_rooms"
_ENTRIES = "livekit_moderation_lobby_entries"
_THIS_ROOM = "room_name = :room_name AND owner = :owner"
#: The room's lock and the identity's entry, in one read (no row: the room is not locked).
_ADMISSION = (
    f"SELECT r.locked_at, e.status, e.knocked_at, e.name FROM {_ROOMS} r "
    f"LEFT JOIN {_ENTRIES} e ON e.room_name = r.room_name AND e.owner = r.owner AND e.identity = :identity "
    "WHERE r.room_name = :room_name AND r.owner = :owner"
)
#: The first knock at a locked room (nothing when it is not locked, or the identity has an entry).
_ADD_WAITING = (
    f"INSERT INTO {_ENTRIES} (room_name, owner, identity, status, knocked_at, name) "
    "SELECT room_name, owner, :identity, 'waiting', :now, :name "
    f"FROM {_ROOMS} WHERE {_THIS_ROOM} "
    "ON CONFLICT (room_name, owner, identity) DO NOTHING"
)
_DECIDE = (
    f"INSERT INTO {_ENTRIES} (room_name, owner, identity, status) "
    "VALUES (:room_name, :owner, :identity, :status) "
    "ON CONFLICT (room_name, owner, identity) DO UPDATE SET status = excluded.status"
)
_LOCK = (
    f"INSERT INTO {_ROOMS} (room_name, owner, locked_at) VALUES (:room_name, :owner, :now) "
    "ON CONFLICT (room_name, owner) DO NOTHING"
)
_LOCKED_AT = f"SELECT locked_at FROM {_ROOMS} WHERE {_THIS_ROOM}"
_UNLOCK = (f"DELETE FROM {_ENTRIES} WHERE {_THIS_ROOM}", f"DELETE FROM {_ROOMS} WHERE {_THIS_ROOM}")
_LOCKED_ROOMS = f"SELECT owner, room_name FROM {_ROOMS} ORDER BY room_name, owner"
_ANY_LOCKED = f"SELECT 1 FROM {_ROOMS} LIMIT 1"
_WAITING = (
    f"SELECT identity, name, knocked_at FROM {_ENTRIES} WHERE {_THIS_ROOM} AND status = 'waiting' "
    "AND knocked_at IS NOT NULL"
)
_WAITING_AFTER = _WAITING + " AND (knocked_at, identity) > (:after_at, :after_identity)"
_PAGE = " ORDER BY knocked_at, identity LIMIT :limit"


class SQLLobbyStore(LobbyStore):
    """Lobbies in two tables beside the bans', with statements SQLite and PostgreSQL both run."""

    bans: SQLBanStore

    def _params(self, owner: str, room_name: str, **more: Any) -> dict[str, Any]:
        name = self.bans._name
        return {"room_name": name(room_name), "owner": name(owner), **more}

    def _admission(self, owner: str, room_name: str, identity: str, rows: Sequence[Any]) -> Admission:
        if not rows:
            return admission(owner, room_name, identity, None, None)
        locked_at, status, knocked_at, name = rows[0]
        entry = (
            None
            if status is None
            else Entry(status, knocked_at, None if name is None else self.bans._text(name))
        )
        return admission(owner, room_name, identity, locked_at, entry)

    def admission(self, owner: str, room_name: str, identity: str) -> Admission:
        params = self._params(owner, room_name, identity=self.bans._name(identity))
        return self._admission(owner, room_name, identity, self.bans._read(_ADMISSION, params))

    def _decisions(
        self, owner: str, room_name: str, identities: Iterable[str], status: Status
    ) -> list[dict[str, Any]]:
        return [
            self._params(owner, room_name, identity=self.bans._name(i), status=status) for i in identities
        ]

    def lock(self, owner: str, room_name: str, present: Sequence[str]) -> float:
        with self.bans._write() as session:
            session.execute(_LOCK, self._params(owner, room_name, now=self.now()))
            if present:
                session.execute_many(_DECIDE, self._decisions(owner, room_name, present, ADMITTED))
            rows = session.execute(_LOCKED_AT, self._params(owner, room_name)).fetchall()
        return float(rows[0][0])

    def unlock(self, owner: str, room_name: str) -> bool:
        params = self._params(owner, room_name)
        with self.bans._write() as session:
            session.execute(_UNLOCK[0], params)
            return session.execute(_UNLOCK[1], params).rowcount > 0

    def decide(self, owner: str, room_name: str, identities: Sequence[str], status: Status) -> None:
        with self.bans._write() as session:
            session.execute_many(_DECIDE, self._decisions(owner, room_name, identities, status))

    def locked_at(self, owner: str, room_name: str) -> float | None:
        rows = self.bans._read(_LOCKED_AT, self._params(owner, room_name))
        return float(rows[0][0]) if rows else None

    def waiting(self, owner: str, room_name: str, *, limit: int, after: After | None = None) -> list[Waiting]:
        params = self._params(owner, room_name, limit=limit)
        sql = _WAITING + _PAGE
        if after is not None:
            params.update(after_at=after[0], after_identity=self.bans._name(after[1]))
            sql = _WAITING_AFTER + _PAGE
        text = self.bans._text
        return [
            Waiting(text(identity), None if name is None else text(name), float(knocked_at))
            for identity, name, knocked_at in self.bans._read(sql, params)
        ]

    def locked_rooms(self) -> list[tuple[str, str]]:
        text = self.bans._text
        return [(text(owner), text(room)) for owner, room in self.bans._read(_LOCKED_ROOMS, {})]

    def any_locked(self) -> bool:
        return bool(self.bans._read(_ANY_LOCKED, {}))


# A lobby lost with a deleted SQLite file would unlock its room: it is copied like the bans.
carry_over(_ROOMS)
carry_over(_ENTRIES)


class SQLiteLobbyStore(SQLLobbyStore):
    """SQLite: a knock is one read; the first knock of an identity at a locked room adds a write
    (SQLite is in the process: a read costs no round trip, and a write takes the file's lock)."""

    bans: SQLiteBanStore

    def knock(self, owner: str, room_name: str, identity: str, name: str | None) -> Admission:
        params = self._params(owner, room_name, identity=self.bans._name(identity))
        rows = self.bans._read(_ADMISSION, params)
        if rows and rows[0][1] is None:
            params.update(now=self.now(), name=None if name is None else self.bans._name(name))
            with self.bans._write() as session:
                session.execute(_ADD_WAITING, params)
                rows = session.execute(_ADMISSION, params).fetchall()
        return self._admission(owner, room_name, identity, rows)

    # Asked every interval by the reconciler: a store never used is not created for the asking.
    def locked_rooms(self) -> list[tuple[str, str]]:
        return [] if self.bans._nothing_here() else super().locked_rooms()

    def any_locked(self) -> bool:
        return False if self.bans._nothing_here() else super().any_locked()


#: PostgreSQL's knock: one statement (one round trip), committed by itself. The statement's
#: snapshot does not see its own insert, hence ``added`` beside ``kept``. The insert is not even
#: tried for an identity that has an entry (the repeat knocks of a waiting guest): a tried
#: insert takes a transaction id, and its commit a WAL flush; ON CONFLICT covers two first knocks
#: at once.
_PG_KNOCK = f"""
WITH lobby AS (SELECT room_name, owner, locked_at FROM {_ROOMS} WHERE {_THIS_ROOM}),
added AS (
    INSERT INTO {_ENTRIES} (room_name, owner, identity, status, knocked_at, name)
    SELECT room_name, owner, :identity, 'waiting', CAST(:now AS DOUBLE PRECISION), CAST(:name AS BYTEA)
    FROM lobby
    WHERE NOT EXISTS (SELECT 1 FROM {_ENTRIES} WHERE {_THIS_ROOM} AND identity = :identity)
    ON CONFLICT (room_name, owner, identity) DO NOTHING
    RETURNING status, knocked_at, name
),
kept AS (
    SELECT status, knocked_at, name FROM {_ENTRIES} WHERE {_THIS_ROOM} AND identity = :identity
)
SELECT lobby.locked_at, e.status, e.knocked_at, e.name
FROM lobby LEFT JOIN (SELECT * FROM added UNION ALL SELECT * FROM kept) e ON true
"""


class PostgreSQLLobbyStore(SQLLobbyStore):
    """PostgreSQL: a knock is one statement."""

    bans: PostgreSQLBanStore

    def knock(self, owner: str, room_name: str, identity: str, name: str | None) -> Admission:
        params = self._params(
            owner,
            room_name,
            identity=self.bans._name(identity),
            now=self.now(),
            name=None if name is None else self.bans._name(name),
        )
        # _read runs one statement on an autocommit connection: the insert commits with it.
        return self._admission(owner, room_name, identity, self.bans._read(_PG_KNOCK, params))


# -- Redis --------------------------------------------------------------------------------------

_REDIS_PREFIX = "livekit_moderation:lobby:"
#: Every locked room (JSON [owner, room name]); a key of its own, as the bans' rooms set.
_LOCKED_KEY = _REDIS_PREFIX + "rooms"
# An entry's value is "<status>:<JSON [knocked_at, name]>" (knocked_at null: never knocked).
_SET_STATUS = """
local function set_status(entries, waiting, member, status)
  local old = redis.call('HGET', entries, member)
  local rest = '[null,null]'
  if old then rest = string.sub(old, string.find(old, ':', 1, true) + 1) end
  redis.call('HSET', entries, member, status .. ':' .. rest)
  redis.call('ZREM', waiting, member)
end
"""
# KEYS: lock, entries, waiting. ARGV: member, new entry, now. Returns {} (unlocked) or {locked_at, entry}.
_KNOCK_SCRIPT = """
local locked = redis.call('GET', KEYS[1])
if not locked then return {} end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then
  entry = ARGV[2]
  redis.call('HSET', KEYS[2], ARGV[1], entry)
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
return {locked, entry}
"""
# KEYS: lock, entries, waiting. ARGV: now, members admitted... Returns the lock's time.
_LOCK_SCRIPT = (
    _SET_STATUS
    + """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
for i = 2, #ARGV do set_status(KEYS[2], KEYS[3], ARGV[i], 'admitted') end
return redis.call('GET', KEYS[1])
"""
)
# KEYS: entries, waiting. ARGV: status, members...
_DECIDE_SCRIPT = (
    _SET_STATUS
    + """
for i = 2, #ARGV do set_status(KEYS[1], KEYS[2], ARGV[i], ARGV[1]) end
return 1
"""
)


class RedisLobbyStore(LobbyStore):
    """Redis: per locked room a key with the lock's time, a hash of entries and a sorted set of
    who waits (by knock time), all under one hash tag; a set of locked rooms for the reconciler.
    A knock is one script (one round trip). Keys do not expire: a lobby lasts until unlocked."""

    bans: RedisBanStore

    def __init__(self, bans: BanStore) -> None:
        super().__init__(bans)
        client = self.bans.client
        self._knock = client.register_script(_KNOCK_SCRIPT)
        self._lock = client.register_script(_LOCK_SCRIPT)
        self._decide = client.register_script(_DECIDE_SCRIPT)

    @staticmethod
    def _keys(owner: str, room_name: str) -> tuple[str, str, str]:
        room = json.dumps([owner, room_name])
        tag = hashlib.sha256(room.encode("utf-8")).hexdigest()[:16]
        base = f"{_REDIS_PREFIX}{{{tag}}}:"
        return base + "lock:" + room, base + "entries:" + room, base + "waiting:" + room

    @staticmethod
    def _member(identity: str) -> str:
        return json.dumps(identity)

    @staticmethod
    def _entry(value: bytes | str) -> Entry:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        status, _, rest = text.partition(":")
        knocked_at, name = json.loads(rest)
        return Entry(status, knocked_at, name)  # type: ignore[arg-type]

    def _admission(self, owner: str, room_name: str, identity: str, found: Sequence[Any]) -> Admission:
        if not found or found[0] is None:
            return admission(owner, room_name, identity, None, None)
        entry = None if found[1] is None else self._entry(found[1])
        return admission(owner, room_name, identity, float(found[0]), entry)

    def knock(self, owner: str, room_name: str, identity: str, name: str | None) -> Admission:
        now = self.now()
        new = "waiting:" + json.dumps([now, name])
        with self.bans._calling():
            found = self._knock(
                keys=list(self._keys(owner, room_name)), args=[self._member(identity), new, now]
            )
        return self._admission(owner, room_name, identity, found)

    def admission(self, owner: str, room_name: str, identity: str) -> Admission:
        lock, entries, _ = self._keys(owner, room_name)
        with self.bans._calling():
            pipe = self.bans.client.pipeline(transaction=False)
            pipe.get(lock)
            pipe.hget(entries, self._member(identity))
            found = pipe.execute()
        return self._admission(owner, room_name, identity, found)

    def lock(self, owner: str, room_name: str, present: Sequence[str]) -> float:
        members = [self._member(identity) for identity in present]
        with self.bans._calling():
            pipe = self.bans.client.pipeline(transaction=False)
            # The set of locked rooms first: a lock the reconciler does not know of must never be left.
            pipe.sadd(_LOCKED_KEY, json.dumps([owner, room_name]))
            self._lock(keys=list(self._keys(owner, room_name)), args=[self.now(), *members], client=pipe)
            locked_at = pipe.execute()[1]
        return float(locked_at)

    def unlock(self, owner: str, room_name: str) -> bool:
        with self.bans._calling():
            pipe = self.bans.client.pipeline(transaction=False)
            pipe.delete(*self._keys(owner, room_name))
            pipe.srem(_LOCKED_KEY, json.dumps([owner, room_name]))
            deleted, _ = pipe.execute()
        return bool(deleted)

    def decide(self, owner: str, room_name: str, identities: Sequence[str], status: Status) -> None:
        _, entries, waiting = self._keys(owner, room_name)
        with self.bans._calling():
            self._decide(keys=[entries, waiting], args=[status, *map(self._member, identities)])

    def locked_at(self, owner: str, room_name: str) -> float | None:
        with self.bans._calling():
            value = self.bans.client.get(self._keys(owner, room_name)[0])
        return None if value is None else float(value)

    def waiting(self, owner: str, room_name: str, *, limit: int, after: After | None = None) -> list[Waiting]:
        _, entries, waiting = self._keys(owner, room_name)
        with self.bans._calling():
            client = self.bans.client
            if after is None:
                found: list[tuple[bytes, float]] = client.zrange(waiting, 0, limit - 1, withscores=True)  # type: ignore[assignment]
            else:
                # Those tied with the cursor's knock, after its identity; then those knocked later.
                after_member = self._member(after[1])
                pipe = client.pipeline(transaction=False)
                pipe.zrangebyscore(waiting, after[0], after[0], withscores=True)
                pipe.zrangebyscore(waiting, f"({after[0]!r}", "+inf", start=0, num=limit, withscores=True)
                tied, later = pipe.execute()
                found = [(m, s) for m, s in tied if m.decode("utf-8") > after_member] + later
                found = found[:limit]
            if not found:
                return []
            values = client.hmget(entries, [member for member, _ in found])
        listed = []
        for (member, score), value in zip(found, values, strict=True):
            if value is None:
                continue
            entry = self._entry(value)
            if entry.status == WAITING:
                listed.append(Waiting(json.loads(member), entry.name, score))
        return listed

    def locked_rooms(self) -> list[tuple[str, str]]:
        with self.bans._calling():
            raws = self.bans.client.smembers(_LOCKED_KEY)
        rooms = [tuple(json.loads(raw)) for raw in raws]
        return sorted(((o, r) for o, r in rooms), key=lambda pair: (pair[1], pair[0]))

    def any_locked(self) -> bool:
        with self.bans._calling():
            return bool(self.bans.client.scard(_LOCKED_KEY))
