"""The process-wide LiveKit client: one event loop thread, one pooled HTTP session per app.

Flask views are synchronous; ``livekit-api`` is asyncio. Instead of spinning an event
loop and an ``aiohttp`` session per request (what an ``async def`` view does), every
request hands its coroutine to one long-lived loop running in a daemon thread, where a
single RoomService client per configured app keeps its connections alive between requests.
The loop is re-created in a forked child (gunicorn ``--preload``) and closed at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from livekit.api import SIPGrants, VideoGrants
from livekit.api.room_service import RoomService

T = TypeVar("T")

logger = logging.getLogger("flask_livekit_moderation")

#: Seconds allowed, beyond the LiveKit timeouts, for an operation to hand back its result.
_HANDOFF_MARGIN = 5.0
#: Seconds :meth:`LiveKitClient.close` waits for the pooled connections to close.
_CLOSE_WAIT = 2.0


class _LoopThread:
    """An asyncio loop in a daemon thread, owned by the process that started it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.sessions: set[aiohttp.ClientSession] = set()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="livekit-moderation-loop", daemon=True
        )
        self.thread.start()

    def close(self, timeout: float = 2.0) -> None:
        async def close_sessions() -> None:
            await asyncio.gather(*(session.close() for session in self.sessions), return_exceptions=True)

        if self.loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(close_sessions(), self.loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("LiveKit sessions did not close within %.1fs at exit", timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None


def _process_loop() -> _LoopThread:
    global _loop_thread
    current = _loop_thread
    if current is not None and current.pid == os.getpid():
        return current
    with _loop_lock:
        if _loop_thread is None or _loop_thread.pid != os.getpid():
            # The loop registers its self-pipe reader with the context current at creation:
            # an empty one, not the first request's (which would pin that app forever).
            _loop_thread = contextvars.Context().run(_LoopThread)
        return _loop_thread


def _forget_parent_loop() -> None:
    # The parent's loop thread does not exist in a forked child and its lock may have been
    # held at fork time: start afresh. The parent's sockets are abandoned, not closed, so
    # the parent's connections are left intact.
    global _loop_lock, _loop_thread
    _loop_lock = threading.Lock()
    _loop_thread = None


def _close_at_exit() -> None:
    current = _loop_thread
    if current is not None and current.pid == os.getpid():
        current.close()


os.register_at_fork(after_in_child=_forget_parent_loop)
atexit.register(_close_at_exit)


#: ``asyncio.timeout`` where it exists (Python 3.11+).
_TIMEOUT_SCOPE = getattr(asyncio, "timeout", None)

#: Seconds one signed API token is reused; livekit-api signs them valid for 6 hours.
TOKEN_REUSE_SECONDS = 600.0
#: Distinct grant sets (one per room, plus roomList) kept before the cache starts over.
_TOKEN_CACHE_SIZE = 1024


class TokenCachingRoomService(RoomService):
    """livekit-api's RoomService, reusing each signed API token for ten minutes.

    livekit-api signs a fresh JWT for every call (about 0.1 ms of HS256 and dataclass
    copying, measured); a moderation request makes two or three calls whose grants
    repeat, so one token per grant set is signed and reused well within its lifetime.
    Overrides the protected ``Service._auth_header`` (livekit-api 1.x, pinned < 2).
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, api_key: str, api_secret: str) -> None:
        # failover=False: one attempt per call, so a call never outlives the timeout.
        super().__init__(session, url, api_key, api_secret, failover=False)
        self._headers: dict[str, tuple[float, dict[str, str]]] = {}

    def _auth_header(self, grants: VideoGrants | None, sip: SIPGrants | None = None) -> dict[str, str]:
        if grants is None or sip is not None:
            return super()._auth_header(grants, sip)
        key = repr(grants)
        now = time.monotonic()
        cached = self._headers.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._headers) >= _TOKEN_CACHE_SIZE:
            self._headers.clear()
        header = super()._auth_header(grants, sip)
        self._headers[key] = (now + TOKEN_REUSE_SECONDS, header)
        return header


class RoomCalls:
    """The RoomService as one request uses it: every call bounded by the timeout and recorded.

    livekit-api passes ``timeout=None`` to each ``aiohttp`` request, which disables the
    session's own timeout (livekit-api 1.2.2, ``twirp_client.py``), so the bound is
    applied here, around each call.
    """

    def __init__(self, rooms: RoomService, timeout: float, made: list[str]) -> None:
        self.rooms = rooms
        self.timeout = timeout
        self.made = made

    async def call(self, method: str, request: Awaitable[T]) -> T:
        """Await one RoomService ``request``, recording ``method`` in :attr:`made`."""
        self.made.append(method)
        if _TIMEOUT_SCOPE is None:
            return await asyncio.wait_for(request, self.timeout)
        # Unlike wait_for on 3.11, a timeout scope wraps the call in no extra task.
        async with _TIMEOUT_SCOPE(self.timeout):
            return await request


class LiveKitClient:
    """Runs RoomService operations for one app on the process's event loop.

    ``timeout`` bounds every single LiveKit call (connect, send and read), in seconds.
    """

    def __init__(self, url: str, api_key: str, api_secret: str, timeout: float) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self.timeout = timeout
        self._rooms: RoomService | None = None
        self._session: aiohttp.ClientSession | None = None
        self._rooms_pid: int | None = None

    def _room_service(self, owner: _LoopThread) -> RoomService:
        # Called on the loop thread only, so no lock: one RoomService per process and app.
        if self._rooms is None or self._rooms_pid != owner.pid:
            # No session timeout: livekit-api overrides it per request; RoomCalls bounds calls.
            session = aiohttp.ClientSession()
            self._rooms = TokenCachingRoomService(session, self._url, self._api_key, self._api_secret)
            self._session = session
            self._rooms_pid = owner.pid
            owner.sessions.add(session)
        return self._rooms

    async def _close_session(self, owner: _LoopThread) -> None:
        # On the loop thread, like _room_service, so the two never race.
        if self._rooms_pid != owner.pid:
            return  # a forked child's copy of its parent's session: not ours to close
        session, self._session, self._rooms = self._session, None, None
        if session is not None:
            owner.sessions.discard(session)
            await session.close()

    def close(self, wait: bool = True) -> None:
        """Close the pooled LiveKit connections of this client.

        Safe to call more than once and from any thread; a later request opens new
        connections. ``wait=False`` only schedules the close (used when an app is
        garbage-collected, which may happen on any thread).
        """
        owner = _loop_thread
        if owner is None or owner.pid != os.getpid() or owner.loop.is_closed() or self._session is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._close_session(owner), owner.loop)
        except RuntimeError:  # the loop closed meanwhile (interpreter exit)
            return
        if wait and threading.current_thread() is not owner.thread:
            try:
                future.result(_CLOSE_WAIT)
            except concurrent.futures.TimeoutError:
                logger.warning("LiveKit connections did not close within %.1fs", _CLOSE_WAIT)

    def run(self, operation: Callable[[RoomCalls], Awaitable[T]], made: list[str]) -> T:
        """Run ``operation(room_calls)`` on the shared loop and return its result.

        The names of the LiveKit methods it called are appended to ``made``, also when
        it fails. Exceptions raised by the operation propagate to the caller's thread.
        """
        owner = _process_loop()

        async def bound() -> T:
            return await operation(RoomCalls(self._room_service(owner), self.timeout, made))

        # Submitted from an empty context: the loop would otherwise copy the request's
        # contextvars (Flask's request and app contexts) into the task and into every
        # callback aiohttp schedules from it, keeping the app alive as long as the session.
        future = contextvars.Context().run(asyncio.run_coroutine_threadsafe, bound(), owner.loop)
        # Every call inside is bounded by RoomCalls' timeout; this bound only guards
        # against a wedged loop so a request thread can never wait forever.
        try:
            return future.result(self.timeout * 3 + _HANDOFF_MARGIN)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise asyncio.TimeoutError("LiveKit operation did not finish in time") from None
