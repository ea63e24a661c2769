"""``LiveKitEmulator``: a real-HTTP stand-in for LiveKit's twirp RoomService.

It answers ``POST /twirp/livekit.RoomService/{Method}`` exactly the way a single
LiveKit node does (same statuses, twirp codes, messages and plain-text 401s), so
code tested against it behaves the same against production.  This class only
assembles the parts and offers the test-facing API:

- ``server.py``: HTTP lifecycle, routing, injected faults, call record;
- ``tokens.py``: the API token checks (``auth.go``);
- ``roomservice.py``: the RoomService handlers (``roomservice.go``, ``roommanager.go``);
- ``state.py``: rooms and participants (``localstore.go``);
- ``faults.py``, ``records.py``, ``control.py`` (the ``/_emulator/`` routes).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

from livekit.protocol import models

from .control import ControlRoutes
from .faults import Fault, FaultPlan
from .records import CallLog, CallRecord
from .roomservice import DEFAULT_RPC_WAIT, RoomService
from .seeds import apply_seed
from .server import HttpServer
from .state import (
    DEFAULT_DEPARTURE_TIMEOUT,
    DEFAULT_EMPTY_TIMEOUT,
    DEFAULT_JOIN_DELAY,
    EmulatorState,
    TrackLike,
    TrackSpec,
)
from .tokens import TokenChecker, join_token_nbf
from .webhooks import WebhookDelivery, WebhookSender

__all__ = ["CLOUD_ENV", "SHUFFLE_ENV", "LiveKitEmulator"]

#: Environment variable: "1" makes every emulator created without ``shuffle=`` shuffle.
SHUFFLE_ENV = "LIVEKIT_EMULATOR_SHUFFLE"
#: Environment variable: "1" makes every emulator created without ``cloud=`` a LiveKit Cloud.
CLOUD_ENV = "LIVEKIT_EMULATOR_CLOUD"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def shuffle_from_env() -> bool:
    """Whether :data:`SHUFFLE_ENV` asks for shuffled list answers."""
    return _env_flag(SHUFFLE_ENV)


def cloud_from_env() -> bool:
    """Whether :data:`CLOUD_ENV` asks for LiveKit Cloud's behaviour."""
    return _env_flag(CLOUD_ENV)


