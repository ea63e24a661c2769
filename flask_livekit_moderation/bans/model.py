"""A ban: who may not be in which owner's room, until when.

A ban is keyed by **(owner, room name, identity)**. The owner is the room's owner as LiveKit
names it (the ``auth_id`` of the room's metadata, see :func:`~..access.room_owner`), ``""``
for a room whose metadata names none. So a ban made in tenant A's room ``standup`` never
applies to tenant B's room ``standup``, and it outlives the LiveKit room itself: the same
owner's room of the same name, closed and created again, is still covered until the ban
expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import errors
from ..errors import ModerationError

Clock = Callable[[], float]


def utc_datetime(timestamp: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, timezone.utc)


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 in UTC with milliseconds, e.g. ``2025-01-31T12:00:00.000Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Ban:
    """One ban: ``participant_identity`` may not be in ``owner``'s room ``room_name`` until ``expires_at``.

    ``owner`` is the room's ``auth_id`` as LiveKit names it, ``""`` for a room with no owner.
    ``expires_at`` and ``banned_at`` are timezone-aware UTC datetimes.
    """

    owner: str
    room_name: str
    participant_identity: str
    expires_at: datetime
    banned_at: datetime
    reason: str | None = None

    @classmethod
    def starting_now(
        cls,
        owner: str,
        room_name: str,
        participant_identity: str,
        duration_seconds: float,
        reason: str | None = None,
        clock: Clock = time.time,
    ) -> Ban:
        """A ban from now for ``duration_seconds``."""
        now = clock()
        return cls(
            owner,
            room_name,
            participant_identity,
            utc_datetime(now + duration_seconds),
            utc_datetime(now),
            reason,
        )

    @property
    def room_owner(self) -> str | None:
        """The owner's auth id, ``None`` for a room with no owner."""
        return self.owner or None

    @property
    def revoke_token_ts(self) -> int:
        """The ``revoke_token_ts`` of every RemoveParticipant done for this ban (Unix seconds).

        LiveKit (Cloud) refuses the identity's tokens for that room whose ``nbf`` is *before*
        it. It is the ban's start, rounded up past the second it falls in (``nbf`` is whole
        seconds, so a token signed in that second is refused too): every token that existed
        when the ban was made is dead, and nothing else is touched. Not the ban's end: LiveKit
        revokes by room *name* and identity, with no owner, so an end a year away would lock
        the identity out of another tenant's later room of the same name, and lifting the ban
        could not undo it. Tokens signed during the ban are refused by
        :meth:`~flask_livekit_moderation.LiveKitModeration.participant_token`, and anyone who
        joins anyway is removed by the webhook and the reconciler.
        """
        return int(self.banned_at.timestamp()) + 1

    def active(self, now: float | None = None) -> bool:
        """Whether the ban still holds at ``now`` (Unix seconds; default: the current time)."""
        return self.expires_at.timestamp() > (time.time() if now is None else now)

    def to_json(self) -> dict[str, Any]:
        """The ban as the routes answer it."""
        return {
            "room_name": self.room_name,
            "participant_identity": self.participant_identity,
            "room_owner": self.room_owner,
            "expires_at": rfc3339(self.expires_at),
            "banned_at": rfc3339(self.banned_at),
            "reason": self.reason,
        }


class ParticipantBanned(ModerationError):
    """Raised by :meth:`~flask_livekit_moderation.LiveKitModeration.participant_token` for a banned identity.

    ``ban`` is the ban in force. Uncaught in a host view it is answered like every
    extension error: 403 ``PARTICIPANT_BANNED`` (the reason and expiry are not shown: render
    your own answer from ``ban`` if the participant should see them).
    """

    def __init__(self, ban: Ban) -> None:
        code = errors.PARTICIPANT_BANNED
        super().__init__(code.status, code.code, code.message)
        self.ban = ban
