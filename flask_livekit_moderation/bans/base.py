"""What every ban store offers (:class:`BanStore`), and what the stores share.

Besides the bans themselves a store keeps **leases**: a name held by one holder until it
expires. The reconciler takes one so that only one process of those sharing the store
reconciles at a time (:mod:`.reconcile`), and the webhook one per LiveKit event, so that an
event delivered twice is handled once (:mod:`.webhook`). A lease lives in the store, so it holds
across the processes and hosts that share it, and it expires by itself when its holder dies.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterable

from .. import errors
from ..errors import ModerationError
from .model import Ban, Clock

logger = logging.getLogger("flask_livekit_moderation")

#: Seconds a store operation may wait (SQLite's busy timeout, Redis's socket timeouts,
#: PostgreSQL's connect, statement and lock timeouts).
STORE_TIMEOUT = 1.0
#: The config key naming the store, and the default store's file under ``app.instance_path``.
CONFIG_KEY = "LIVEKIT_MODERATION_BAN_STORE"
DEFAULT_FILE = "livekit_moderation.sqlite3"

#: Where a listing resumes: the (identity, owner) of the last ban of the previous page.
After = tuple[str, str]


def unavailable(store: str, exc: BaseException) -> ModerationError:
    """503 ``BAN_STORE_UNAVAILABLE``, logged with the failure's type only (a message may quote a
    URL with its password)."""
    logger.warning("ban store unavailable: %s failed with %s", store, type(exc).__name__)
    return errors.BAN_STORE_UNAVAILABLE()


class BanStore(abc.ABC):
    """Where bans (and leases) are kept. Every method raises 503 ``BAN_STORE_UNAVAILABLE`` when
    the store fails: never "no ban".

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
    def list_bans(
        self, owner: str | None, room_name: str, *, limit: int | None = None, after: After | None = None
    ) -> list[Ban]:
        """The active bans of ``room_name`` (of ``owner``'s room, or of every owner's).

        In (identity, owner) order: those after ``after`` (an (identity, owner) key, e.g. the
        last ban of the previous page), at most ``limit``. A ban made while a listing pages
        through comes in a later page when it sorts after the page being read, else not at all;
        none comes twice.
        """

    @abc.abstractmethod
    def lift(self, owner: str | None, room_name: str, identity: str) -> list[Ban]:
        """Delete the bans of ``identity`` in ``room_name``; returns those that were active."""

    @abc.abstractmethod
    def banned_rooms(self) -> list[tuple[str, str]]:
        """Every (owner, room name) with an active ban, in (room name, owner) order."""

    def any_active(self) -> bool:
        """Whether any ban is active (what every process asks every interval: cheap)."""
        return bool(self.banned_rooms())

    @abc.abstractmethod
    def lease(self, name: str, holder: str, seconds: float) -> str:
        """Take the lease ``name`` for ``holder`` for ``seconds``, or renew it.

        Unless another holder's lease of that name is unexpired: then nothing changes. Returns
        the holder after the call (``holder``: taken or renewed).
        """

    @abc.abstractmethod
    def hand_over(self, name: str, holder: str, new_holder: str, seconds: float) -> bool:
        """Give ``holder``'s unexpired lease ``name`` to ``new_holder`` for ``seconds`` from now;
        ``False`` (nothing changed) when ``holder`` does not hold it."""

    @abc.abstractmethod
    def release(self, name: str, holder: str) -> None:
        """End ``holder``'s lease ``name`` (nothing happens when another holds it)."""

    def close(self) -> None:  # noqa: B027 - nothing to release for most stores
        """Release connections; the store reconnects on its next use."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def ordered(bans: Iterable[Ban]) -> list[Ban]:
    """``bans`` in listing order: by identity, then owner."""
    return sorted(bans, key=lambda ban: (ban.participant_identity, ban.owner))


def page(bans: Iterable[Ban], limit: int | None, after: After | None) -> list[Ban]:
    """One page of ``bans`` (any order): those after ``after``, at most ``limit``, in listing order."""
    found = ordered(bans)
    if after is not None:
        found = [ban for ban in found if (ban.participant_identity, ban.owner) > after]
    return found if limit is None else found[:limit]
