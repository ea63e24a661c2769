"""The lobby of a locked room: who knocked, who is admitted, who is denied.

A lobby is keyed like a ban, by **(owner, room name)**: the owner is the room's owner as
LiveKit names it (the ``auth_id`` of its metadata, ``""`` for none). So tenant A's lock of
``standup`` never touches tenant B's room ``standup``, and it outlives the LiveKit room: the
same owner's room, closed and opened again, is still locked until a moderator unlocks it.

While a room is locked, each identity has at most one entry: ``waiting`` (knocked),
``admitted`` or ``denied``. Unlocking deletes the lobby with every entry: the next knock is
admitted at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .. import errors
from ..bans.model import rfc3339, utc_datetime
from ..errors import ModerationError

Status = Literal["admitted", "waiting", "denied"]
ADMITTED: Status = "admitted"
WAITING: Status = "waiting"
DENIED: Status = "denied"
#: Every status an entry can have.
STATUSES: tuple[Status, ...] = (ADMITTED, WAITING, DENIED)

#: Where a listing resumes: the (knocked_at, identity) of the last entry of the previous page.
After = tuple[float, str]


@dataclass(frozen=True)
class Admission:
    """Whether ``participant_identity`` may join ``owner``'s room ``room_name``, as a knock answers it.

    ``status``: ``"admitted"`` (the room is not locked, or a moderator admitted them, or they
    were in the room when it was locked), ``"waiting"`` (knocked; a moderator has not decided)
    or ``"denied"``; read without knocking
    (:meth:`~flask_livekit_moderation.LiveKitModeration.admission`), an identity that never
    knocked at a locked room is ``"waiting"`` with no ``knocked_at``. ``locked_at``: when the
    room was locked (``None``: it is not). ``knocked_at``: their first knock since the lock
    (``None``: they never knocked, e.g. admitted in advance or present at the lock).
    """

    owner: str
    room_name: str
    participant_identity: str
    status: Status
    locked_at: datetime | None = None
    knocked_at: datetime | None = None
    name: str | None = None

    @property
    def admitted(self) -> bool:
        """Whether the identity may be given a token for the room."""
        return self.status == ADMITTED

    @property
    def locked(self) -> bool:
        """Whether the room is locked."""
        return self.locked_at is not None

    @property
    def room_owner(self) -> str | None:
        """The owner's auth id, ``None`` for a room with no owner."""
        return self.owner or None

    @property
    def revoke_token_ts(self) -> int:
        """The ``revoke_token_ts`` of a RemoveParticipant done because the room is locked.

        The lock's start, rounded up past its second (as
        :attr:`~flask_livekit_moderation.Ban.revoke_token_ts` does for a ban): every token that
        existed when the room was locked is dead on LiveKit Cloud, and a token
        :meth:`~flask_livekit_moderation.LiveKitModeration.participant_token` mints once the
        identity is admitted is not touched.
        """
        assert self.locked_at is not None, "only a locked room's admission revokes tokens"
        return int(self.locked_at.timestamp()) + 1


@dataclass(frozen=True)
class Waiting:
    """One identity waiting in a locked room's lobby."""

    participant_identity: str
    name: str | None
    knocked_at: float

    def to_json(self) -> dict[str, Any]:
        """As ``GET /livekit/lobby`` lists it."""
        return {
            "participant_identity": self.participant_identity,
            "name": self.name,
            "knocked_at": rfc3339(utc_datetime(self.knocked_at)),
        }


@dataclass(frozen=True)
class Entry:
    """What the store keeps of one identity in a locked room: its status and first knock."""

    status: Status
    knocked_at: float | None = None
    name: str | None = None


def admission(
    owner: str, room_name: str, identity: str, locked_at: float | None, entry: Entry | None
) -> Admission:
    """The admission a store's two facts make: the room's lock (``None``: unlocked) and the entry."""
    if locked_at is None:
        return Admission(owner, room_name, identity, ADMITTED)
    if entry is None:
        return Admission(owner, room_name, identity, WAITING, utc_datetime(locked_at))
    return Admission(
        owner,
        room_name,
        identity,
        entry.status,
        utc_datetime(locked_at),
        None if entry.knocked_at is None else utc_datetime(entry.knocked_at),
        entry.name,
    )


class ParticipantNotAdmitted(ModerationError):
    """Raised by :meth:`~flask_livekit_moderation.LiveKitModeration.participant_token` for a
    locked room and an identity a moderator has not admitted (waiting, denied, or never
    knocked).

    ``admission`` says which. Uncaught in a host view it is answered like every extension
    error: 403 ``PARTICIPANT_NOT_ADMITTED``.
    """

    def __init__(self, admission: Admission) -> None:
        code = errors.PARTICIPANT_NOT_ADMITTED
        super().__init__(code.status, code.code, code.message)
        self.admission = admission
