"""Rooms and participants held by the LiveKit stand-in.

The store mirrors what a single-node LiveKit server keeps in its ``LocalStore``
(livekit/livekit ``pkg/service/localstore.go``): rooms by name, and per room the
participants by identity.  Everything here is guarded by one ``threading.Lock``
that is only held for short, non-blocking critical sections, because the store is
touched both by the emulator's event-loop thread and by test threads.

Protos handed out are always copies, so a test can never mutate live state by
accident and a caller never sees a half-updated message.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from livekit.protocol import models

_M = TypeVar("_M", bound=Message)

__all__ = [
    "MAX_NAME_BYTES",
    "EmulatorState",
    "TrackLike",
    "TrackSpec",
    "UnknownRoomError",
    "copy_message",
]

#: LiveKit's default ``limit.max_room_name_length`` and
#: ``limit.max_participant_identity_length`` (pkg/config/config.go).
MAX_NAME_BYTES = 256

_SID_ALPHABET = string.ascii_letters + string.digits

# Lower-case protobuf enum names, as users write them: "audio", "screen_share", ...
_TRACK_TYPES = {name.lower(): number for name, number in models.TrackType.items()}
_TRACK_SOURCES = {name.lower(): number for name, number in models.TrackSource.items()}


class UnknownRoomError(KeyError):
    """Raised when a participant is added to a room that was never added."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else "unknown room"


