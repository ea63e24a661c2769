"""The stores that keep bans, behind one small interface (:class:`~.base.BanStore`).

Chosen by ``LIVEKIT_MODERATION_BAN_STORE`` (see :func:`open_store`):

- ``sqlite:///path`` (the default, under ``app.instance_path``): an embedded file shared by
  every worker process of one host; WAL mode, schema created on first use (:mod:`.sql`);
- ``postgresql://``: a PostgreSQL database shared by several hosts, through SQLAlchemy Core
  (``pip install 'flask-livekit-moderation[postgresql]'``; :mod:`.sql`);
- ``redis://`` / ``rediss://``: one Redis shared by several hosts (``pip install
  'flask-livekit-moderation[redis]'``); a key per ban expiring with it, an index per room
  (:mod:`.redis_store`);
- ``memory://``: one process only (tests, demos).

Expired bans are never returned and are purged as the store is written to. A store that
cannot be reached raises 503 ``BAN_STORE_UNAVAILABLE`` (never "no ban": a store that is down
must not let a banned participant back in).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any
from urllib.parse import unquote

from ..config import ConfigurationError
from .base import CONFIG_KEY, DEFAULT_FILE, STORE_TIMEOUT, After, BanStore, page
from .model import Ban, Clock
from .redis_store import RedisBanStore
from .sql import PostgreSQLBanStore, SQLBanStore, SQLiteBanStore

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_FILE",
    "STORE_TIMEOUT",
    "BanStore",
    "MemoryBanStore",
    "PostgreSQLBanStore",
    "RedisBanStore",
    "SQLBanStore",
    "SQLiteBanStore",
    "default_url",
    "open_store",
]


class MemoryBanStore(BanStore):
    """Bans in a dict of this process (``memory://``): for tests and demos, not for several workers."""

    kind = "memory"

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._bans: dict[tuple[str, str, str], Ban] = {}
        self._leases: dict[str, tuple[str, float]] = {}

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

    def list_bans(
        self, owner: str | None, room_name: str, *, limit: int | None = None, after: After | None = None
    ) -> list[Ban]:
        now = self.clock()
        with self._lock:
            found = [
                ban
                for (ban_owner, room, _), ban in self._bans.items()
                if room == room_name and (owner is None or ban_owner == owner) and ban.active(now)
            ]
        return page(found, limit, after)

    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        now = self.clock()
        with self._lock:
            keys = [
                key
                for key in self._bans
                if key[1] == room_name and key[2] == identity and (owner is None or key[0] == owner)
            ]
            lifted = [self._bans.pop(key) for key in keys]
        return page((ban for ban in lifted if ban.active(now)), None, None)

    def banned_rooms(self) -> list[tuple[str, str]]:
        now = self.clock()
        with self._lock:
            found = {(ban.owner, ban.room_name) for ban in self._bans.values() if ban.active(now)}
        return sorted(found, key=lambda pair: (pair[1], pair[0]))

    def lease(self, name: str, holder: str, seconds: float) -> str:
        now = self.clock()
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current[0] != holder and current[1] > now:
                return current[0]
            self._leases[name] = (holder, now + seconds)
            for key in [key for key, (_, expires) in self._leases.items() if expires <= now]:
                del self._leases[key]
            return holder

    def hand_over(self, name: str, holder: str, new_holder: str, seconds: float) -> bool:
        now = self.clock()
        with self._lock:
            current = self._leases.get(name)
            if current is None or current[0] != holder or current[1] <= now:
                return False
            self._leases[name] = (new_holder, now + seconds)
            return True

    def release(self, name: str, holder: str) -> None:
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current[0] == holder:
                del self._leases[name]


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
        raise ConfigurationError(
            f"{CONFIG_KEY} must be a URL: sqlite:///path, postgresql://..., redis://..., or memory://"
        )
    scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        if url.lower() not in ("memory://", "memory:"):
            raise ConfigurationError(f"{CONFIG_KEY}: write the one-process store as memory://")
        return MemoryBanStore()
    if scheme == "sqlite":
        return SQLiteBanStore(_sqlite_path(url, instance_path))
    if scheme in ("postgresql", "postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                f"{CONFIG_KEY} is a PostgreSQL URL but SQLAlchemy or psycopg is not installed: "
                "pip install 'flask-livekit-moderation[postgresql]'"
            ) from None
        try:
            return PostgreSQLBanStore(url)
        except ValueError:
            raise ConfigurationError(f"{CONFIG_KEY} is not a usable PostgreSQL URL") from None
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
        f"{CONFIG_KEY}: unknown scheme {scheme!r}; use sqlite:///path, postgresql://user@host/db, "
        "redis://host:port/db, rediss://... or memory://"
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
