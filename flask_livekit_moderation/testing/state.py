"""Rooms and participants held by the LiveKit stand-in, and how they change.

The store mirrors what a single-node LiveKit server keeps (livekit/livekit
``pkg/service/localstore.go`` for the store, ``pkg/rtc/room.go`` and
``pkg/rtc/participant.go`` for the life of rooms, participants and tracks):

- rooms close by themselves (``room.go`` ``CloseIfEmpty``): ``departure_timeout``
  after the last participant left, ``empty_timeout`` after creation when nobody
  ever joined (defaults 20 s / 300 s, ``pkg/config/config.go``), checked on a 1 s
  ticker (``pkg/service/server.go`` ``backgroundWorker``) with whole-second Unix times,
  so a room closes within +-1 s of its timeout;
- the room's participant counts are a cached copy refreshed at most every 5 s
  (``room.go`` ``roomUpdateInterval``, livekit/protocol ``utils/protoproxy.go``), and
  ListRooms and webhooks show that copy;
- a joining participant is JOINING, then JOINED once its join response is sent
  (``participant_signal.go``), then ACTIVE once its transport connects
  (``participant.go`` ``onPrimaryTransportInitialConnected``); ``participant_joined``
  is sent only then (``pkg/telemetry/events.go`` ``ParticipantActive``);
- a permission update REPLACES the whole permission (livekit/protocol
  ``auth/grants.go`` ``UpdateFromPermission``) and unpublishes the tracks whose
  source is no longer allowed (``participant.go`` ``SetPermission``);
- every change that LiveKit reports by webhook is handed to :attr:`EmulatorState.on_event`
  as a ``WebhookEvent`` (``pkg/telemetry/events.go`` decides what each carries).

Everything is guarded by one ``threading.Lock`` held only for short, non-blocking
sections (the event callback only queues).  Protos handed out are copies.
"""

from __future__ import annotations

import heapq
import math
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

__all__ = [
    "DEFAULT_DEPARTURE_TIMEOUT",
    "DEFAULT_EMPTY_TIMEOUT",
    "DEFAULT_JOIN_DELAY",
    "ROOM_TICK",
    "ROOM_UPDATE_INTERVAL",
    "MAX_NAME_BYTES",
    "REVOKE_LEEWAY",
    "EmulatorState",
    "JoinRefusedError",
    "RoomFullError",
    "PublishNotAllowedError",
    "TrackLike",
    "TrackSpec",
    "UnknownParticipantError",
    "UnknownRoomError",
    "copy_message",
    "default_permission",
]

_M = TypeVar("_M", bound=Message)

#: LiveKit's default ``limit.max_room_name_length`` and
#: ``limit.max_participant_identity_length`` (pkg/config/config.go).
MAX_NAME_BYTES = 256
#: pkg/config/config.go defaults: ``room.empty_timeout`` and ``room.departure_timeout``.
DEFAULT_EMPTY_TIMEOUT = 300.0
DEFAULT_DEPARTURE_TIMEOUT = 20.0
#: pkg/service/server.go ``backgroundWorker``: ``CloseIdleRooms`` runs every second.
ROOM_TICK = 1.0
#: pkg/rtc/room.go ``roomUpdateInterval``: "frequency to update room participant counts".
ROOM_UPDATE_INTERVAL = 5.0
#: Seconds from a join until the participant is ACTIVE (its transport connected), by default;
#: it is JOINING for the first :data:`JOINED_SHARE` of it, then JOINED.
DEFAULT_JOIN_DELAY = 0.1
JOINED_SHARE = 0.2
#: livekit/protocol ``livekit_room.proto`` ``revoke_token_ts``: "defaults to
#: now(server)+leeway(1min) if left empty" (LiveKit Cloud).
REVOKE_LEEWAY = 60

_SID_ALPHABET = string.ascii_letters + string.digits

# Lower-case protobuf enum names, as users write them: "audio", "screen_share", ...
_TRACK_TYPES = {name.lower(): number for name, number in models.TrackType.items()}
_TRACK_SOURCES = {name.lower(): number for name, number in models.TrackSource.items()}

#: Fields of ParticipantPermission that VideoGrant.ToPermission fills (auth/grants.go).
_PERMISSION_FIELDS = (
    "can_subscribe",
    "can_publish",
    "can_publish_data",
    "can_publish_sources",
    "hidden",
    "recorder",
    "can_update_metadata",
    "agent",
    "can_subscribe_metrics",
    "can_manage_agent_session",
)


class UnknownRoomError(KeyError):
    """Raised when a participant is added to a room that was never added."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else "unknown room"


class UnknownParticipantError(KeyError):
    """Raised when a helper names a participant that is not in the room."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown participant"


