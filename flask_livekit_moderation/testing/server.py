"""HTTP side of the stand-in: server lifecycle on a background thread, routing of
each request (twirp, control, LiveKit's other paths), injected faults and the call
record.

Routing mirrors livekit/livekit ``pkg/service/server.go`` (middleware order, mux)
and the generated twirp server ``livekit_room.twirp.go`` (livekit/protocol).

Design, for speed: one background thread runs an asyncio loop with a low-level
``aiohttp.web.Server``; simulated waits are ``asyncio.sleep`` with no lock held.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf.message import Message
from livekit.api import VideoGrants

from .faults import Fault, FaultPlan
from .records import CallLog, CallRecord
from .roomservice import REQUEST_TYPES, UNMODELLED, RoomService
from .tokens import AuthError, TokenChecker
from .twirp import TwirpError, bad_route, decode_request, encode_answer, error_response

__all__ = ["CONTROL_PREFIX", "TWIRP_PREFIX", "ControlHandler", "HttpServer"]

TWIRP_PREFIX = "/twirp/livekit.RoomService/"
CONTROL_PREFIX = "/_emulator/"
_GARBAGE = b"\xff" * 16  # an over-long varint: no protobuf message decodes it
#: pkg/config/config.go ``limit.max_api_request_body_size`` default (10 MiB).
MAX_API_REQUEST_BODY_SIZE = 10 << 20
_TOO_LARGE = "request body too large"  # pkg/service/utils.go ErrRequestBodyTooLarge

#: Serves one ``/_emulator/<route>`` request.
ControlHandler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]

_T = TypeVar("_T")


#: RoomService methods that only read: abandoned when their client leaves before the answer.
_READS = frozenset({"ListRooms", "ListParticipants", "GetParticipant"})


class HttpServer:
    """Serves a :class:`RoomService` over HTTP on its own thread and event loop."""

    def __init__(
        self,
        service: RoomService,
        tokens: TokenChecker,
        faults: FaultPlan,
        calls: CallLog,
        host: str = "127.0.0.1",
        port: int = 0,
        keepalive_timeout: float = 75.0,
    ) -> None:
        if keepalive_timeout <= 0:
            raise ValueError("keepalive_timeout must be > 0")
        self.service = service
        self.keepalive_timeout = float(keepalive_timeout)
        self.tokens = tokens
        self.faults = faults
        self.calls = calls
        self.host = host
        self.port = port
        self.control: ControlHandler | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._web_server: web.Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stopping: asyncio.Event | None = None
        # Set while a black hole is open; set() ends it and releases the held calls.
        self._hole: asyncio.Event | None = None
        #: RoomService calls received and not answered yet (read on the loop thread).
        self.in_flight = 0
        #: Tasks of the calls a black hole holds.
        self._held: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start listening (blocks until the socket is bound or binding failed)."""
        if self.running:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bootstrap())
            except BaseException as exc:  # report bind errors to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
                # Handlers still sleeping out a latency or a timed hang past stop()'s grace
                # period: end them here, or asyncio reports each as destroyed while pending.
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"LiveKitEmulator:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    async def _bootstrap(self) -> None:
        self._stopping = asyncio.Event()
        # aiohttp's keep-alive timer closes an idle connection after keepalive_timeout,
        # as a real server does (Go's http.Server IdleTimeout); a pooled client
        # connection can then be stale when it is reused.
        self._web_server = web.Server(
            self._dispatch, access_log=None, keepalive_timeout=self.keepalive_timeout
        )
        await self._listen()

    async def _listen(self) -> None:
        assert self._web_server is not None
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._web_server, self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    def stop(self, timeout: float = 0.25) -> None:
        """Stop the server; in-flight calls get ``timeout`` seconds to finish."""
        if not self.running or self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        with contextlib.suppress(Exception):
            fut.result(timeout + 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._thread = None
        self._loop = None

    async def _shutdown(self, timeout: float) -> None:
        assert self._stopping is not None and self._web_server is not None
        self._stopping.set()  # releases hang_next(seconds=None) waits and black holes
        if self._held:
            # Let the held calls wake and record themselves before their connections go
            # (older aiohttp cancels a handler on close, and a cancelled one may never resume).
            await asyncio.wait(list(self._held), timeout=timeout)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        # close() ends idle keep-alive connections at once and lets busy ones finish their
        # answer; shutdown() alone would hold every idle pooled connection for ``timeout``.
        for conn in list(self._web_server.connections):
            conn.close()
        await self._web_server.shutdown(timeout)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the server's loop from another thread and return its result."""
        if self._loop is None:
            raise RuntimeError("emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def idle(self) -> bool:
        """After one pass of the loop (reading what already arrived): no call in flight."""
        await asyncio.sleep(0)
        return self.in_flight == 0

    # ------------------------------------------------------- going offline
    async def go_down(self) -> None:
        """Stop listening and close every open connection, as if the process died."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        assert self._web_server is not None
        for conn in list(self._web_server.connections):
            conn.force_close()

    async def come_up(self) -> None:
        """Listen again on the same port after :meth:`go_down`."""
        if self._listener is None:
            await self._listen()

    # ---------------------------------------------------------- black hole
    @property
    def black_hole_open(self) -> bool:
        """True while twirp requests are swallowed."""
        return self._hole is not None

    async def start_black_hole(self) -> None:
        """From now on accept and read every twirp request but never answer it."""
        if self._hole is None:
            self._hole = asyncio.Event()

    async def end_black_hole(self) -> None:
        """Close the held connections without an answer; later calls are served."""
        hole, self._hole = self._hole, None
        if hole is not None:
            hole.set()

    async def _swallow(self, request: web.BaseRequest, hole: asyncio.Event) -> web.StreamResponse:
        started = time.monotonic()
        method = request.path.rsplit("/", 1)[-1]
        assert self._stopping is not None
        task = asyncio.current_task()
        if task is not None:
            self._held.add(task)
        try:
            await _read_body(request)
            ends = [asyncio.ensure_future(hole.wait()), asyncio.ensure_future(self._stopping.wait())]
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in ends:
                    waiter.cancel()
            if request.transport is not None:
                request.transport.close()
        finally:
            self._record(method, None, None, None, None, started, "", "black_hole")
            if task is not None:
                self._held.discard(task)
        return web.Response()  # never written: the transport is gone

    # ------------------------------------------------------------- routing
    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX) and self.control is not None:
            return await self.control(request, path[len(CONTROL_PREFIX) :])
        # server.go middlewares, in order: RemoveDoubleSlashes, RequestBodyLimiter
        # (413 on a declared size over the limit), APIKeyAuthMiddleware, then the mux.
        if path.startswith("//"):
            path = path[1:]
        if (request.content_length or 0) > MAX_API_REQUEST_BODY_SIZE:
            return web.Response(status=413, text=_TOO_LARGE)
        hole = self._hole
        if path.startswith("/twirp/") and (hole is not None or path.startswith(TWIRP_PREFIX)):
            self.in_flight += 1
            try:
                if hole is not None:
                    return await self._swallow(request, hole)
                return await self._twirp(request, path, path[len(TWIRP_PREFIX) :])
            finally:
                self.in_flight -= 1
        # server.go: the auth middleware wraps every route, then the mux answers.
        try:
            self._authenticate(request)
        except AuthError as exc:
            return web.Response(status=401, text=str(exc))
        if path == "/":
            return web.Response(text="OK")  # server.go healthCheck
        if path.startswith("/twirp/"):
            started = time.monotonic()
            err = bad_route(f'no handler for path "{path}"', request.method, path)
            return self._error(err, path.rsplit("/", 1)[-1], started, None, None, None)
        return web.Response(status=404, text="404 page not found\n")  # Go http.NotFound

    def _authenticate(self, request: web.BaseRequest) -> VideoGrants | None:
        return self.tokens.authenticate(
            request.headers.get("Authorization", ""), request.query.get("access_token", "")
        )

    async def _twirp(self, request: web.BaseRequest, path: str, method: str) -> web.StreamResponse:
        started = time.monotonic()
        req_msg: Message | None = None
        grants: VideoGrants | None = None
        fault: Fault | None = None
        try:
            body = await _read_body(request)
            latency = self.faults.latency_for(method)
            if latency:
                await asyncio.sleep(latency)
                if method in _READS and (request.transport is None or request.transport.is_closing()):
                    # Go's net/http cancels the request's context when the client goes away, and
                    # a read stops on it: a listing abandoned during its round trip builds no
                    # answer. (A mutation is taken as done: the late-action case of a timeout.)
                    self._record(method, None, None, None, "canceled", started, "client went away", fault)
                    return web.Response(status=499)
            fault = self.faults.take(method)
            if fault is not None:
                injected = await self._inject(request, method, fault, started)
                if injected is not None:
                    return injected
            try:
                grants = self._authenticate(request)
            except AuthError as exc:
                text = str(exc)
                self._record(method, None, None, 401, None, started, text, fault)
                return web.Response(status=401, text=text)
            # livekit_room.twirp.go ServeHTTP / serve<Method>: routing, then body decoding.
            if request.method != "POST":
                raise bad_route(
                    f'unsupported method "{request.method}" (only POST is allowed)',
                    request.method,
                    request.path,
                )
            handler = self.service.handlers.get(method)
            if handler is None:
                if method in UNMODELLED:
                    raise TwirpError("unimplemented", f"{method} is not modelled by LiveKitEmulator")
                raise bad_route(f'no handler for path "{path}"', request.method, path)
            req_msg, as_json = decode_request(
                request.headers.get("Content-Type", ""), body, REQUEST_TYPES[method], request.method, path
            )
            room_latency = self.faults.room_latency(_room_of(req_msg))
            if room_latency:
                await asyncio.sleep(room_latency)
            answer = handler(req_msg, grants)
            self._record(method, req_msg, grants, 200, None, started, "", fault)
            return encode_answer(answer, as_json)
        except TwirpError as twirp_err:
            if twirp_err.delay:
                await asyncio.sleep(twirp_err.delay)
            return self._error(twirp_err, method, started, req_msg, grants, fault)
        except asyncio.CancelledError:
            # The emulator is stopping while this call waits: no answer goes out.
            self._record(method, req_msg, grants, None, None, started, "", fault)
            raise
        except Exception as exc:  # a bug here must still look like a server error
            internal = TwirpError("internal", f"emulator error: {exc!r}")
            return self._error(internal, method, started, req_msg, grants, fault)

    async def _inject(
        self, request: web.BaseRequest, method: str, fault: Fault, started: float
    ) -> web.StreamResponse | None:
        """Apply ``fault``; returns the answer that replaces the handler's, or None
        when the call goes on normally (after a hang)."""
        if fault.kind == "hang":
            await self._hang(fault.seconds)
            return None
        if fault.kind == "fail":
            return self._error(
                TwirpError(fault.code, fault.msg), method, started, None, None, fault, fault.status
            )
        if fault.kind == "garbage":
            self._record(method, None, None, 200, None, started, "", fault)
            return web.Response(body=_GARBAGE, content_type="application/protobuf")
        if fault.kind == "redirect":
            self._record(method, None, None, fault.status, None, started, "", fault)
            return web.Response(status=fault.status, headers={"Location": fault.location})
        if fault.kind == "answer":
            self._record(method, None, None, fault.status, None, started, "", fault)
            return web.Response(
                status=fault.status, body=fault.body, headers={"Content-Type": fault.content_type}
            )
        # drop
        if request.transport is not None:
            request.transport.close()
        self._record(method, None, None, None, None, started, "", fault)
        return web.Response()  # never written: the transport is gone

    def _error(
        self,
        err: TwirpError,
        method: str,
        started: float,
        req_msg: Message | None,
        grants: VideoGrants | None,
        fault: Fault | None,
        status: int | None = None,
    ) -> web.Response:
        response = error_response(err, status)
        self._record(method, req_msg, grants, response.status, err.code, started, err.msg, fault)
        return response

    def _record(
        self,
        method: str,
        req_msg: Message | None,
        grants: VideoGrants | None,
        status: int | None,
        code: str | None,
        started: float,
        message: str,
        fault: Fault | str | None,
    ) -> None:
        self.calls.add(
            CallRecord(
                method,
                req_msg,
                grants,
                status,
                code,
                started,
                time.monotonic(),
                message,
                fault.kind if isinstance(fault, Fault) else fault,
            )
        )

    async def _hang(self, seconds: float | None) -> None:
        assert self._stopping is not None
        if seconds is None:
            await self._stopping.wait()
            raise asyncio.CancelledError  # stopping: never answer
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise asyncio.CancelledError


async def _read_body(request: web.BaseRequest) -> bytes | None:
    """The whole body, or None when it is over the limit (http.MaxBytesReader lets
    the twirp decoder fail with "failed to read request body")."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size <= MAX_API_REQUEST_BODY_SIZE:
            chunks.append(chunk)
    return None if size > MAX_API_REQUEST_BODY_SIZE else b"".join(chunks)


def _room_of(message: Message) -> str:
    """The room a RoomService request is about (ListRooms: the one name it asks for)."""
    room = getattr(message, "room", None)
    if isinstance(room, str):
        return room
    names = getattr(message, "names", None)
    return names[0] if names is not None and len(names) == 1 else ""
