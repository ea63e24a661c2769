"""The Redis store (``redis://``, ``rediss://``): bans shared by every host.

Each ban is one key expiring with the ban; each room has an index of its bans (a sorted set
by expiry) for listing; one set of rooms (by their last ban's expiry) tells the reconciler
where bans are. A lease is one key expiring with it. ``pip install 'flask-livekit-moderation[redis]'``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import STORE_TIMEOUT, After, BanStore, page, unavailable
from .model import Ban, Clock, utc_datetime

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("flask_livekit_moderation")

# The key of a ban and the index of a room share a hash tag (the room's digest), so the
# scripts touch one slot. Names are JSON-encoded: any character may appear in them.
_REDIS_PREFIX = "livekit_moderation:bans:"
#: Every room with a ban, scored by its last ban's expiry (ms); a key of its own (its own slot).
_ROOMS_KEY = _REDIS_PREFIX + "rooms"
_LEASE_PREFIX = "livekit_moderation:leases:"
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
# KEYS: the rooms set. ARGV: expiry (ms), room member, now (ms). Keeps each room's latest expiry.
_ROOM_SCRIPT = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if (not score) or tonumber(score) < tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
"""
# KEYS: ban, index. ARGV: index member. Returns the ban's value (nil when there was none).
_LIFT_SCRIPT = """
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"""
# A lease's value is "<expiry ms>:<holder>".
_LEASE_READ = """
local function lease(key)
  local value = redis.call('GET', key)
  if not value then return nil, 0 end
  local sep = string.find(value, ':', 1, true)
  return string.sub(value, sep + 1), tonumber(string.sub(value, 1, sep - 1))
end
"""
# KEYS: lease. ARGV: holder, expiry (ms), now (ms). Returns the holder after the call.
_LEASE_SCRIPT = (
    _LEASE_READ
    + """
local holder, expires = lease(KEYS[1])
if holder and holder ~= ARGV[1] and expires > tonumber(ARGV[3]) then return holder end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return ARGV[1]
"""
)
# KEYS: lease. ARGV: holder, new holder, expiry (ms), now (ms). Returns 1 when handed over.
_HAND_OVER_SCRIPT = (
    _LEASE_READ
    + """
local holder, expires = lease(KEYS[1])
if holder ~= ARGV[1] or expires <= tonumber(ARGV[4]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3] .. ':' .. ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""
)
# KEYS: lease. ARGV: holder.
_RELEASE_SCRIPT = (
    _LEASE_READ
    + """
local holder = lease(KEYS[1])
if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
)


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
        self._room = client.register_script(_ROOM_SCRIPT)
        self._lift = client.register_script(_LIFT_SCRIPT)
        self._lease = client.register_script(_LEASE_SCRIPT)
        self._hand_over = client.register_script(_HAND_OVER_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    @classmethod
    def from_url(cls, url: str, clock: Clock = time.time) -> RedisBanStore:
        """A store on the Redis at ``url``; raises ``ValueError`` for a URL it cannot use.

        Timeouts default to :data:`~.base.STORE_TIMEOUT` and a failed call is retried once at
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
            raise unavailable(self.kind, exc) from None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

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

    def _queue_put(self, pipe: Any, ban: Ban, now_ms: int) -> None:
        key, index, member = self._keys(ban.owner, ban.room_name, ban.participant_identity)
        expires = _ms(ban.expires_at)
        # The room first: a ban whose room the reconciler does not know of must never be left.
        self._room(keys=[_ROOMS_KEY], args=[expires, json.dumps(ban.room_name), now_ms], client=pipe)
        self._put(keys=[key, index], args=[self._value(ban), expires, member, now_ms], client=pipe)

    def put(self, ban: Ban) -> None:
        self.put_many((ban,))

    def put_many(self, bans: Iterable[Ban]) -> None:
        now_ms = self._now_ms()
        with self._calling():
            pipe = self.client.pipeline(transaction=False)
            for ban in bans:
                self._queue_put(pipe, ban, now_ms)
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
        found = []
        members: list[bytes] = self.client.zrangebyscore(index, f"({self._now_ms()}", "+inf")  # type: ignore[assignment]
        for raw in members:
            member_owner, member_identity = json.loads(raw)
            if (owner is None or member_owner == owner) and (identity is None or member_identity == identity):
                found.append((member_owner, member_identity))
        return found

    def list_bans(
        self, owner: str | None, room_name: str, *, limit: int | None = None, after: After | None = None
    ) -> list[Ban]:
        with self._calling():
            members = sorted(self._members(owner, room_name, None), key=lambda m: (m[1], m[0]))
            if after is not None:
                members = [(o, i) for o, i in members if (i, o) > after]
            if limit is not None:
                members = members[:limit]
            if not members:
                return []
            values = self.client.mget([self._keys(o, room_name, i)[0] for o, i in members])
            bans = [
                self._ban(o, room_name, i, v)
                for (o, i), v in zip(members, values, strict=True)
                if v is not None
            ]
        now = self.clock()
        return page((ban for ban in bans if ban.active(now)), None, None)

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
        return page((ban for ban in lifted if ban.active(now)), None, None)

    def banned_rooms(self) -> list[tuple[str, str]]:
        now_ms = self._now_ms()
        with self._calling():
            raws: list[bytes] = self.client.zrangebyscore(_ROOMS_KEY, f"({now_ms}", "+inf")  # type: ignore[assignment]
            rooms = [json.loads(raw) for raw in raws]
            if not rooms:
                return []
            pipe = self.client.pipeline(transaction=False)
            for room in rooms:
                pipe.zrangebyscore(self._keys("", room, "")[1], f"({now_ms}", "+inf")
            indexes = pipe.execute()
        found = {
            (json.loads(raw)[0], room)
            for room, members in zip(rooms, indexes, strict=True)
            for raw in members
        }
        return sorted(found, key=lambda pair: (pair[1], pair[0]))

    def any_active(self) -> bool:
        with self._calling():
            return bool(self.client.zcount(_ROOMS_KEY, f"({self._now_ms()}", "+inf"))

    def lease(self, name: str, holder: str, seconds: float) -> str:
        now_ms = self._now_ms()
        with self._calling():
            current = self._lease(
                keys=[_LEASE_PREFIX + json.dumps(name)], args=[holder, now_ms + int(seconds * 1000), now_ms]
            )
        return current.decode("utf-8") if isinstance(current, bytes) else str(current)

    def hand_over(self, name: str, holder: str, new_holder: str, seconds: float) -> bool:
        now_ms = self._now_ms()
        with self._calling():
            done = self._hand_over(
                keys=[_LEASE_PREFIX + json.dumps(name)],
                args=[holder, new_holder, now_ms + int(seconds * 1000), now_ms],
            )
        return bool(done)

    def release(self, name: str, holder: str) -> None:
        with self._calling():
            self._release(keys=[_LEASE_PREFIX + json.dumps(name)], args=[holder])

    def check_durability(self) -> list[str]:
        """Read ``maxmemory-policy``, ``appendonly`` and ``save`` and log a WARNING naming each one
        that can lose bans; returns the names warned about.

        Every ban key expires (with its ban), so any eviction policy but ``noeviction`` may drop
        bans (``volatile-*`` evicts exactly keys with an expiry); with neither AOF nor RDB
        snapshots, a restart drops them all. ``CONFIG`` disabled or renamed (managed Redis) is
        noted at INFO and checked no further; Redis unreachable is noted as a WARNING.
        """
        import redis

        try:
            config: dict[str, str] = {}
            for name in ("maxmemory-policy", "maxmemory", "appendonly", "save"):
                answer = self.client.config_get(name)
                for key, value in answer.items():
                    config[_str(key)] = _str(value)
        except redis.ResponseError:
            logger.info(
                "ban store: Redis refused CONFIG GET (disabled or renamed): check yourself that it "
                "evicts nothing (maxmemory-policy noeviction) and persists (appendonly yes)"
            )
            return []
        except (redis.RedisError, OSError) as exc:
            logger.warning(
                "ban store: Redis could not be reached at start-up (%s): its maxmemory-policy, appendonly "
                "and save settings were not checked",
                type(exc).__name__,
            )
            return []
        warned = []
        policy = config.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            warned.append("maxmemory-policy")
            logger.warning(
                "ban store: Redis maxmemory-policy is %r (maxmemory %s): every ban key expires with its ban, "
                "so Redis may evict bans before they end and banned participants get back in; set "
                "maxmemory-policy noeviction",
                policy,
                config.get("maxmemory", "?"),
            )
        if config.get("appendonly", "no") == "no" and not config.get("save", "").strip():
            warned.append("appendonly")
            logger.warning(
                "ban store: Redis persists nothing (appendonly no, save ''): a restart loses every ban; "
                "set appendonly yes"
            )
        return warned

    def close(self) -> None:
        self.client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return "<RedisBanStore>"


def _str(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