class PublishNotAllowedError(PermissionError):
    """The participant's permission forbids publishing a track of that source."""


class JoinRefusedError(PermissionError):
    """The server refuses the join: its token is invalid, or (cloud mode) was revoked."""


class RoomFullError(JoinRefusedError):
    """The room already holds its ``max_participants`` (livekit/livekit ``pkg/rtc/room.go``
    Join: ``ErrMaxParticipantsExceeded``, "room has exceeded its max participants")."""


def new_sid(prefix: str) -> str:
    """A LiveKit-looking SID: prefix plus 12 random characters (like ``utils.NewGuid``)."""
    return prefix + "".join(secrets.choice(_SID_ALPHABET) for _ in range(12))


def default_permission() -> models.ParticipantPermission:
    """What a participant joining with a plain ``roomJoin`` token gets: VideoGrant's
    getters default can_publish and can_subscribe to true, can_publish_data to
    can_publish, no source list (= every source) and the rest false (auth/grants.go)."""
    return models.ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True)


@dataclass(frozen=True)
class TrackSpec:
    """Describes one published track of a participant added with ``add_participant``.

    ``type`` is ``"audio"``, ``"video"`` or ``"data"``; ``source`` is ``"microphone"``,
    ``"camera"``, ``"screen_share"``, ``"screen_share_audio"`` or ``"unknown"``
    (case-insensitive; the ``livekit.protocol.models`` enum ints are accepted too).
    ``sid`` fixes the track SID (default: a fresh ``TR_...``).
    """

    type: str | int
    source: str | int = "unknown"
    name: str = ""
    muted: bool = False
    sid: str | None = None

    def to_proto(self) -> models.TrackInfo:
        """Build the ``TrackInfo`` (a fresh ``TR_`` SID unless :attr:`sid` is set)."""
        if self.sid is not None and not self.sid:
            raise ValueError("a fixed track sid must not be empty")
        return models.TrackInfo(
            sid=self.sid or new_sid("TR_"),
            type=models.TrackType.Name(_enum(self.type, _TRACK_TYPES, "track type")),
            source=models.TrackSource.Name(_enum(self.source, _TRACK_SOURCES, "track source")),
            name=self.name,
            muted=self.muted,
        )


#: What ``add_participant(tracks=...)`` accepts per track: a ``TrackSpec``, a
#: ``(type, source[, name[, muted[, sid]]])`` tuple, or a dict with those keys.
TrackLike = TrackSpec | Sequence[object] | dict[str, object]

DEFAULT_TRACKS: tuple[TrackSpec, ...] = (
    TrackSpec("audio", "microphone", name="microphone"),
    TrackSpec("video", "camera", name="camera"),
)

_SPEC_ORDER = ("type", "source", "name", "muted", "sid")
_SPEC_FIELDS = frozenset(_SPEC_ORDER)


def _enum(value: str | int, table: dict[str, int], what: str) -> int:
    if isinstance(value, int):
        if value not in table.values():
            raise ValueError(f"unknown {what}: {value!r}")
        return value
    try:
        return table[value.lower()]
    except KeyError:
        raise ValueError(f"unknown {what}: {value!r} (expected one of {sorted(table)})") from None


def _str_or_int(value: object, name: str) -> str | int:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    raise ValueError(f"track {name} must be a name or an enum number, got {value!r}")


def as_spec(track: TrackLike) -> TrackSpec:
    """A :class:`TrackSpec` from any :data:`TrackLike`; ValueError names what is wrong."""
    if isinstance(track, TrackSpec):
        return track
    if isinstance(track, dict):
        unknown = set(track) - _SPEC_FIELDS
        if unknown:
            raise ValueError(f"unknown track field(s) {sorted(unknown)}; expected {list(_SPEC_ORDER)}")
        fields: dict[str, object] = dict(track)
    elif isinstance(track, (str, bytes)):
        raise ValueError(f"a track is a list or an object, got {track!r}")
    else:
        items = list(track)
        if not 1 <= len(items) <= len(_SPEC_ORDER):
            raise ValueError(f"a track is 1 to 5 values {list(_SPEC_ORDER)}, got {len(items)}: {items!r}")
        fields = dict(zip(_SPEC_ORDER, items, strict=False))
    if "type" not in fields:
        raise ValueError("a track needs a 'type'")
    sid = fields.get("sid")
    if sid is not None and not isinstance(sid, str):
        raise ValueError(f"track sid must be a string, got {sid!r}")
    return TrackSpec(
        type=_str_or_int(fields["type"], "type"),
        source=_str_or_int(fields.get("source", "unknown"), "source"),
        name=str(fields.get("name", "")),
        muted=bool(fields.get("muted", False)),
        sid=sid,
    )