class LiveKitEmulator:
    """A LiveKit RoomService stand-in served over real HTTP on a background thread.

    Use as a context manager or with :meth:`start` / :meth:`stop`; point a
    ``livekit.api.LiveKitAPI(emu.url, emu.api_key, emu.api_secret)`` at it.

    :param latency: seconds added to every RoomService call (simulated round trip).
    :param mute_unknown_delay: seconds before MutePublishedTrack (and UpdateSubscriptions,
        SendData, ...) on an unknown room or participant answers ``unavailable``.  Default
        3.0, LiveKit's: 3 psrpc attempts each waiting the 1 s affinity timeout
        (livekit/protocol ``rpc/typed_api.go``, psrpc ``client.go``); set less for fast tests.
    :param enable_remote_unmute: LiveKit's ``room.enable_remote_unmute`` (off by default).
    :param max_calls: keep only the newest N call records (None = all); per-method
        counts (:meth:`call_counts`) always cover every call.  Long soak runs need it.
    :param keepalive_timeout: seconds after which the server closes an idle
        keep-alive connection, as a real server's keep-alive timer does.
    :param empty_timeout: seconds before a room nobody joined closes (LiveKit: 300);
        ``add_room`` / CreateRoom can set it per room.
    :param departure_timeout: seconds a room lives on after its last participant left
        (LiveKit: 20); per room too.
    :param shuffle: answer ListRooms / ListParticipants in a random order, as LiveKit's
        Go maps do.  None (default): on when ``LIVEKIT_EMULATOR_SHUFFLE=1``.
    :param webhook_urls: where LiveKit-format webhooks go (``room_started``,
        ``room_finished``, ``participant_joined``, ``participant_left``,
        ``track_published``, ``track_unpublished``); changeable via :attr:`webhook_urls`.
    :param webhook_delay: seconds each webhook event waits before it is sent (default 0).
        A real LiveKit lists a joining participant before it sends ``participant_joined``
        (once their connection is up); a delay makes that window visible to a poller.
    :param webhook_time_scale: factor on every wait of webhook delivery: the retry waits
        (1, 2, 4, 8 s), a 429/503's ``Retry-After`` and the 30 s age after which a queued event
        is dropped (livekit/protocol ``webhook/resource_url_notifier.go``, go-retryablehttp).
        None (default): ``time_scale``; tests use e.g. 0.05.
    :param cloud: behave as LiveKit Cloud where it differs from the open-source server:
        RemoveParticipant's ``revoke_token_ts`` (0 = now + 1 min) makes a later join of that
        room+identity whose token ``nbf`` is before it fail with :class:`JoinRefusedError`
        (``livekit_room.proto``).  Off, the field is ignored, as the open-source
        server does (livekit/livekit PR #4344 not merged).  None (default): on when
        ``LIVEKIT_EMULATOR_CLOUD=1``.
    :param time_scale: factor on LiveKit's own periodic timers (1.0, the default, is
        LiveKit's timing): rooms close on a ticker of 1 s x ``time_scale`` counting whole
        ticks, so within one tick of their timeout (``pkg/service/server.go``
        ``backgroundWorker``, ``pkg/rtc/room.go`` ``CloseIfEmpty``); ListRooms' and webhooks'
        ``num_participants`` / ``num_publishers`` are refreshed at most every 5 s x
        ``time_scale`` (``room.go`` ``roomUpdateInterval``); and the webhook waits unless
        ``webhook_time_scale`` is given.
    :param join_delay: seconds from :meth:`join` until the participant is ACTIVE (default
        0.1): it is listed JOINING, then JOINED after a fifth of it, and ``participant_joined``
        is sent only once it is ACTIVE, as LiveKit sends it when the participant's transport
        connects (``pkg/telemetry/events.go`` ``ParticipantActive``).
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        latency: float = 0.0,
        mute_unknown_delay: float = DEFAULT_RPC_WAIT,
        enable_remote_unmute: bool = False,
        max_calls: int | None = None,
        keepalive_timeout: float = 75.0,
        empty_timeout: float = DEFAULT_EMPTY_TIMEOUT,
        departure_timeout: float = DEFAULT_DEPARTURE_TIMEOUT,
        shuffle: bool | None = None,
        webhook_urls: Sequence[str] = (),
        webhook_delay: float = 0.0,
        cloud: bool | None = None,
        webhook_time_scale: float | None = None,
        time_scale: float = 1.0,
        join_delay: float = DEFAULT_JOIN_DELAY,
    ) -> None:
        self.api_key: str = api_key or "APIemu" + secrets.token_hex(6)
        self.api_secret: str = api_secret or secrets.token_urlsafe(32)
        self.faults = FaultPlan(latency)
        self.state = EmulatorState(
            empty_timeout,
            departure_timeout,
            cloud=cloud_from_env() if cloud is None else cloud,
            time_scale=time_scale,
            join_delay=join_delay,
        )
        self._webhooks = WebhookSender(
            self.api_key,
            self.api_secret,
            time_scale=time_scale if webhook_time_scale is None else webhook_time_scale,
        )
        self._webhooks.urls = webhook_urls
        self.webhook_delay = webhook_delay
        self.state.on_event = self._webhooks.enqueue
        self.state.events_wanted = lambda: self._webhooks.active
        self.service = RoomService(
            self.state,
            mute_unknown_delay,
            enable_remote_unmute,
            shuffle_from_env() if shuffle is None else shuffle,
        )
        self._calls = CallLog(max_calls)
        self._server = HttpServer(
            self.service,
            TokenChecker(self.api_key, self.api_secret),
            self.faults,
            self._calls,
            host,
            port,
            keepalive_timeout,
        )
        self._control = ControlRoutes(
            self.state, self.service, self.faults, self._calls, self._server, self.api_secret, self._webhooks
        )
        self._control.api_key = self.api_key
        self._server.control = self._control.handle

    # ------------------------------------------------------------ settings
    @property
    def host(self) -> str:
        """Interface the server listens on."""
        return self._server.host

    @property
    def port(self) -> int:
        """Port of the server (the bound one once started with port 0)."""
        return self._server.port

    @property
    def mute_unknown_delay(self) -> float:
        """Seconds before a call to a participant nobody serves answers 503."""
        return self.service.mute_unknown_delay

    @mute_unknown_delay.setter
    def mute_unknown_delay(self, seconds: float) -> None:
        self.service.mute_unknown_delay = float(seconds)

    @property
    def cloud(self) -> bool:
        """LiveKit Cloud mode: RemoveParticipant's ``revoke_token_ts`` is honoured at join."""
        return self.state.cloud

    @cloud.setter
    def cloud(self, on: bool) -> None:
        self.state.cloud = bool(on)

    @property
    def time_scale(self) -> float:
        """Factor on the 1 s room ticker and the 5 s refresh of room counts (fixed once created)."""
        return self.state.time_scale

    @property
    def join_delay(self) -> float:
        """Seconds from :meth:`join` until the participant is ACTIVE."""
        return self.state.join_delay

    @join_delay.setter
    def join_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("join_delay must be >= 0")
        self.state.join_delay = float(seconds)

    def revoked(self) -> dict[tuple[str, str], int]:
        """(room, identity) -> the ``revoke_token_ts`` in force (cloud mode; a copy)."""
        with self.state.lock:
            return dict(self.state.revoked)

    @property
    def enable_remote_unmute(self) -> bool:
        """LiveKit's ``room.enable_remote_unmute``."""
        return self.service.enable_remote_unmute

    @enable_remote_unmute.setter
    def enable_remote_unmute(self, enabled: bool) -> None:
        self.service.enable_remote_unmute = bool(enabled)

    @property
    def webhook_urls(self) -> list[str]:
        """Where webhooks go (a copy); assign a new list to change it at run time."""
        return self._webhooks.urls

    @webhook_urls.setter
    def webhook_urls(self, urls: Sequence[str]) -> None:
        self._webhooks.urls = urls

    @property
    def webhook_delay(self) -> float:
        """Seconds each webhook event waits before it is sent (events queued later get a new value)."""
        return self._webhooks.delay

    @webhook_delay.setter
    def webhook_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("webhook_delay must be >= 0")
        self._webhooks.delay = float(seconds)

    @property
    def webhook_time_scale(self) -> float:
        """Factor on the webhook retry waits, ``Retry-After`` and the 30 s age limit (1.0 = LiveKit's)."""
        return self._webhooks.time_scale

    @webhook_time_scale.setter
    def webhook_time_scale(self, scale: float) -> None:
        self._webhooks.time_scale = scale

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Each finished webhook delivery (event, url, status, attempts, ...), in order."""
        return self._webhooks.deliveries()

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no RoomService call is being handled; False on timeout.

        A client that gives up on a call (a cancelled listing, a timeout) may leave it in
        flight here; a test that clears the call record between examples waits for quiet.
        """
        deadline = time.monotonic() + timeout
        while True:
            # A pass of the loop first, so requests already on the socket are counted.
            if self._server.run(self._server.idle()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def wait_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued webhook was delivered or gave up; False on timeout."""
        return self._webhooks.wait(timeout)

    def clear_webhook_deliveries(self) -> None:
        """Forget finished deliveries."""
        self._webhooks.clear()

    @property
    def shuffle(self) -> bool:
        """Whether list answers come in a random order."""
        return self.service.shuffle

    @shuffle.setter
    def shuffle(self, on: bool) -> None:
        self.service.shuffle = bool(on)

    @property
    def keepalive_timeout(self) -> float:
        """Seconds an idle keep-alive connection stays open (fixed once started)."""
        return self._server.keepalive_timeout

    @property
    def max_calls(self) -> int | None:
        """Newest call records kept (None = all)."""
        return self._calls.max_calls

    @max_calls.setter
    def max_calls(self, n: int | None) -> None:
        self._calls.max_calls = n

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server.running

    def start(self) -> LiveKitEmulator:
        """Start listening (blocks until the socket is bound); returns self."""
        self.state.reopen()
        self._server.start()
        return self

    def stop(self, timeout: float = 0.25) -> None:
        """Stop the server; in-flight calls get ``timeout`` seconds to finish.
        Rooms stop closing by timeout."""
        self._server.stop(timeout)
        self.state.close()

    def __enter__(self) -> LiveKitEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------- going offline
    def go_down(self) -> None:
        """Stop accepting connections (clients get "connection refused") and
        close every open connection, as if the server process died."""
        self._server.run(self._server.go_down())

    def come_up(self) -> None:
        """Listen again on the same port after :meth:`go_down`."""
        self._server.run(self._server.come_up())

    @contextlib.contextmanager
    def down(self) -> Iterator[LiveKitEmulator]:
        """``with emu.down(): ...`` — the server is unreachable inside the block."""
        self.go_down()
        try:
            yield self
        finally:
            self.come_up()

    # ------------------------------------------------------------ state API
    def add_room(
        self,
        name: str,
        metadata: str | None = None,
        *,
        empty_timeout: float | None = None,
        departure_timeout: float | None = None,
        max_participants: int | None = None,
    ) -> models.Room:
        """Create room ``name`` (sid ``RM_...``, ``room_started``), as CreateRoom does.

        For an existing room only the fields given change (its metadata, and so its
        ``auth_id``, stays unless ``metadata`` is given).  Timeouts default to the
        emulator's.  Returns a copy of the ``Room``.
        """
        return self.state.add_room(
            name,
            metadata,
            empty_timeout=empty_timeout,
            departure_timeout=departure_timeout,
            max_participants=max_participants,
        )[0]

    def add_participant(
        self,
        room: str,
        identity: str,
        name: str = "",
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
        permission: models.ParticipantPermission | None = None,
        token: str | None = None,
        wait: bool = True,
    ) -> models.ParticipantInfo:
        """The participant joins an existing room (sid ``PA_...``) as LiveKit's clients do:
        listed JOINING at once, JOINED, then ACTIVE after :attr:`join_delay`, when
        ``participant_joined`` is sent, then ``track_published`` per track.  ``wait``
        (default): return the ACTIVE participant; False: return it JOINING at once (the
        join goes on in the background).  Removed before ACTIVE, it never gets there
        (``participant_connection_aborted`` instead of ``participant_left``).

        ``token``: the join JWT the participant's client presents (``AccessToken(key,
        secret).with_identity(identity).with_grants(VideoGrants(room_join=True, room=room))``),
        checked with the API secret; without one the join acts as a freshly minted token
        (``nbf`` = now).  Raises :class:`JoinRefusedError` (a ``PermissionError``) for an
        invalid token or, in :attr:`cloud` mode, one revoked by RemoveParticipant.

        ``tracks``: one ``TrackSpec`` / ``(type, source[, name[, muted[, sid]]])`` tuple /
        dict per published track (``TR_...`` SID unless given); default one microphone
        AUDIO and one camera VIDEO track; ``[]`` for a non-publisher.  ``permission``:
        default what a plain join token grants (publish, subscribe, publish data).  The
        same identity joining again replaces the old session (which leaves).  Raises
        ``UnknownRoomError`` (a ``KeyError``) when the room was not added first and
        ``PublishNotAllowedError`` when ``permission`` forbids a track's source.
        """
        nbf = None
        if token is not None:
            nbf = join_token_nbf(token, self.api_key, self.api_secret, room, identity)
        return self.state.add_participants(
            room,
            [identity],
            name=name,
            tracks=tracks,
            metadata=metadata,
            permission=permission,
            token_nbf=nbf,
            join_delay=self.state.join_delay,
            wait=wait,
        )[0]

    join = add_participant
    """Alias of :meth:`add_participant` that reads naturally: ``emu.join("r", "banned")``."""

    def add_participants(
        self,
        room: str,
        identities: Sequence[str],
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
        permission: models.ParticipantPermission | None = None,
    ) -> list[models.ParticipantInfo]:
        """Seed participants who are already connected: each is ACTIVE at once and sends
        ``participant_joined`` and ``track_published`` per track (one lock acquisition)."""
        return self.state.add_participants(
            room, identities, tracks=tracks, metadata=metadata, permission=permission
        )

    def leave(self, room: str, identity: str) -> bool:
        """The participant leaves (``participant_left``; an emptied room closes after its
        ``departure_timeout``); False if unknown."""
        return self.state.remove_participant(room, identity)

    def remove_participant(self, room: str, identity: str) -> bool:
        """Same as :meth:`leave`."""
        return self.state.remove_participant(room, identity)

    def remove_room(self, name: str) -> bool:
        """Close a room as DeleteRoom does (participants leave, ``room_finished``);
        False if unknown."""
        return self.state.remove_room(name)

    def publish_track(
        self,
        room: str,
        identity: str,
        type: str | int,
        source: str | int,
        name: str = "",
        sid: str | None = None,
        muted: bool = False,
    ) -> models.TrackInfo:
        """The participant's client publishes a new track (``track_published``).

        Raises ``PublishNotAllowedError`` when its permission forbids ``source``,
        ``UnknownRoomError`` / ``UnknownParticipantError`` for unknown names.
        """
        return self.state.publish_track(room, identity, TrackSpec(type, source, name, muted, sid))

    def unpublish_track(self, room: str, identity: str, sid: str) -> bool:
        """The participant's client unpublishes track ``sid`` (``track_unpublished``);
        False when it has no such track."""
        return self.state.unpublish_track(room, identity, sid)

    def seed(self, seed: dict[str, Any]) -> dict[str, Any]:
        """Create the rooms, participants and tracks of a seed document (see
        ``seeds.py``); returns their SIDs.  Raises ``SeedError`` naming a bad field."""
        return apply_seed(self.state, seed)

    def set_room_metadata(self, name: str, metadata: str) -> models.Room:
        """Replace a room's metadata (raises ``UnknownRoomError`` if absent)."""
        return self.state.set_room_metadata(name, metadata)

    def rooms(self) -> list[models.Room]:
        """Copies of all rooms."""
        return self.state.rooms_list()

    def room(self, name: str) -> models.Room | None:
        """Copy of one room, or None."""
        return self.state.room(name)

    def participants(self, room: str) -> list[models.ParticipantInfo]:
        """Copies of a room's participants (empty for an unknown room)."""
        return self.state.participants_of(room)

    def participant(self, room: str, identity: str) -> models.ParticipantInfo | None:
        """Copy of one participant, or None."""
        return self.state.participant(room, identity)

    def clear(self) -> None:
        """Forget all rooms and participants without any event (calls and faults are kept)."""
        self.state.clear()

    # ---------------------------------------------------------- call record
    @property
    def calls(self) -> list[CallRecord]:
        """Copy of the call record, in arrival order."""
        return self._calls.records()

    def call_names(self) -> list[str]:
        """Method names of :attr:`calls`, in arrival order."""
        return self._calls.names()

    def call_counts(self) -> dict[str, int]:
        """Calls per method since the last :meth:`clear_calls` (not capped by ``max_calls``)."""
        return self._calls.counts()

    def clear_calls(self) -> None:
        """Forget recorded calls and counts."""
        self._calls.clear()

    # ------------------------------------------------------ fault injection
    def set_latency(self, seconds: float, method: str | None = None, room: str | None = None) -> None:
        """Delay every RoomService call (or only ``method``'s) by ``seconds``; with ``room``,
        every call about that room by ``seconds`` more (a room LiveKit is slow to serve)."""
        self.faults.set_latency(seconds, method, room)

    def fail_next(
        self,
        method: str,
        n: int = 1,
        code: str = "internal",
        status: int | None = None,
        msg: str = "injected failure",
    ) -> None:
        """Next ``n`` calls to ``method`` answer twirp error ``code`` (HTTP status from
        the twirp table unless ``status`` is given) with message ``msg``."""
        self.faults.push(method, Fault.fail(code, status, msg), n)

    def garbage_next(self, method: str, n: int = 1) -> None:
        """Next ``n`` calls to ``method`` answer 200 with a body that is not protobuf."""
        self.faults.push(method, Fault("garbage"), n)

    def drop_next(self, method: str, n: int = 1) -> None:
        """Next ``n`` calls to ``method`` get their connection closed, no answer."""
        self.faults.push(method, Fault("drop"), n)

    def hang_next(self, method: str, n: int = 1, seconds: float | None = None) -> None:
        """Next ``n`` calls to ``method`` wait ``seconds`` (None: until stop) and then
        are answered normally."""
        self.faults.push(method, Fault("hang", seconds=seconds), n)

    def redirect_next(
        self, method: str, n: int = 1, location: str = "http://127.0.0.1:9/elsewhere", status: int = 302
    ) -> None:
        """Next ``n`` calls to ``method`` answer ``status`` (3xx) with a ``Location``
        header and an empty body; the handler does not run (``fault="redirect"``)."""
        self.faults.push(method, Fault.redirect(location, status), n)

    def answer_next(
        self,
        method: str,
        n: int = 1,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/protobuf",
    ) -> None:
        """Next ``n`` calls to ``method`` answer exactly ``body`` with ``status`` and
        ``content_type``; the handler does not run (``fault="answer"``)."""
        self.faults.push(method, Fault.answer(status, body, content_type), n)

    def start_black_hole(self) -> None:
        """From now on every twirp request (any method) is read but never answered;
        control routes keep working.  Ends with :meth:`end_black_hole`."""
        self._server.run(self._server.start_black_hole())

    def end_black_hole(self) -> None:
        """Close the held connections without an answer; they are recorded with
        ``status=None, fault="black_hole"``.  Later calls are served again."""
        self._server.run(self._server.end_black_hole())

    @contextlib.contextmanager
    def black_hole(self) -> Iterator[LiveKitEmulator]:
        """``with emu.black_hole(): ...`` — calls inside the block never get an answer."""
        self.start_black_hole()
        try:
            yield self
        finally:
            self.end_black_hole()

    def clear_faults(self) -> None:
        """Drop queued faults and restore the constructor's latency."""
        self.faults.clear()

    def __repr__(self) -> str:
        return f"<LiveKitEmulator {self.url} running={self.running}>"
