"""The LiveKit client: an event loop lent to each request's own thread, pooled connections.

Flask views are synchronous; ``livekit-api`` is asyncio. Instead of spinning an event loop
and a session per request (what an ``async def`` view does), a request borrows one of the
process's idle event loops and runs its operation on it in its own thread (no handoff to
another thread); the loop keeps its connections alive for whichever request borrows it
next. livekit-api's RoomService builds every request (livekit-protocol message, grants,
signed token); :class:`~.transport.TwirpTransport` sends it. Operations that fan out into
many calls at once (:func:`fans_out`: a room mute) run on the process's one loop thread
instead, sharing one pool and one bound. Loops are re-created in a forked child (gunicorn
``--preload``) and closed at exit.

One request's LiveKit work, top to bottom (:meth:`RoomCalls.run`):

1. the app's and the caller's circuit breakers (:class:`~.guard.Breakers`) admit it or
   answer 503 at once;
2. its lane (:class:`~.guard.Lane`: the requests' or ban enforcement's) gives it a place,
   perhaps after waiting on those ahead while they are on time, or answers 503
   ``LIVEKIT_BUSY``;
3. the operation runs on the loop under ONE deadline, ``LIVEKIT_MODERATION_TIMEOUT``, for
   all its calls together; each call (:meth:`RoomCalls._call`) turns what LiveKit answered
   into a result, a :class:`~livekit.api.TwirpError` refusal the operation interprets, or
   503 ``LIVEKIT_UNAVAILABLE``;
4. the outcome (LiveKit up, unavailable, timed out, unknown) goes to the lane and the
   breakers.

What a failure answers depends on whether a change was sent: a write (:data:`WRITES`) sent to
LiveKit whose answer never came (the deadline passed, or the connection broke after sending)
is 503 ``LIVEKIT_OUTCOME_UNKNOWN``: LiveKit may have done it. Everything else that fails
(refused by a breaker or a lane, a connection refused, a 5xx, no answer to a read) is
503 ``LIVEKIT_UNAVAILABLE``: nothing was changed.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiohttp
from google.protobuf.message import DecodeError, Message
from livekit.api import AccessToken, SIPGrants, TwirpError, VideoGrants
from livekit.api.room_service import RoomService
from livekit.api.twirp_client import TwirpClient
from livekit.protocol.models import ParticipantInfo, ParticipantPermission, Room, TrackInfo
from livekit.protocol.room import (
    ListParticipantsRequest,
    ListRoomsRequest,
    MuteRoomTrackRequest,
    RoomParticipantIdentity,
    UpdateParticipantRequest,
)

from . import errors
from .config import Settings
from .guard import BreakerChange, Breakers, Busy, Lane, Lateness, Outcome, Refused
from .transport import CutAnswer, NoAnswer, TransportError, TwirpTransport, UnusableAnswer

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)
F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("flask_livekit_moderation")

#: Seconds a request thread waits beyond the deadline for the loop to hand back the result;
#: only a wedged loop ever uses it.
_HANDOFF_MARGIN = 0.25
#: Seconds :meth:`LiveKitClient.close` waits for the pooled connections to close.
_CLOSE_WAIT = 2.0
#: The RoomService methods that change something: one sent without an answer may have been done.
WRITES = frozenset({"RemoveParticipant", "MutePublishedTrack", "UpdateParticipant"})


class _Runner:
    """An event loop and the LiveKit sessions opened on it, for one thread at a time.

    Connections belong to the loop they were opened on; a loop that
    is not running may be run by any thread. So a request runs its LiveKit work on a loop
    lent from :data:`_lender` in its own thread, and its pooled connections are still there
    for the next request that borrows the loop, whatever thread serves it (gunicorn's pool,
    or werkzeug's thread per request).
    """

    def __init__(self) -> None:
        # Created in an empty context: the loop registers its self-pipe reader with the
        # context current at creation, which must not be a request's (it would pin that app).
        self.loop = contextvars.Context().run(asyncio.new_event_loop)
        #: Each client's RoomServices on this loop, by ``id(client)``: held weakly, so an app
        #: dropped without closing its extension is not kept alive by a loop.
        self.services: dict[int, _Services] = {}
        self._owners: dict[int, weakref.ref[LiveKitClient]] = {}
        #: The connections of clients collected since: closed when the loop next runs.
        self.orphans: list[TwirpTransport] = []
        self._closing: set[asyncio.Task[Any]] = set()

    def adopt(self, client: LiveKitClient, services: _Services) -> None:
        key = id(client)

        def collected(_: object) -> None:  # a weakref callback: only moves the connections
            gone = self.services.pop(key, None)
            self._owners.pop(key, None)
            if gone is not None:
                self.orphans.extend(gone.sessions)

        self.services[key] = services
        self._owners[key] = weakref.ref(client, collected)

    async def sweep(self) -> None:
        """Close the connections of collected clients (on this loop)."""
        orphans, self.orphans = self.orphans, []
        await _close_all(orphans)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        # An empty context again: the task would otherwise copy Flask's request and app
        # contexts into every callback scheduled from it, keeping the app alive as
        # long as the session.
        return contextvars.Context().run(self.loop.run_until_complete, work)

    def retire(self, client: LiveKitClient, services: _Services) -> None:
        """Close the sessions of a client closed since they were opened (on this loop, running)."""
        task = self.loop.create_task(_close_all(services.sessions))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_sessions(self, client: LiveKitClient | None = None) -> None:
        """Close the sessions of ``client`` (of every client when ``None``) opened on this loop."""
        keys = [id(client)] if client is not None else list(self.services)
        for key in keys:
            services = self.services.pop(key, None)
            self._owners.pop(key, None)
            if services is not None:
                await _close_all(services.sessions)
        await self.sweep()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close_all(sessions: Sequence[TwirpTransport]) -> None:
    await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)


@dataclass
class _Services:
    """One client's RoomServices on one loop: pooled, and single-use for the stale retry."""

    generation: int
    pooled: RoomService
    fresh: RoomService
    sessions: tuple[TwirpTransport, ...]


class _Lender:
    """The idle loops of this process: a request borrows one and gives it back.

    As many loops exist as requests ever ran LiveKit work at once; none is created per request.
    A deque's ``pop`` and ``append`` are atomic, so a request borrows and gives back without a
    lock (in :meth:`RoomCalls._execute`).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.idle: collections.deque[_Runner] = collections.deque()
        self.every: list[_Runner] = []

    def new(self) -> _Runner:
        """One loop more, when every one is lent."""
        runner = _Runner()
        self.every.append(runner)
        return runner

    def close(self, client: LiveKitClient | None = None) -> None:
        """Close ``client``'s sessions (every session when ``None``) on the loops not lent now;
        those lent are closed when next borrowed (their generation is old) or at exit."""
        idle: list[_Runner] = []
        with contextlib.suppress(IndexError):  # until none is idle (a request may borrow meanwhile)
            while True:
                idle.append(self.idle.pop())
        try:
            for runner in idle:
                if not runner.loop.is_closed():
                    runner.run(runner.close_sessions(client))
                    if client is None:
                        runner.loop.close()
        finally:
            if client is not None:
                self.idle.extend(idle)


_lender = _Lender()


class _LoopThread:
    """An asyncio loop in a daemon thread, owned by the process that started it.

    It runs the operations that fan out into many calls at once (:func:`fans_out`): they share
    one connection pool and one bound on calls in flight (:meth:`RoomCalls.shared_slots`).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.runner = _Runner()
        self.loop = self.runner.loop
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="livekit-moderation-loop", daemon=True
        )
        self.thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        # Submitted from an empty context, for the reason given in _Runner.run.
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, work, self.loop)

    def close(self, timeout: float = 2.0) -> None:
        if self.loop.is_closed():
            return
        try:
            self.submit(self.runner.close_sessions()).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("LiveKit sessions did not close within %.1fs at exit", timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None
#: A forked child's copies of its parent's loops and sessions.
_inherited: list[tuple[_LoopThread | None, _Lender]] = []


def _process_loop() -> _LoopThread:
    global _loop_thread
    current = _loop_thread
    if current is not None and current.pid == os.getpid():
        return current
    with _loop_lock:
        if _loop_thread is None or _loop_thread.pid != os.getpid():
            _loop_thread = contextvars.Context().run(_LoopThread)
        return _loop_thread


def _forget_parent_loop() -> None:
    # The parent's loop thread does not exist in a forked child and its lock may have been
    # held at fork time: start afresh. The parent's sockets are abandoned, not closed, so
    # the parent's connections are left intact.
    # They are kept referenced, never collected: collecting would close the parent's
    # transports, which unregisters their sockets from the epoll instance the child
    # shares with the parent (the parent would then never see its answers).
    global _loop_lock, _loop_thread, _lender
    _inherited.append((_loop_thread, _lender))
    _loop_lock = threading.Lock()
    _loop_thread = None
    _lender = _Lender()


def _close_at_exit() -> None:
    current = _loop_thread
    if current is not None and current.pid == os.getpid():
        current.close()
    if _lender.pid == os.getpid():
        _lender.close()


os.register_at_fork(after_in_child=_forget_parent_loop)
atexit.register(_close_at_exit)


def fans_out(operation: F) -> F:
    """Mark an operation that makes many calls at once: it runs on the process's loop thread,
    sharing one connection pool and :meth:`RoomCalls.shared_slots` with the others."""
    operation.__dict__["livekit_fans_out"] = True
    return operation


#: ``asyncio.timeout`` where it exists (Python 3.11+).
_TIMEOUT_SCOPE = getattr(asyncio, "timeout", None)


#: Seconds one signed API token is reused.
TOKEN_REUSE_SECONDS = 600.0
#: Lifetime of a signed API token: the reuse window plus a margin for clock skew and the
#: calls in flight at its end (livekit-api's own default is six hours).
TOKEN_TTL = timedelta(minutes=15)
#: Distinct grant sets (one per room, plus roomList) kept before the cache starts over.
_TOKEN_CACHE_SIZE = 1024


class TokenCachingRoomService(RoomService):
    """livekit-api's RoomService, reusing each signed API token for ten minutes.

    livekit-api signs a fresh JWT for every call (about 0.1 ms of HS256 and dataclass
    copying, measured); a moderation request makes two or three calls whose grants repeat,
    so one token per grant set is signed, valid for :data:`TOKEN_TTL`, and reused for
    :data:`TOKEN_REUSE_SECONDS`. Overrides the protected ``Service._auth_header``
    (livekit-api 1.x, pinned < 2).
    """

    def __init__(
        self,
        transport: TwirpTransport,
        url: str,
        api_key: str,
        api_secret: str,
        headers: dict[Hashable, tuple[float, dict[str, str]]] | None = None,
    ) -> None:
        # failover=False: one attempt per call; the retry on a stale connection is ours.
        super().__init__(cast(aiohttp.ClientSession, None), url, api_key, api_secret, failover=False)
        # livekit-api builds each request (message, grants, token); our transport sends it.
        self._client = cast(TwirpClient, transport)
        #: The signed headers by grant set; ``headers`` shares them between services.
        self._headers = {} if headers is None else headers

    def _auth_header(self, grants: VideoGrants | None, sip: SIPGrants | None = None) -> dict[str, str]:
        if grants is None or sip is not None:
            return super()._auth_header(grants, sip)
        # The grants' values as the key (a repr costs ten times more, measured); a list among
        # them (can_publish_sources) cannot be hashed: then the repr.
        key: Hashable = tuple(vars(grants).values())
        try:
            cached = self._headers.get(key)
        except TypeError:
            key = repr(grants)
            cached = self._headers.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._headers) >= _TOKEN_CACHE_SIZE:
            self._headers.clear()
        token = AccessToken(self.api_key, self.api_secret).with_grants(grants).with_ttl(TOKEN_TTL).to_jwt()
        header = {"authorization": f"Bearer {token}"}
        self._headers[key] = (now + TOKEN_REUSE_SECONDS, header)
        return header