def _check_name(kind: str, value: str) -> None:
    # A real client cannot join with a longer room name / identity
    # (pkg/service/utils.go ParseClientInfo checks), so such state cannot exist.
    if not value:
        raise ValueError(f"{kind} must not be empty")
    if len(value.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"{kind} exceeds {MAX_NAME_BYTES} bytes: {value[:40]!r}...")


def can_publish_source(permission: models.ParticipantPermission, source: int) -> bool:
    """VideoGrant.GetCanPublishSource: can_publish, and the source listed (empty = all)."""
    if not permission.can_publish:
        return False
    return not permission.can_publish_sources or source in permission.can_publish_sources


def _source_names(permission: models.ParticipantPermission) -> list[str]:
    return [models.TrackSource.Name(s) for s in permission.can_publish_sources]


def replaced_permission(requested: models.ParticipantPermission) -> models.ParticipantPermission:
    """The permission a participant ends up with after UpdateParticipant(permission=requested):
    UpdateFromPermission copies every field into the grant, ToPermission reads them back."""
    out = models.ParticipantPermission()
    for name in _PERMISSION_FIELDS:
        if name == "can_publish_sources":
            out.can_publish_sources.extend(requested.can_publish_sources)
        else:
            setattr(out, name, getattr(requested, name))
    return out


@dataclass
class _Life:
    """What CloseIfEmpty and the room's cached proto need (monotonic clock, seconds)."""

    empty_timeout: float
    departure_timeout: float
    created: float
    joined: bool = False
    left_at: float | None = None
    deadline: float | None = None
    #: The counts ListRooms and webhooks show: (num_participants, num_publishers), as the
    #: ProtoProxy last computed them, and when (``refreshedAt``).
    shown: tuple[int, int] = (0, 0)
    refreshed_at: float = 0.0
    #: When the counts changed since (``MarkDirty``), or None.
    dirty_since: float | None = None


EventSink = Callable[[WebhookEvent], None]