def new_sid(prefix: str) -> str:
    """A LiveKit-looking SID: prefix plus 12 random characters (like ``utils.NewGuid``)."""
    return prefix + "".join(secrets.choice(_SID_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class TrackSpec:
    """Describes one published track of a participant added with ``add_participant``.

    ``type`` is ``"audio"``, ``"video"`` or ``"data"``; ``source`` is ``"microphone"``,
    ``"camera"``, ``"screen_share"``, ``"screen_share_audio"`` or ``"unknown"``
    (case-insensitive; the ``livekit.protocol.models`` enum ints are accepted too).
    """

    type: str | int
    source: str | int = "unknown"
    name: str = ""
    muted: bool = False

    def to_proto(self) -> models.TrackInfo:
        """Build the ``TrackInfo`` with a fresh ``TR_`` SID."""
        return models.TrackInfo(
            sid=new_sid("TR_"),
            type=models.TrackType.Name(_enum(self.type, _TRACK_TYPES, "track type")),
            source=models.TrackSource.Name(_enum(self.source, _TRACK_SOURCES, "track source")),
            name=self.name,
            muted=self.muted,
        )


#: What ``add_participant(tracks=...)`` accepts per track: a ``TrackSpec``, a
#: ``(type, source)`` / ``(type, source, name)`` / ``(type, source, name, muted)`` tuple,
#: or a dict with those keys.
TrackLike = TrackSpec | Sequence[object] | dict[str, object]

DEFAULT_TRACKS: tuple[TrackSpec, ...] = (
    TrackSpec("audio", "microphone", name="microphone"),
    TrackSpec("video", "camera", name="camera"),
)


def _enum(value: str | int, table: dict[str, int], what: str) -> int:
    if isinstance(value, int):
        if value not in table.values():
            raise ValueError(f"unknown {what}: {value!r}")
        return value
    try:
        return table[value.lower()]
    except KeyError:
        raise ValueError(f"unknown {what}: {value!r} (expected one of {sorted(table)})") from None


def _as_spec(track: TrackLike) -> TrackSpec:
    if isinstance(track, TrackSpec):
        return track
    if isinstance(track, dict):
        unknown = set(track) - _SPEC_FIELDS
        if unknown:
            raise ValueError(f"unknown track field(s) {sorted(unknown)}; expected {sorted(_SPEC_FIELDS)}")
        fields: dict[str, object] = dict(track)
    else:
        items = list(track)
        if not 1 <= len(items) <= len(_SPEC_ORDER):
            raise ValueError(f"a track is 1 to 4 values {_SPEC_ORDER}, got {len(items)}: {items!r}")
        fields = dict(zip(_SPEC_ORDER, items, strict=False))
    if "type" not in fields:
        raise ValueError("a track needs a 'type'")
    return TrackSpec(
        type=_str_or_int(fields["type"], "type"),
        source=_str_or_int(fields.get("source", "unknown"), "source"),
        name=str(fields.get("name", "")),
        muted=bool(fields.get("muted", False)),
    )


_SPEC_ORDER = ("type", "source", "name", "muted")
_SPEC_FIELDS = frozenset(_SPEC_ORDER)


def _str_or_int(value: object, field: str) -> str | int:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    raise ValueError(f"track {field} must be a name or an enum number, got {value!r}")


def _check_name(kind: str, value: str) -> None:
    # A real client cannot join with a longer room name / identity
    # (pkg/service/utils.go ParseClientInfo checks), so such state cannot exist.
    if not value:
        raise ValueError(f"{kind} must not be empty")
    if len(value.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"{kind} exceeds {MAX_NAME_BYTES} bytes: {value[:40]!r}...")


class EmulatorState:
    """Thread-safe room/participant store behind the emulator.

    Methods ending in ``_locked`` are not public: they assume the caller holds
    ``self.lock`` and are used by the request handlers to do one lookup-and-change
    atomically.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # dicts keep insertion order, so listings are deterministic (LiveKit's are
        # map-ordered, i.e. unspecified; callers must not rely on any order).
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}

    # ----------------------------------------------------------------- rooms
    def new_room_locked(
        self,
        name: str,
        metadata: str = "",
        empty_timeout: int = 300,
        departure_timeout: int = 20,
        max_participants: int = 0,
    ) -> models.Room:
        now = time.time()
        room = models.Room(
            sid=new_sid("RM_"),
            name=name,
            metadata=metadata,
            # LiveKit defaults (pkg/config/config.go: EmptyTimeout 5 min, DepartureTimeout 20 s)
            empty_timeout=empty_timeout or 300,
            departure_timeout=departure_timeout or 20,
            max_participants=max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
        )
        self.rooms[name] = room
        self.participants[name] = {}
        return room

    def add_room(self, name: str, metadata: str = "", **kwargs: int) -> models.Room:
        """Create a room (or replace the metadata of an existing one); returns a copy."""
        _check_name("room name", name)
        with self.lock:
            room = self.rooms.get(name)
            if room is None:
                room = self.new_room_locked(name, metadata, **kwargs)
            else:
                room.metadata = metadata
            return copy_message(room)

    def remove_room(self, name: str) -> bool:
        """Delete a room and its participants; False if it did not exist."""
        with self.lock:
            return self.delete_room_locked(name)

    def delete_room_locked(self, name: str) -> bool:
        if self.rooms.pop(name, None) is None:
            return False
        self.participants.pop(name, None)
        return True

    def set_room_metadata(self, name: str, metadata: str) -> models.Room:
        """Replace a room's metadata; raises ``UnknownRoomError`` if absent."""
        with self.lock:
            room = self.rooms.get(name)
            if room is None:
                raise UnknownRoomError(f"room {name!r} does not exist; add_room() it first")
            room.metadata = metadata
            return copy_message(room)

    def rooms_list(self) -> list[models.Room]:
        with self.lock:
            return [copy_message(r) for r in self.rooms.values()]

    def room(self, name: str) -> models.Room | None:
        with self.lock:
            room = self.rooms.get(name)
            return None if room is None else copy_message(room)

    # ---------------------------------------------------------- participants
    def add_participants(
        self,
        room: str,
        identities: Iterable[str],
        *,
        name: str = "",
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
    ) -> list[models.ParticipantInfo]:
        """Add many participants in one critical section (fast seeding)."""
        specs = DEFAULT_TRACKS if tracks is None else tuple(_as_spec(t) for t in tracks)
        ids = list(identities)
        for identity in ids:
            _check_name("participant identity", identity)
        now = time.time()
        built = []
        for identity in ids:
            track_infos = [s.to_proto() for s in specs]
            built.append(
                models.ParticipantInfo(
                    sid=new_sid("PA_"),
                    identity=identity,
                    name=name,
                    state=models.ParticipantInfo.State.ACTIVE,
                    tracks=track_infos,
                    metadata=metadata,
                    joined_at=int(now),
                    joined_at_ms=int(now * 1000),
                    version=1,
                    permission=models.ParticipantPermission(
                        can_subscribe=True, can_publish=True, can_publish_data=True
                    ),
                    is_publisher=bool(track_infos),
                    kind=models.ParticipantInfo.Kind.STANDARD,
                )
            )
        with self.lock:
            room_proto = self.rooms.get(room)
            if room_proto is None:
                raise UnknownRoomError(f"room {room!r} does not exist; add_room() it first")
            members = self.participants[room]
            for p in built:
                old = members.get(p.identity)
                if old is not None:  # same identity rejoining replaces the old session
                    self._count_locked(room_proto, old, -1)
                members[p.identity] = p
                self._count_locked(room_proto, p, +1)
            return [copy_message(p) for p in built]

    @staticmethod
    def _count_locked(room: models.Room, p: models.ParticipantInfo, delta: int) -> None:
        room.num_participants += delta
        if p.is_publisher:
            room.num_publishers += delta

    def remove_participant_locked(self, room: str, identity: str) -> bool:
        members = self.participants.get(room)
        if not members:
            return False
        p = members.pop(identity, None)
        if p is None:
            return False
        self._count_locked(self.rooms[room], p, -1)
        return True

    def remove_participant(self, room: str, identity: str) -> bool:
        """Remove one participant; False if the room or identity is unknown."""
        with self.lock:
            return self.remove_participant_locked(room, identity)

    def participants_of(self, room: str) -> list[models.ParticipantInfo]:
        with self.lock:
            return [copy_message(p) for p in self.participants.get(room, {}).values()]

    def participant_locked(self, room: str, identity: str) -> models.ParticipantInfo | None:
        """The live participant, or None; hold :attr:`lock` while using it."""
        return self.participants.get(room, {}).get(identity)

    def participant(self, room: str, identity: str) -> models.ParticipantInfo | None:
        with self.lock:
            p = self.participant_locked(room, identity)
            return None if p is None else copy_message(p)

    def clear(self) -> None:
        with self.lock:
            self.rooms.clear()
            self.participants.clear()


def copy_message(msg: _M) -> _M:
    """A deep copy of a protobuf message (what the store hands out)."""
    clone = type(msg)()
    clone.CopyFrom(msg)
    return clone