class RoomCalls:
    """The RoomService as one request uses it: admitted, bounded by one deadline, recorded.

    Create one per request or task, ``RoomCalls(state.client, caller, enforcement=...)``, then
    :meth:`run` an operation of a feature's ``operations`` module; :attr:`made` lists the LiveKit
    methods it called, in order. ``caller`` is the auth id it acts for (``None``: a caller without
    one), whose share of the lane it takes; ``enforcement`` is ban enforcement (webhook,
    reconciler), admitted on its own lane. Without LiveKit (``client`` ``None``: not configured)
    it cannot be created: 500 ``LIVEKIT_NOT_CONFIGURED``.
    """

    def __init__(
        self, client: LiveKitClient | None, caller: Hashable = None, *, enforcement: bool = False
    ) -> None:
        if client is None:
            raise errors.LIVEKIT_NOT_CONFIGURED()
        self._client = client
        self._enforcement = enforcement
        #: Whose request it is, and how its calls go: what its lane reads of it (:class:`~.guard.Holder`).
        self.caller = caller
        self.call_started: float | None = None
        self.late = False
        self._runner: _Runner | None = None
        self._lateness: Lateness  # set by run()
        self.made: list[str] = []
        #: A call was answered by LiveKit (a success, or a refusal proving it is up).
        self.reached = False
        #: A call found LiveKit unavailable (connection, 5xx, unusable answer).
        self.unavailable = False
        #: The deadline passed before LiveKit answered.
        self.timed_out = False
        #: Writes sent to LiveKit whose answer has not come (nor a failure proving them undone).
        self.unanswered_writes = 0

    def run(
        self,
        operation: Callable[Concatenate[RoomCalls, P], Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``operation(self, *args, **kwargs)`` on the loop and return its result.

        Raises 503 ``LIVEKIT_UNAVAILABLE`` (with ``Retry-After``) when a breaker is open or
        LiveKit fails, 503 ``LIVEKIT_BUSY`` when the lane refuses (see :mod:`.guard`), and
        whatever :class:`~.errors.ModerationError` the operation raises.
        """
        guard = self._client.guard()
        self._lateness = guard.lateness
        lane = guard.enforcement if self._enforcement else guard.requests
        try:
            admitted = guard.breakers.admit(self.caller)
        except Refused as refused:
            raise errors.LIVEKIT_UNAVAILABLE(headers={"Retry-After": str(refused.retry_after)}) from None
        self.late = False  # of this run (an enforcement's RoomCalls may run more than once)
        try:
            lane.enter(self)
        except Busy as busy:
            guard.breakers.record(admitted, Outcome.UNKNOWN)
            logger.info(
                "LiveKit %s lane refused a request of %r: %s (%d) in use, %s",
                busy.lane,
                self.caller,
                busy.limit,
                busy.capacity,
                busy.why,
            )
            raise errors.LIVEKIT_BUSY() from None
        try:
            try:
                return self._execute(operation, *args, **kwargs)
            finally:
                # What the work proved about LiveKit, for the lane and the breakers.
                if self.unavailable:
                    outcome = Outcome.UNAVAILABLE
                elif self.timed_out:
                    outcome = Outcome.TIMED_OUT
                else:
                    outcome = Outcome.UP if self.reached else Outcome.UNKNOWN
                lane.leave(self, outcome)
                guard.breakers.record(admitted, outcome)
        except errors.ModerationError as exc:
            if exc.code in (errors.LIVEKIT_UNAVAILABLE.code, errors.LIVEKIT_OUTCOME_UNKNOWN.code):
                exc.headers["Retry-After"] = str(guard.breakers.retry_after(self.caller))
            raise

    def _execute(
        self,
        operation: Callable[Concatenate[RoomCalls, P], Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the operation on a loop in this thread (no handoff to another thread), or on the
        process's loop thread when it fans out or this thread already runs a loop."""
        if operation.__dict__.get("livekit_fans_out") or asyncio._get_running_loop() is not None:
            owner = _process_loop()
            self._runner = owner.runner
            if owner.runner.orphans:
                owner.submit(owner.runner.sweep())
            return self._wait(owner.submit(self._within_deadline(operation(self, *args, **kwargs))))
        lender = _lender
        try:
            runner = lender.idle.pop()
        except IndexError:
            runner = lender.new()
        self._runner = runner
        try:
            if runner.orphans:
                runner.run(runner.sweep())
            return runner.run(self._within_deadline(operation(self, *args, **kwargs)))
        finally:
            lender.idle.append(runner)

    def _no_answer(self) -> errors.ModerationError:
        """What a request that got no answer in time answers: whether a write may have been done."""
        if self.unanswered_writes:
            return errors.LIVEKIT_OUTCOME_UNKNOWN()
        return errors.LIVEKIT_UNAVAILABLE()

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result(self._client.timeout + _HANDOFF_MARGIN)
        except concurrent.futures.TimeoutError:
            # Only a wedged loop gets here: the deadline inside has already passed.
            future.cancel()
            self.timed_out = True
            logger.warning("LiveKit work did not hand back a result in time (%s)", ",".join(self.made) or "-")
            raise self._no_answer() from None

    async def _within_deadline(self, work: Coroutine[Any, Any, T]) -> T:
        timeout = self._client.timeout
        try:
            if _TIMEOUT_SCOPE is None:
                return await asyncio.wait_for(work, timeout)
            async with _TIMEOUT_SCOPE(timeout):
                return await work
        except asyncio.TimeoutError:
            self.timed_out = True
            logger.warning(
                "LiveKit unavailable: no answer within the %.1fs deadline (calls: %s; writes unanswered: %d)",
                timeout,
                ",".join(self.made) or "-",
                self.unanswered_writes,
            )
            raise self._no_answer() from None

    async def _call(self, method: str, send: Callable[[RoomService, M], Awaitable[R]], request: M) -> R:
        """One RoomService call, timed for the lane: how long LiveKit takes to answer, and whether late."""
        self.made.append(method)
        self.call_started = started = time.monotonic()
        write = method in WRITES
        # A write stays unanswered when the deadline cancels it or its connection broke after
        # sending; any answer, or a failure before sending, settles it.
        settled = answered = False
        if write:
            self.unanswered_writes += 1
        try:
            answer = await self._answer(method, send, request)
            settled = answered = True
        except TwirpError:  # a refusal is an answer too
            settled = answered = True
            raise
        except errors.ModerationError as exc:
            settled = exc.code != errors.LIVEKIT_OUTCOME_UNKNOWN.code
            raise
        finally:
            self.call_started = None
            if write and settled:
                self.unanswered_writes -= 1
            if answered:  # the lane learns how long LiveKit takes from its answers only
                seconds, lateness = time.monotonic() - started, self._lateness
                if seconds > lateness.threshold:
                    self.late = True
                lateness.sample(seconds)
        return answer

    async def _answer(self, method: str, send: Callable[[RoomService, M], Awaitable[R]], request: M) -> R:
        """LiveKit's answer, sent again once on a fresh connection if a stale one failed."""
        assert self._runner is not None
        services = self._client.services(self._runner)
        try:
            try:
                answer = await send(services.pooled, request)
            except NoAnswer as exc:
                logger.info(
                    "LiveKit %s: a pooled connection failed before any answer (%s); sending again on a "
                    "fresh connection",
                    method,
                    exc,
                )
                answer = await send(services.fresh, request)
        except TwirpError as exc:
            if exc.status >= 500:
                raise self._unavailable(method, f"{type(exc).__name__} {exc.status} {exc.code}") from None
            self.reached = True  # any other answer proves LiveKit is up
            if exc.status == 401:
                raise errors.LIVEKIT_AUTH_FAILED() from None
            raise
        except UnusableAnswer as exc:
            if exc.location is not None:
                logger.warning(
                    "LiveKit answered %s %s with a redirect to %r: check LIVEKIT_URL; redirects are never "
                    "followed",
                    method,
                    exc.reason,
                    exc.location,
                )
            raise self._unavailable(method, exc.reason) from None
        except (TransportError, OSError, DecodeError) as exc:
            # A connection that ended before or during the answer, on the fresh connection
            # too: the request went out whole (LiveKit acts on a complete request only).
            if method in WRITES and isinstance(exc, (NoAnswer, CutAnswer)):
                self.unavailable = True
                logger.warning(
                    "LiveKit %s: sent, but no answer (%s): it may have been done", method, type(exc).__name__
                )
                raise errors.LIVEKIT_OUTCOME_UNKNOWN() from None
            raise self._unavailable(method, type(exc).__name__) from None
        self.reached = True
        return answer

    def shared_slots(self, name: str, size: int) -> asyncio.Semaphore:
        """A semaphore ``name`` shared by every request of this app in this process (on the
        process's loop: only in a :func:`fans_out` operation).

        Bounds work that fans out into many calls (a room mute's MutePublishedTrack calls)
        across requests, so two big room operations cannot take the whole connection pool.
        """
        owner = _loop_thread
        if owner is None or self._runner is not owner.runner:
            raise RuntimeError("shared_slots is for operations marked with @fans_out")
        return self._client.shared_slots(name, size)

    def _unavailable(self, method: str, cause: str) -> errors.ModerationError:
        self.unavailable = True
        logger.warning("LiveKit unavailable: %s failed with %s", method, cause)
        return errors.LIVEKIT_UNAVAILABLE()

    # -- the RoomService calls the operations make --------------------------------------

    async def find_room(self, name: str) -> Room | None:
        """The room named ``name`` (ListRooms), or ``None`` when it does not exist."""
        answer = await self._call("ListRooms", RoomService.list_rooms, ListRoomsRequest(names=[name]))
        for room in answer.rooms:
            if room.name == name:
                return room
        return None

    async def list_rooms(self) -> Sequence[Room]:
        """Every running room (ListRooms with no names)."""
        answer = await self._call("ListRooms", RoomService.list_rooms, ListRoomsRequest())
        return answer.rooms

    async def list_participants(self, room: str) -> Sequence[ParticipantInfo]:
        """The room's participants (an unknown room has none, as LiveKit answers)."""
        answer = await self._call(
            "ListParticipants", RoomService.list_participants, ListParticipantsRequest(room=room)
        )
        return answer.participants

    async def get_participant(self, room: str, identity: str) -> ParticipantInfo:
        """One participant with its tracks; a TwirpError ``not_found`` when absent."""
        return await self._call(
            "GetParticipant",
            RoomService.get_participant,
            RoomParticipantIdentity(room=room, identity=identity),
        )

    async def remove_participant(self, room: str, identity: str, *, revoke_token_ts: int = 0) -> None:
        """Disconnect a participant; a TwirpError ``not_found`` when absent.

        ``revoke_token_ts`` (Unix seconds; 0: none): LiveKit Cloud refuses that identity's tokens
        whose ``nbf`` is before it (self-hosted LiveKit ignores it).
        """
        await self._call(
            "RemoveParticipant",
            RoomService.remove_participant,
            RoomParticipantIdentity(room=room, identity=identity, revoke_token_ts=revoke_token_ts),
        )

    async def mute_published_track(
        self, room: str, identity: str, track_sid: str, muted: bool
    ) -> TrackInfo | None:
        """Set a track's muted state; the track as LiveKit reports it, ``None`` when it has no such track."""
        answer = await self._call(
            "MutePublishedTrack",
            RoomService.mute_published_track,
            MuteRoomTrackRequest(room=room, identity=identity, track_sid=track_sid, muted=muted),
        )
        return answer.track if answer.HasField("track") else None

    async def update_participant_permission(
        self, room: str, identity: str, permission: ParticipantPermission
    ) -> ParticipantInfo:
        """Set a participant's permission (UpdateParticipant): LiveKit REPLACES the whole permission
        with this one; the participant as LiveKit reports it after; a TwirpError ``not_found`` when
        absent."""
        return await self._call(
            "UpdateParticipant",
            RoomService.update_participant,
            UpdateParticipantRequest(room=room, identity=identity, permission=permission),
        )


@dataclass
class _Guard:
    """The lanes, breakers and lateness of one app in one process."""

    pid: int
    requests: Lane
    enforcement: Lane
    breakers: Breakers
    lateness: Lateness


class LiveKitClient:
    """The LiveKit connection of one app: pooled sessions, admission lanes and breakers.

    ``settings.timeout`` bounds the whole LiveKit work of one request, in seconds; see
    :mod:`.guard` for the lanes (``max_concurrency``, ``caller_share``,
    ``enforcement_concurrency``, ``queue_timeout``) and the breakers.
    """

    def __init__(
        self, settings: Settings, *, on_breaker_change: Callable[[BreakerChange], None] | None = None
    ) -> None:
        assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
        self._url = settings.livekit_url
        self._api_key = settings.livekit_api_key
        self._api_secret = settings.livekit_api_secret
        self.settings = settings
        self.timeout = settings.timeout
        self._on_breaker_change = on_breaker_change
        self._guard_lock = threading.Lock()
        self._guard: _Guard | None = None
        #: Bumped by :meth:`close`: sessions opened before are closed where they are next seen.
        self._generation = 0
        #: Signed API tokens, shared by this client's RoomServices on every loop.
        self._token_headers: dict[Hashable, tuple[float, dict[str, str]]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._slots_pid: int | None = None

    def guard(self) -> _Guard:
        """This process's lanes and breakers (a forked worker starts with its own)."""
        guard = self._guard
        if guard is not None and guard.pid == os.getpid():
            return guard
        with self._guard_lock:
            if self._guard is None or self._guard.pid != os.getpid():
                # The process's loop thread starts with the first LiveKit work: fan-out
                # operations (a room mute) then never wait for a thread to start.
                _process_loop()
                s = self.settings
                # A call later than half the deadline is late whatever LiveKit's usual speed.
                lateness = Lateness(ceiling=s.timeout / 2)

                def lane(name: str, ceiling: int, share: float) -> Lane:
                    return Lane(
                        name,
                        ceiling,
                        share=share,
                        adaptive=s.adaptive_concurrency,
                        lateness=lateness,
                        queue_timeout=s.queue_timeout,
                    )

                self._guard = _Guard(
                    os.getpid(),
                    requests=lane("requests", s.max_concurrency, s.caller_share),
                    enforcement=lane("enforcement", s.enforcement_concurrency, 1.0),
                    breakers=Breakers(s.breaker_failures, s.breaker_cooldown, self._on_breaker_change),
                    lateness=lateness,
                )
            return self._guard

    def shared_slots(self, name: str, size: int) -> asyncio.Semaphore:
        """See :meth:`RoomCalls.shared_slots` (on the loop thread only, so no lock)."""
        pid = os.getpid()
        if self._slots_pid != pid:
            self._slots, self._slots_pid = {}, pid
        slots = self._slots.get(name)
        if slots is None:
            slots = self._slots[name] = asyncio.Semaphore(size)
        return slots

    def services(self, runner: _Runner) -> _Services:
        """This client's RoomServices on ``runner``'s loop (called on that loop only): a pooled
        one, and, for the one retry after a stale connection, one that never reuses a connection."""
        services = runner.services.get(id(self))
        if services is None or services.generation != self._generation:
            if services is not None:
                runner.retire(self, services)
            pooled = TwirpTransport(self._url)
            single_use = TwirpTransport(self._url, reuse=False)
            services = _Services(
                self._generation,
                TokenCachingRoomService(
                    pooled, self._url, self._api_key, self._api_secret, self._token_headers
                ),
                TokenCachingRoomService(
                    single_use, self._url, self._api_key, self._api_secret, self._token_headers
                ),
                (pooled, single_use),
            )
            runner.adopt(self, services)
        return services

    def close(self, wait: bool = True) -> None:
        """Close the pooled LiveKit connections of this client.

        Safe to call more than once and from any thread; a later request opens new
        connections. ``wait=False`` only marks them to be closed where they are next used or
        at exit (used when an app is garbage-collected, which may happen on any thread).
        """
        self._generation += 1
        if not wait or asyncio._get_running_loop() is not None:
            return
        if _lender.pid == os.getpid():
            _lender.close(self)
        owner = _loop_thread
        if owner is None or owner.pid != os.getpid() or owner.loop.is_closed():
            return
        if threading.current_thread() is owner.thread:
            return
        try:
            future = owner.submit(owner.runner.close_sessions(self))
        except RuntimeError:  # the loop closed meanwhile (interpreter exit)
            return
        try:
            future.result(_CLOSE_WAIT)
        except concurrent.futures.TimeoutError:
            logger.warning("LiveKit connections did not close within %.1fs", _CLOSE_WAIT)