class EmulatorState:
    """Thread-safe room/participant store behind the emulator.

    Methods ending in ``_locked`` are not public: they assume the caller holds
    ``self.lock`` and are used by the request handlers to do one lookup-and-change
    atomically.

    :param empty_timeout: default seconds before a room nobody joined closes.
    :param departure_timeout: default seconds a room stays after its last participant left.
    :param time_scale: factor on LiveKit's own periodic timers: the 1 s room ticker (its
        "whole seconds" become ticks of ``time_scale`` seconds) and the 5 s refresh of the
        room's counts.  1.0 is LiveKit's timing.
    :param join_delay: seconds from :meth:`join` until the participant is ACTIVE.
    """

    def __init__(
        self,
        empty_timeout: float = DEFAULT_EMPTY_TIMEOUT,
        departure_timeout: float = DEFAULT_DEPARTURE_TIMEOUT,
        cloud: bool = False,
        time_scale: float = 1.0,
        join_delay: float = DEFAULT_JOIN_DELAY,
    ) -> None:
        if empty_timeout <= 0 or departure_timeout <= 0:
            raise ValueError("room timeouts must be > 0")
        if not time_scale > 0:
            raise ValueError("time_scale must be > 0")
        if join_delay < 0:
            raise ValueError("join_delay must be >= 0")
        self.time_scale = float(time_scale)
        self.join_delay = float(join_delay)
        # Ticks of the room closer are counted from here (the server's ticker starts with it).
        self._tick_origin = time.monotonic()
        self.lock = threading.Lock()
        self.empty_timeout = float(empty_timeout)
        self.departure_timeout = float(departure_timeout)
        #: Called (under the lock, so in order) with each event a webhook would report.
        self.on_event: EventSink | None = None
        #: Whether anyone wants events now; building them costs on the hot paths.
        self.events_wanted: Callable[[], bool] = lambda: True
        # dicts keep insertion order; LiveKit's lists are map-ordered (the service
        # can shuffle them), so callers must not rely on any order.
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}
        #: (room, identity) of the participants whose publisher transport is up: they have
        #: published in this session (``TransportManager.IsPublisherEstablished``).
        self._publisher_up: set[tuple[str, str]] = set()
        self._life: dict[str, _Life] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._wake = threading.Condition(self.lock)
        self._closer: threading.Thread | None = None
        self._closed = False
        #: LiveKit Cloud mode: RemoveParticipant's ``revoke_token_ts`` is honoured.
        self.cloud = bool(cloud)
        #: (room, identity) -> Unix seconds: tokens whose ``nbf`` is before it are refused
        #: at join (cloud mode only; self-hosted LiveKit ignores the field, PR #4344 open).
        self.revoked: dict[tuple[str, str], int] = {}

    # --------------------------------------------------------------- events
    def _emit_locked(
        self,
        event: str,
        room: models.Room,
        participant: models.ParticipantInfo | None = None,
        track: models.TrackInfo | None = None,
    ) -> None:
        sink = self.on_event
        if sink is None or not self.events_wanted():
            return
        ev = WebhookEvent(event=event)
        ev.room.CopyFrom(room)
        if participant is not None:
            ev.participant.CopyFrom(participant)
        if track is not None:
            ev.track.CopyFrom(track)
        sink(ev)

    @staticmethod
    def _short_room(room: models.Room) -> models.Room:
        # room.go eventRoom(): track events carry only sid and name by default.
        return models.Room(sid=room.sid, name=room.name)

    @staticmethod
    def _short_participant(p: models.ParticipantInfo) -> models.ParticipantInfo:
        # telemetry TrackPublished/TrackUnpublished: only sid and identity.
        return models.ParticipantInfo(sid=p.sid, identity=p.identity)

    # ----------------------------------------------------------------- rooms
    def new_room_locked(
        self,
        name: str,
        metadata: str = "",
        empty_timeout: float = 0,
        departure_timeout: float = 0,
        max_participants: int = 0,
    ) -> models.Room:
        """Create a room (0 timeouts = the stand-in's defaults) and send ``room_started``."""
        now = time.time()
        empty = float(empty_timeout) or self.empty_timeout
        departure = float(departure_timeout) or self.departure_timeout
        room = models.Room(
            sid=new_sid("RM_"),
            name=name,
            metadata=metadata,
            # The proto carries whole seconds; a fractional stand-in timeout rounds up there.
            empty_timeout=math.ceil(empty),
            departure_timeout=math.ceil(departure),
            max_participants=max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
        )
        self.rooms[name] = room
        self.participants[name] = {}
        created = time.monotonic()
        self._life[name] = _Life(empty, departure, created, refreshed_at=created)
        self._schedule_locked(name)
        self._emit_locked("room_started", room)
        return room

    def add_room(
        self,
        name: str,
        metadata: str | None = None,
        *,
        empty_timeout: float | None = None,
        departure_timeout: float | None = None,
        max_participants: int | None = None,
    ) -> tuple[models.Room, bool]:
        """Create a room, or change only the given fields of an existing one.

        Returns a copy of the room and whether it was created.
        """
        _check_name("room name", name)
        for what, value in (("empty_timeout", empty_timeout), ("departure_timeout", departure_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{what} must be > 0")
        with self.lock:
            room = self.rooms.get(name)
            if room is None:
                room = self.new_room_locked(
                    name, metadata or "", empty_timeout or 0, departure_timeout or 0, max_participants or 0
                )
                return copy_message(room), True
            life = self._life[name]
            if metadata is not None and metadata != room.metadata:
                room.metadata = metadata
                self.counts_changed_locked(name, immediate=True)
            if max_participants is not None:
                room.max_participants = max_participants
            if empty_timeout is not None:
                life.empty_timeout = float(empty_timeout)
                room.empty_timeout = math.ceil(empty_timeout)
            if departure_timeout is not None:
                life.departure_timeout = float(departure_timeout)
                room.departure_timeout = math.ceil(departure_timeout)
            self._schedule_locked(name)
            return copy_message(room), False

    def remove_room(self, name: str) -> bool:
        """Close a room as DeleteRoom does; False if it did not exist."""
        with self.lock:
            return self.delete_room_locked(name)

    def delete_room_locked(self, name: str) -> bool:
        """Room.Close: every participant leaves, then ``room_finished``."""
        room = self.rooms.get(name)
        if room is None:
            return False
        for identity in list(self.participants.get(name, {})):
            self._leave_locked(name, identity, models.DisconnectReason.ROOM_DELETED, schedule=False)
        room = self.shown_room_locked(name)  # roommanager.go: RoomEnded(room.ToProto())
        del self.rooms[name]
        self.participants.pop(name, None)
        life = self._life.pop(name, None)
        if life is not None:
            life.deadline = None
        self._emit_locked("room_finished", room)
        return True

    def set_room_metadata(self, name: str, metadata: str) -> models.Room:
        """Replace a room's metadata; raises ``UnknownRoomError`` if absent."""
        with self.lock:
            room = self.rooms.get(name)
            if room is None:
                raise UnknownRoomError(f"room {name!r} does not exist; add_room() it first")
            if metadata != room.metadata:
                room.metadata = metadata
                self.counts_changed_locked(name, immediate=True)
            return copy_message(room)

    def rooms_list(self) -> list[models.Room]:
        with self.lock:
            return [copy_message(r) for r in self.rooms.values()]

    def room(self, name: str) -> models.Room | None:
        with self.lock:
            room = self.rooms.get(name)
            return None if room is None else copy_message(room)

    # ------------------------------------------------------- cached counts
    @property
    def refresh_interval(self) -> float:
        """Seconds between two refreshes of a room's counts (LiveKit: 5 s, times ``time_scale``)."""
        return ROOM_UPDATE_INTERVAL * self.time_scale

    def _refresh_counts_locked(self, room: models.Room, life: _Life, now: float) -> None:
        """Run the ProtoProxy's ticker up to ``now`` (livekit/protocol ``utils/protoproxy.go``
        ``worker``): it ticks every interval from the room's creation and recomputes the
        proto when it is dirty and the last refresh is an interval old.  The live counts did
        not change since it became dirty, or :meth:`counts_changed_locked` would have run
        this first."""
        if life.dirty_since is None:
            return
        interval = self.refresh_interval
        earliest = max(life.dirty_since, life.refreshed_at + interval)
        at = life.created + max(1, math.ceil((earliest - life.created) / interval - 1e-9)) * interval
        if at > now:
            return
        life.dirty_since = None
        counts = (room.num_participants, room.num_publishers)
        if counts != life.shown:  # proto.Equal: no change, no refresh time
            life.shown, life.refreshed_at = counts, at

    def counts_changed_locked(
        self, name: str, participants: int = 0, publishers: int = 0, immediate: bool = False
    ) -> None:
        """Change a room's live counts and mark its cached proto dirty (``MarkDirty``): it is
        recomputed at once when ``immediate`` (a metadata change, room.go ``SetMetadata``)
        or when the last refresh is older than the interval, else on a later tick."""
        room, life, now = self.rooms[name], self._life[name], time.monotonic()
        self._refresh_counts_locked(room, life, now)
        room.num_participants += participants
        room.num_publishers += publishers
        if immediate or now - life.refreshed_at > self.refresh_interval:
            life.dirty_since = None
            counts = (room.num_participants, room.num_publishers)
            if immediate or counts != life.shown:
                life.shown, life.refreshed_at = counts, now
        elif life.dirty_since is None:
            life.dirty_since = now

    def shown_room_locked(self, name: str) -> models.Room:
        """A copy of the room as ListRooms and webhooks show it (``Room.ToProto``): its
        counts are the cached ones, up to one refresh interval (or two) late."""
        room, life = self.rooms[name], self._life[name]
        self._refresh_counts_locked(room, life, time.monotonic())
        shown = copy_message(room)
        shown.num_participants, shown.num_publishers = life.shown
        return shown

    # ------------------------------------------------------- closing rooms
    def _schedule_locked(self, name: str) -> None:
        """Arm (or disarm) the room's CloseIfEmpty deadline."""
        life = self._life.get(name)
        if life is None:
            return
        if self.participants.get(name):
            life.deadline = None
            return
        if life.joined and life.left_at is not None:
            deadline = self._closing_tick(life.left_at, life.departure_timeout)
        else:
            deadline = self._closing_tick(life.created, life.empty_timeout)
        if life.deadline == deadline:
            return
        life.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, name))
        if self._closer is None and not self._closed:
            self._closer = threading.Thread(
                target=self._close_idle_rooms, name="LiveKitEmulator:rooms", daemon=True
            )
            self._closer.start()
        self._wake.notify()

    @property
    def tick(self) -> float:
        """Seconds between two runs of the room closer (LiveKit: 1 s, times ``time_scale``)."""
        return ROOM_TICK * self.time_scale

    def _closing_tick(self, since: float, timeout: float) -> float:
        """When the ticker closes a room empty since ``since`` (monotonic seconds).

        room.go CloseIfEmpty on each tick: ``time.Now().Unix() - LastLeftAt() >= timeout``
        (or CreationTime and ``empty_timeout``), whole seconds on both sides and a timeout
        in whole seconds (a uint32 in the proto): the first tick at or after the whole second
        ``floor(since) + timeout``, so between ``timeout - 1`` and ``timeout + 1`` s after
        ``since``.  Seconds are ticks of :attr:`tick` when time is scaled.
        """
        unit = self.tick
        whole = math.ceil(timeout / unit - 1e-9)
        due = (math.floor(since / unit) + whole) * unit
        ticks = max(1, math.ceil((due - self._tick_origin) / unit - 1e-9))
        return self._tick_origin + ticks * unit

    def _close_idle_rooms(self) -> None:
        # Sleeping until the tick that closes the next room gives the same closing times as
        # RoomManager.CloseIdleRooms running every tick, without waking up for nothing.
        with self.lock:
            while not self._closed and self._deadlines:
                deadline, name = self._deadlines[0]
                now = time.monotonic()
                if now < deadline:
                    self._wake.wait(deadline - now)
                    continue
                heapq.heappop(self._deadlines)
                life = self._life.get(name)
                if life is not None and life.deadline == deadline and not self.participants.get(name):
                    self.delete_room_locked(name)
            self._closer = None

    def close(self) -> None:
        """Stop closing rooms by timeout (the server stopped)."""
        with self.lock:
            self._closed = True
            self._wake.notify()

    def reopen(self) -> None:
        """Close rooms by timeout again after :meth:`close`."""
        with self.lock:
            self._closed = False
            for name in list(self._life):
                self._life[name].deadline = None
                self._schedule_locked(name)

    # ---------------------------------------------------------- participants
    def add_participants(
        self,
        room: str,
        identities: Iterable[str],
        *,
        name: str = "",
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
        permission: models.ParticipantPermission | None = None,
        token_nbf: float | None = None,
        join_delay: float = 0.0,
        wait: bool = True,
    ) -> list[models.ParticipantInfo]:
        """Join participants in one critical section.

        ``join_delay`` 0 (seeding): they are ACTIVE at once, each sending
        ``participant_joined`` and then ``track_published`` per track.  Otherwise each is
        JOINING (listed, counted, no tracks, no event), JOINED after a fifth of
        ``join_delay``, and ACTIVE after ``join_delay``: then ``participant_joined``, then
        its tracks are published.  ``wait``: return once that happened (the ACTIVE
        participants), else at once (JOINING) while a thread finishes the joins.  A
        participant removed meanwhile never becomes ACTIVE.

        ``token_nbf``: the ``nbf`` of the join token (default: now, a freshly minted one).
        In cloud mode a join whose ``nbf`` is before the identity's revocation in that room
        raises :class:`JoinRefusedError` (no participant joins, no event)."""
        specs = DEFAULT_TRACKS if tracks is None else tuple(as_spec(t) for t in tracks)
        perm = default_permission() if permission is None else replaced_permission(permission)
        ids = list(identities)
        for identity in ids:
            _check_name("participant identity", identity)
        for spec in specs:
            source = _enum(spec.source, _TRACK_SOURCES, "track source")
            if not can_publish_source(perm, source):
                raise PublishNotAllowedError(
                    f"permission forbids publishing source {models.TrackSource.Name(source)}"
                )
        if join_delay < 0:
            raise ValueError("join_delay must be >= 0")
        now = time.time()
        built: list[tuple[models.ParticipantInfo, list[models.TrackInfo]]] = []
        for identity in ids:
            track_infos = [s.to_proto() for s in specs]
            sids = [t.sid for t in track_infos]
            if len(set(sids)) != len(sids):
                raise ValueError(f"duplicate track sid in {sids}")
            info = models.ParticipantInfo(
                sid=new_sid("PA_"),
                identity=identity,
                name=name,
                state=models.ParticipantInfo.State.JOINING,
                metadata=metadata,
                joined_at=int(now),
                joined_at_ms=int(now * 1000),
                version=1,
                permission=perm,
                kind=models.ParticipantInfo.Kind.STANDARD,
            )
            built.append((info, track_infos))
        with self.lock:
            room_proto = self.rooms.get(room)
            if room_proto is None:
                raise UnknownRoomError(f"room {room!r} does not exist; add_room() it first")
            if self.cloud:
                nbf = now if token_nbf is None else token_nbf
                for identity in ids:
                    revoked = self.revoked.get((room, identity))
                    if revoked is not None and nbf < revoked:
                        raise JoinRefusedError(
                            f"token of {identity!r} for room {room!r} was revoked: nbf {int(nbf)}"
                            f" is before revoke_token_ts {revoked}"
                        )
            members = self.participants[room]
            if room_proto.max_participants:
                present = set(members)
                for identity in ids:
                    if identity in present:  # the same identity replaces its old session
                        continue
                    if len(present) >= room_proto.max_participants:
                        raise RoomFullError(
                            f"room has exceeded its max participants ({room_proto.max_participants}):"
                            f" {identity!r} cannot join {room!r}"
                        )
                    present.add(identity)
            life = self._life[room]
            for p, track_infos in built:
                if p.identity in members:  # same identity rejoining: the old session is closed
                    self._leave_locked(
                        room, p.identity, models.DisconnectReason.DUPLICATE_IDENTITY, schedule=False
                    )
                # room.go Join: the participant is in the room (and its counts) while JOINING.
                members[p.identity] = p
                self.counts_changed_locked(room, participants=+1)
                life.joined = True
                if not join_delay:
                    self._activate_locked(room, p, track_infos)
            self._schedule_locked(room)
            answer = [copy_message(p) for p, _ in built]
        if not join_delay:
            return answer
        if not wait:
            threading.Thread(
                target=self._connect, args=(room, built, join_delay), name="LiveKitEmulator:join", daemon=True
            ).start()
            return answer
        self._connect(room, built, join_delay)
        with self.lock:
            return [copy_message(self._same_session_locked(room, p) or p) for p, _ in built]

    def _same_session_locked(self, room: str, p: models.ParticipantInfo) -> models.ParticipantInfo | None:
        """``p`` if that very session is still in the room (not left, not replaced)."""
        live = self.participants.get(room, {}).get(p.identity)
        return live if live is not None and live.sid == p.sid else None

    def _connect(
        self, room: str, built: list[tuple[models.ParticipantInfo, list[models.TrackInfo]]], delay: float
    ) -> None:
        """The joins' signalling and transports come up: JOINED once the join response is
        sent (participant_signal.go), ACTIVE once the primary transport connects."""
        time.sleep(delay * JOINED_SHARE)
        with self.lock:
            for p, _ in built:
                if self._same_session_locked(room, p) is not None:
                    p.state = models.ParticipantInfo.State.JOINED
                    p.version += 1
        time.sleep(delay * (1 - JOINED_SHARE))
        with self.lock:
            for p, track_infos in built:
                if self._same_session_locked(room, p) is not None:
                    self._activate_locked(room, p, track_infos)

    def _activate_locked(self, room: str, p: models.ParticipantInfo, tracks: list[models.TrackInfo]) -> None:
        """ACTIVE: ``participant_joined`` (telemetry ParticipantActive, with the room's cached
        proto), then the client publishes its tracks (``track_published`` each)."""
        p.state = models.ParticipantInfo.State.ACTIVE
        p.version += 1
        self._emit_locked("participant_joined", self.shown_room_locked(room), copy_message(p))
        if not tracks:
            return
        short_room = self._short_room(self.rooms[room])
        for track in tracks:
            p.tracks.append(track)
            self._emit_locked("track_published", short_room, self._short_participant(p), track)
        self._publisher_up.add((room, p.identity))
        if p.permission.can_publish and not p.is_publisher:
            p.is_publisher = True
            self.counts_changed_locked(room, publishers=+1)

    def _leave_locked(
        self,
        room: str,
        identity: str,
        reason: int = models.DisconnectReason.CLIENT_INITIATED,
        schedule: bool = True,
    ) -> bool:
        """The participant's session closes (livekit/livekit ``pkg/rtc/participant.go``
        ``Close``): each published track is unpublished first (``track_unpublished``
        per track, ``mediatrackreceiver.go``), then ``participant_left`` carries the
        participant with EMPTY ``tracks`` and its ``disconnect_reason``
        (``pkg/rtc/types/interfaces.go`` ParticipantCloseReason -> DisconnectReason)."""
        members = self.participants.get(room)
        if not members:
            return False
        p = members.get(identity)
        if p is None:
            return False
        for i in reversed(range(len(p.tracks))):
            self._unpublish_locked(room, p, i)
        del members[identity]
        self._publisher_up.discard((room, identity))
        self.counts_changed_locked(room, participants=-1, publishers=-1 if p.is_publisher else 0)
        life = self._life[room]
        life.left_at = time.monotonic()
        connected = p.state == models.ParticipantInfo.State.ACTIVE
        gone = copy_message(p)
        gone.state = models.ParticipantInfo.State.DISCONNECTED
        gone.disconnect_reason = reason  # type: ignore[assignment]
        # roommanager.go: ParticipantLeft with the room's cached proto; telemetry events.go
        # sends participant_connection_aborted instead for a session that never was ACTIVE.
        event = "participant_left" if connected else "participant_connection_aborted"
        self._emit_locked(event, self.shown_room_locked(room), gone)
        if schedule:
            self._schedule_locked(room)
        return True

    def remove_participant_locked(self, room: str, identity: str, revoke_token_ts: int = 0) -> bool:
        """RemoveParticipant: the participant leaves (``track_unpublished`` per track, then
        ``participant_left`` with PARTICIPANT_REMOVED, roommanager.go); the departure
        timeout starts when the room is then empty.  In cloud mode the identity's tokens
        whose ``nbf`` is before ``revoke_token_ts`` (0: now + 1 min) are refused from now on."""
        if not self._leave_locked(room, identity, models.DisconnectReason.PARTICIPANT_REMOVED):
            return False
        if self.cloud:
            self.revoked[(room, identity)] = revoke_token_ts or int(time.time()) + REVOKE_LEEWAY
        return True

    def remove_participant(
        self, room: str, identity: str, reason: int = models.DisconnectReason.CLIENT_INITIATED
    ) -> bool:
        """Make one participant leave (by default on its own: CLIENT_INITIATED); False if
        the room or identity is unknown."""
        with self.lock:
            return self._leave_locked(room, identity, reason)

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

    def _live_participant_locked(self, room: str, identity: str) -> models.ParticipantInfo:
        if room not in self.rooms:
            raise UnknownRoomError(f"room {room!r} does not exist")
        p = self.participant_locked(room, identity)
        if p is None:
            raise UnknownParticipantError(f"participant {identity!r} is not in room {room!r}")
        return p

    # ---------------------------------------------------------------- tracks
    def publish_track(self, room: str, identity: str, spec: TrackLike) -> models.TrackInfo:
        """The participant's client publishes a track (``track_published``); raises
        :class:`PublishNotAllowedError` when its permission forbids the source."""
        track = as_spec(spec).to_proto()
        with self.lock:
            p = self._live_participant_locked(room, identity)
            if not can_publish_source(p.permission, track.source):
                raise PublishNotAllowedError(
                    f"{identity!r} may not publish source {models.TrackSource.Name(track.source)}"
                    f" (permission: can_publish={p.permission.can_publish},"
                    f" can_publish_sources={_source_names(p.permission)})"
                )
            if any(t.sid == track.sid for t in p.tracks):
                raise ValueError(f"track sid {track.sid!r} is already published by {identity!r}")
            p.tracks.append(track)
            self._publisher_up.add((room, identity))
            room_proto = self.rooms[room]
            if not p.is_publisher:
                p.is_publisher = True
                self.counts_changed_locked(room, publishers=+1)
            p.version += 1
            self._emit_locked(
                "track_published", self._short_room(room_proto), self._short_participant(p), track
            )
            return copy_message(track)

    def unpublish_track(self, room: str, identity: str, sid: str) -> bool:
        """The participant's client unpublishes a track (``track_unpublished``); False
        when it has no track ``sid``."""
        with self.lock:
            p = self._live_participant_locked(room, identity)
            for i, track in enumerate(p.tracks):
                if track.sid == sid:
                    self._unpublish_locked(room, p, i)
                    p.version += 1
                    return True
            return False

    def _unpublish_locked(self, room: str, p: models.ParticipantInfo, index: int) -> None:
        track = copy_message(p.tracks[index])
        del p.tracks[index]
        self._emit_locked(
            "track_unpublished", self._short_room(self.rooms[room]), self._short_participant(p), track
        )

    def set_permission_locked(
        self, room: str, p: models.ParticipantInfo, requested: models.ParticipantPermission
    ) -> bool:
        """participant.go SetPermission: replace the permission; unpublish the tracks it
        no longer allows; returns False (nothing done) when it is unchanged."""
        new = replaced_permission(requested)
        if new == p.permission:  # VideoGrant.MatchesPermission
            return False
        p.permission.CopyFrom(new)
        keep_data = new.can_publish_data
        for i in reversed(range(len(p.tracks))):
            track = p.tracks[i]
            if track.type == models.TrackType.DATA:
                allowed = keep_data
            else:
                allowed = can_publish_source(new, track.source)
            if not allowed:
                self._unpublish_locked(room, p, i)
        # isPublisher = canPublish && the publisher transport is up (it is once it published,
        # and stays up when publishing is revoked: restoring it makes a publisher again).
        was = p.is_publisher
        p.is_publisher = new.can_publish and (room, p.identity) in self._publisher_up
        if was != p.is_publisher:
            self.counts_changed_locked(room, publishers=1 if p.is_publisher else -1)
        return True

    def clear(self) -> None:
        """Forget every room and participant, with no events."""
        with self.lock:
            self.rooms.clear()
            self.participants.clear()
            self._publisher_up.clear()
            self.revoked.clear()
            for life in self._life.values():
                life.deadline = None
            self._life.clear()


def copy_message(msg: _M) -> _M:
    """A deep copy of a protobuf message (what the store hands out)."""
    clone = type(msg)()
    clone.CopyFrom(msg)
    return clone
