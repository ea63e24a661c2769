"""One entry of the audit log: who did what to whom, when, and what came of it."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: An entry's id: 16 hex digits of its time in microseconds since the epoch, then 16 random
#: ones. Ids sort as the entries were made, so "newest first" and a cursor are one comparison,
#: and two entries made in the same microsecond (two workers) still have an order of their own.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_id(at: float) -> str:
    """A fresh id for an entry made at ``at`` (seconds since the epoch)."""
    return f"{int(at * 1_000_000):016x}{secrets.token_hex(8)}"


def id_bound(at: float) -> str:
    """The least id of an entry made at ``at`` or later (ids of earlier entries sort before it)."""
    return f"{max(0, int(at * 1_000_000)):016x}"


def id_time(entry_id: str) -> float:
    """When the entry of ``entry_id`` was made, in seconds since the epoch."""
    return int(entry_id[:16], 16) / 1_000_000


def rfc3339(at: float) -> str:
    """``at`` as RFC 3339 in UTC with microseconds, e.g. ``2026-12-07T19:20:00.123456Z``."""
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Entry:
    """One moderation write, refusal or failure (or one ban enforcement), as the log keeps it."""

    id: str
    #: The auth id whose log it is in: the caller's (``""``: a caller for all rooms), or for an
    #: enforcement the room owner's (``""``: a room with no owner).
    owner: str
    #: Who acted: the credential's actor, else its auth id; ``None`` for an enforcement.
    actor: str | None
    #: The route's action (``remove``, ``mute``, ``ban``, ...) or ``enforce_ban``.
    action: str
    room_name: str | None
    participant_identity: str | None
    #: The rest of the input and what the action reports (track sid, duration, counts, ...).
    details: dict[str, Any] = field(default_factory=dict)
    #: ``removed``, ``muted``, ... or the error code answered.
    outcome: str = ""
    #: The HTTP status answered (``None``: no request, e.g. the reconciler).
    status: int | None = None

    @property
    def at(self) -> float:
        """When it was made, in seconds since the epoch."""
        return id_time(self.id)

    def details_json(self) -> str:
        """``details`` as the stores keep it (ASCII JSON: any name survives any store)."""
        return json.dumps(self.details, separators=(",", ":"), sort_keys=True, default=str)

    def to_json(self) -> dict[str, Any]:
        """The entry as ``GET /livekit/audit`` answers it."""
        return {
            "id": self.id,
            "at": rfc3339(self.at),
            "owner": self.owner or None,
            "actor": self.actor,
            "action": self.action,
            "room_name": self.room_name,
            "participant_identity": self.participant_identity,
            "details": self.details,
            "outcome": self.outcome,
            "status": self.status,
        }
