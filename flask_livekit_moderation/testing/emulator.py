"""``LiveKitEmulator``: a real-HTTP stand-in for LiveKit's twirp RoomService.

It answers ``POST /twirp/livekit.RoomService/{Method}`` exactly the way a single
LiveKit node does (same statuses, twirp codes, messages and plain-text 401s), so
code tested against it behaves the same against production.  The behaviour is
read from the public source of livekit/livekit (``pkg/service/auth.go``,
``roomservice.go``, ``roommanager.go``, ``localstore.go``, ``errors.go``,
``utils.go``, ``server.go``), livekit/protocol (``livekit_room.twirp.go``,
``auth/verifier.go``), livekit/psrpc (``errors.go``, ``client.go``) and
golang-jwt/jwt v5.3.1 (``errors.go``, ``validator.go``).

Design, for speed: one background thread runs an asyncio loop with a low-level
``aiohttp.web.Server``; simulated waits are ``asyncio.sleep`` with no lock held,
and the state lock is only taken for short lookup-and-change sections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api import TokenVerifier, VideoGrants
from livekit.protocol import models
from livekit.protocol import room as room_pb

from .faults import TWIRP_STATUS, Fault, FaultPlan
from .state import MAX_NAME_BYTES, EmulatorState, TrackLike, _copy

__all__ = ["CallRecord", "LiveKitEmulator"]

TWIRP_PREFIX = "/twirp/livekit.RoomService/"
CONTROL_PREFIX = "/_emulator/"

# LiveKit's default limits (pkg/config/config.go).
MAX_METADATA_SIZE = 512 * 1024
MAX_ATTRIBUTES_SIZE = 64 * 1024
MAX_PARTICIPANT_NAME_LENGTH = 256

# Texts of pkg/service/auth.go; HandleError writes them as the plain-text body.
ERR_MISSING_AUTHORIZATION = "invalid authorization header. Must start with Bearer "
ERR_INVALID_TOKEN = "invalid authorization token"
ERR_INVALID_API_KEY = "invalid API key"
ERR_PERMISSION_DENIED = "permissions denied"

# Signing methods golang-jwt knows; any other "alg" fails ParseAPIToken.
_GO_JWT_ALGS = frozenset(
    "HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 ES512 PS256 PS384 PS512 EdDSA none".split()
)
_JWT_LEEWAY = 60.0  # protocol auth/verifier.go tokenLeeway == TokenVerifier's default
_GARBAGE = b"\xff" * 16  # an over-long varint: no protobuf message decodes it


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator received on a twirp path.

    ``request`` is the decoded protobuf (``None`` when it could not be decoded or
    the call never got that far); ``grants`` the verified ``VideoGrants`` (``None``
    when authentication failed or no token was sent); ``status`` the HTTP status
    sent (``None`` if the connection was dropped or the emulator stopped first);
    ``code`` the twirp error code (``None`` on success and on plain-text 401s);
    ``message`` the twirp ``msg`` or plain-text body of an error; ``fault`` the
    injected fault kind that shaped the answer, if any.  ``started``/``finished``
    are ``time.monotonic()`` when the request arrived and when the answer was
    handed to the socket (simulated latency included).
    """

    method: str
    request: Message | None
    grants: VideoGrants | None
    status: int | None
    code: str | None
    started: float
    finished: float
    message: str = ""
    fault: str | None = None

    @property
    def duration(self) -> float:
        """Seconds the emulator spent on the call."""
        return self.finished - self.started

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (used by the ``/_emulator/calls`` control route)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("request", "grants")}
        out["request"] = (
            None
            if self.request is None
            else json_format.MessageToDict(self.request, preserving_proto_field_name=True)
        )
        out["grants"] = None if self.grants is None else asdict(self.grants)
        return out


class _TwirpError(Exception):
    """A twirp error answer; ``delay`` seconds pass before it is sent."""

    def __init__(self, code: str, msg: str, delay: float = 0.0, meta: dict | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.delay = delay
        self.meta = meta


class _AuthError(Exception):
    """A plain-text 401 from LiveKit's APIKeyAuthMiddleware."""


def _denied() -> _TwirpError:
    # roomservice.go: twirpAuthError(ErrPermissionDenied)
    return _TwirpError("unauthenticated", ERR_PERMISSION_DENIED)


def _invalid_argument(argument: str, limit: int) -> _TwirpError:
    # twirp.InvalidArgumentError(argument, validationMsg): msg "<argument> <validationMsg>"
    return _TwirpError("invalid_argument", f"{argument} {limit}", meta={"argument": argument})


def _has_admin(grants: VideoGrants | None, room: str) -> bool:
    # auth.go EnsureAdminPermission: roomAdmin AND exact room match.
    return grants is not None and bool(grants.room_admin) and grants.room == room


_REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateRoom": room_pb.CreateRoomRequest,
    "ListRooms": room_pb.ListRoomsRequest,
    "DeleteRoom": room_pb.DeleteRoomRequest,
    "ListParticipants": room_pb.ListParticipantsRequest,
    "GetParticipant": room_pb.RoomParticipantIdentity,
    "RemoveParticipant": room_pb.RoomParticipantIdentity,
    "MutePublishedTrack": room_pb.MuteRoomTrackRequest,
    "UpdateParticipant": room_pb.UpdateParticipantRequest,
    "UpdateRoomMetadata": room_pb.UpdateRoomMetadataRequest,
}

#: RoomService methods a real server has but this stand-in does not model.
_UNMODELLED = frozenset(
    {"UpdateSubscriptions", "SendData", "ForwardParticipant", "MoveParticipant", "PerformRpc"}
)


class LiveKitEmulator:
    """A LiveKit RoomService stand-in served over real HTTP on a background thread.

    Use as a context manager or with :meth:`start` / :meth:`stop`; point a
    ``livekit.api.LiveKitAPI(emu.url, emu.api_key, emu.api_secret)`` at it.

    :param latency: seconds added to every RoomService call (simulated round trip).
    :param mute_unknown_delay: seconds before MutePublishedTrack on an unknown room or
        participant answers ``unavailable`` (psrpc's default affinity timeout is 1 s).
    :param enable_remote_unmute: LiveKit's ``room.enable_remote_unmute`` (off by default).
    :param max_calls: keep only the newest N call records (None = all); per-method
        counts (:meth:`call_counts`) always cover every call.  Long soak runs need it.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        latency: float = 0.0,
        mute_unknown_delay: float = 1.0,
        enable_remote_unmute: bool = False,
        max_calls: int | None = None,
    ) -> None:
        self.api_key: str = api_key or "APIemu" + secrets.token_hex(6)
        self.api_secret: str = api_secret or secrets.token_urlsafe(32)
        self.host = host
        self.port = port
        self.mute_unknown_delay = float(mute_unknown_delay)
        self.enable_remote_unmute = enable_remote_unmute
        self.faults = FaultPlan(latency)
        self.state = EmulatorState()
        self._verifier = TokenVerifier(self.api_key, self.api_secret)
        # livekit-api mints one token per call but the JWT only changes once a
        # second, so most calls present a token already verified.
        self._token_cache: dict[str, tuple[VideoGrants, float]] = {}
        self._calls: list[CallRecord] = []
        self._counts: Counter[str] = Counter()
        self.max_calls = max_calls
        self._calls_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._web_server: web.Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: dict[str, Callable[[Any, VideoGrants | None], Message]] = {
            "CreateRoom": self._create_room,
            "ListRooms": self._list_rooms,
            "DeleteRoom": self._delete_room,
            "ListParticipants": self._list_participants,
            "GetParticipant": self._get_participant,
            "RemoveParticipant": self._remove_participant,
            "MutePublishedTrack": self._mute_published_track,
            "UpdateParticipant": self._update_participant,
            "UpdateRoomMetadata": self._update_room_metadata,
        }

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveKitEmulator:
        """Start listening (blocks until the socket is bound); returns self."""
        if self.running:
            return self
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
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"LiveKitEmulator:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    async def _bootstrap(self) -> None:
        self._stopping = asyncio.Event()
        self._web_server = web.Server(self._dispatch, access_log=None)
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
        self._stopping.set()  # releases hang_next(seconds=None) waits
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        # close() ends idle keep-alive connections at once and lets busy ones finish their
        # answer; shutdown() alone would hold every idle pooled connection for ``timeout``.
        for conn in list(self._web_server.connections):
            conn.close()
        await self._web_server.shutdown(timeout)

    def __enter__(self) -> LiveKitEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Awaitable[Any]) -> Any:
        if self._loop is None:
            raise RuntimeError("emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    # ------------------------------------------------------- going offline
    def go_down(self) -> None:
        """Stop accepting connections (clients get "connection refused") and
        close every open connection, as if the server process died."""
        self._run(self._go_down())

    async def _go_down(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        assert self._web_server is not None
        for conn in list(self._web_server.connections):
            conn.force_close()

    def come_up(self) -> None:
        """Listen again on the same port after :meth:`go_down`."""
        self._run(self._come_up())

    async def _come_up(self) -> None:
        if self._listener is None:
            await self._listen()

    @contextlib.contextmanager
    def down(self) -> Iterator[LiveKitEmulator]:
        """``with emu.down(): ...`` — the server is unreachable inside the block."""
        self.go_down()
        try:
            yield self
        finally:
            self.come_up()

    # ------------------------------------------------------------ state API
    def add_room(self, name: str, metadata: str = "", **kwargs: int) -> models.Room:
        """Create room ``name`` (sid ``RM_...``); kwargs: ``empty_timeout``,
        ``departure_timeout``, ``max_participants``.  Adding an existing room only
        replaces its metadata.  Returns a copy of the ``Room``."""
        return self.state.add_room(name, metadata, **kwargs)

    def add_participant(
        self,
        room: str,
        identity: str,
        name: str = "",
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
    ) -> models.ParticipantInfo:
        """Put an ACTIVE participant (sid ``PA_...``) into an existing room.

        ``tracks``: one ``TrackSpec`` / ``(type, source[, name[, muted]])`` tuple / dict
        per published track, each getting a ``TR_...`` SID; default one microphone
        AUDIO and one camera VIDEO track; ``[]`` for a non-publisher.  Raises
        ``UnknownRoomError`` (a ``KeyError``) when the room was not added first.
        """
        return self.state.add_participants(room, [identity], name=name, tracks=tracks, metadata=metadata)[0]

    def add_participants(
        self,
        room: str,
        identities: Sequence[str],
        tracks: Sequence[TrackLike] | None = None,
        metadata: str = "",
    ) -> list[models.ParticipantInfo]:
        """Bulk form of :meth:`add_participant` (one lock acquisition)."""
        return self.state.add_participants(room, identities, tracks=tracks, metadata=metadata)

    def remove_room(self, name: str) -> bool:
        """Delete a room and its participants; False if unknown."""
        return self.state.remove_room(name)

    def remove_participant(self, room: str, identity: str) -> bool:
        """Make a participant leave; False if unknown."""
        return self.state.remove_participant(room, identity)

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
        """Remove all rooms and participants (calls and faults are kept)."""
        self.state.clear()

    # ---------------------------------------------------------- call record
    @property
    def calls(self) -> list[CallRecord]:
        """Copy of the call record, in arrival order."""
        with self._calls_lock:
            return list(self._calls)

    def call_names(self) -> list[str]:
        """Method names of :attr:`calls`, in arrival order."""
        with self._calls_lock:
            return [c.method for c in self._calls]

    def call_counts(self) -> dict[str, int]:
        """Calls per method since the last :meth:`clear_calls` (not capped by ``max_calls``)."""
        with self._calls_lock:
            return dict(self._counts)

    def clear_calls(self) -> None:
        """Forget recorded calls and counts."""
        with self._calls_lock:
            self._calls.clear()
            self._counts.clear()

    def _record(self, record: CallRecord) -> None:
        with self._calls_lock:
            # Ordered by arrival, so insert before later-started calls that
            # happened to finish first.
            calls = self._calls
            i = len(calls)
            while i and calls[i - 1].started > record.started:
                i -= 1
            calls.insert(i, record)
            self._counts[record.method] += 1
            # Trim in batches so the cap costs O(1) amortised per call.
            if self.max_calls is not None and len(calls) > self.max_calls + max(16, self.max_calls // 8):
                del calls[: len(calls) - self.max_calls]

    # ------------------------------------------------------ fault injection
    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every RoomService call (or only ``method``'s) by ``seconds``."""
        self.faults.set_latency(seconds, method)

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
        http_status = status if status is not None else TWIRP_STATUS.get(code, 500)
        self.faults.push(method, Fault("fail", code=code, status=http_status, msg=msg), n)

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

    def clear_faults(self) -> None:
        """Drop queued faults and restore the constructor's latency."""
        self.faults.clear()

    # ------------------------------------------------------- HTTP dispatch
    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith(TWIRP_PREFIX):
            return await self._twirp(request, path[len(TWIRP_PREFIX) :])
        if path.startswith(CONTROL_PREFIX):
            from .control import handle_control  # local: keeps the hot path lean

            return await handle_control(self, request, path[len(CONTROL_PREFIX) :])
        # server.go: the auth middleware wraps every route, then the mux answers.
        try:
            self._authenticate(request)
        except _AuthError as exc:
            return web.Response(status=401, text=str(exc))
        if path == "/":
            return web.Response(text="OK")  # server.go healthCheck
        if path.startswith("/twirp/"):
            started = time.monotonic()
            err = _TwirpError(
                "bad_route",
                f'no handler for path "{path}"',
                meta={"twirp_invalid_route": f"{request.method} {path}"},
            )
            return self._twirp_error(err, path.rsplit("/", 1)[-1], started, None, None, None)
        return web.Response(status=404, text="404 page not found\n")  # Go http.NotFound

    async def _twirp(self, request: web.BaseRequest, method: str) -> web.StreamResponse:
        started = time.monotonic()
        req_msg: Message | None = None
        grants: VideoGrants | None = None
        fault: Fault | None = None
        try:
            body = await request.read()
            latency = self.faults.latency_for(method)
            if latency:
                await asyncio.sleep(latency)
            fault = self.faults.take(method)
            if fault is not None:
                if fault.kind == "hang":
                    await self._hang(fault.seconds)
                elif fault.kind == "fail":
                    err = _TwirpError(fault.code, fault.msg)
                    return self._twirp_error(err, method, started, None, None, fault, fault.status)
                elif fault.kind == "garbage":
                    self._record(
                        CallRecord(method, None, None, 200, None, started, time.monotonic(), "", "garbage")
                    )
                    return web.Response(body=_GARBAGE, content_type="application/protobuf")
                else:  # drop
                    if request.transport is not None:
                        request.transport.close()
                    self._record(
                        CallRecord(method, None, None, None, None, started, time.monotonic(), "", "drop")
                    )
                    return web.Response()  # never written: the transport is gone
            try:
                grants = self._authenticate(request)
            except _AuthError as exc:
                text = str(exc)
                self._record(
                    CallRecord(method, None, None, 401, None, started, time.monotonic(), text, _kind(fault))
                )
                return web.Response(status=401, text=text)
            # livekit_room.twirp.go ServeHTTP / serve<Method>: routing, then body decoding.
            if request.method != "POST":
                raise _TwirpError(
                    "bad_route",
                    f'unsupported method "{request.method}" (only POST is allowed)',
                    meta={"twirp_invalid_route": f"{request.method} {request.path}"},
                )
            handler = self._handlers.get(method)
            if handler is None:
                if method in _UNMODELLED:
                    raise _TwirpError("unimplemented", f"{method} is not modelled by LiveKitEmulator")
                raise _TwirpError(
                    "bad_route",
                    f'no handler for path "{request.path}"',
                    meta={"twirp_invalid_route": f"{request.method} {request.path}"},
                )
            ctype = request.headers.get("Content-Type", "")
            kind = ctype.split(";", 1)[0].strip().lower()
            msg_type = _REQUEST_TYPES[method]
            if kind == "application/protobuf":
                try:
                    req_msg = msg_type.FromString(body)
                except DecodeError:
                    raise _TwirpError("malformed", "the protobuf request could not be decoded") from None
                as_json = False
            elif kind == "application/json":
                try:
                    req_msg = json_format.Parse(body or b"{}", msg_type(), ignore_unknown_fields=True)
                except (json_format.ParseError, UnicodeDecodeError):
                    raise _TwirpError("malformed", "the json request could not be decoded") from None
                as_json = True
            else:
                raise _TwirpError(
                    "bad_route",
                    f'unexpected Content-Type: "{ctype}"',
                    meta={"twirp_invalid_route": f"{request.method} {request.path}"},
                )
            answer = handler(req_msg, grants)
            if as_json:
                payload = json_format.MessageToJson(
                    answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                ).encode()
                ctype_out = "application/json"
            else:
                payload = answer.SerializeToString()
                ctype_out = "application/protobuf"
            self._record(
                CallRecord(method, req_msg, grants, 200, None, started, time.monotonic(), "", _kind(fault))
            )
            return web.Response(body=payload, content_type=ctype_out)
        except _TwirpError as err:
            if err.delay:
                await asyncio.sleep(err.delay)
            return self._twirp_error(err, method, started, req_msg, grants, fault)
        except asyncio.CancelledError:
            # The emulator is stopping while this call waits: no answer goes out.
            self._record(
                CallRecord(method, req_msg, grants, None, None, started, time.monotonic(), "", _kind(fault))
            )
            raise
        except Exception as exc:  # a bug here must still look like a server error
            err = _TwirpError("internal", f"emulator error: {exc!r}")
            return self._twirp_error(err, method, started, req_msg, grants, fault)

    def _twirp_error(
        self,
        err: _TwirpError,
        method: str,
        started: float,
        req_msg: Message | None,
        grants: VideoGrants | None,
        fault: Fault | None,
        status: int | None = None,
    ) -> web.Response:
        http_status = status if status is not None else TWIRP_STATUS.get(err.code, 500)
        body: dict[str, Any] = {"code": err.code, "msg": err.msg}
        if err.meta:
            body["meta"] = err.meta
        self._record(
            CallRecord(
                method,
                req_msg,
                grants,
                http_status,
                err.code,
                started,
                time.monotonic(),
                err.msg,
                _kind(fault),
            )
        )
        # twirp writeError: errors are always JSON.
        return web.Response(
            status=http_status, body=json.dumps(body).encode(), content_type="application/json"
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

    # ---------------------------------------------------------------- auth
    def _authenticate(self, request: web.BaseRequest) -> VideoGrants | None:
        """Mirror of auth.go APIKeyAuthMiddleware; returns the grants, None when no
        token was sent (the twirp handler then answers "permissions denied"), or
        raises ``_AuthError`` with the plain-text body of the 401."""
        header = request.headers.get("Authorization", "")
        if header:
            if not header.startswith("Bearer "):
                raise _AuthError(ERR_MISSING_AUTHORIZATION)
            token = header[7:]
        else:
            # r.FormValue("access_token"): the query string for protobuf bodies.
            token = request.query.get("access_token", "")
        if not token:
            return None
        cached = self._token_cache.get(token)
        if cached is not None and time.time() < cached[1] + _JWT_LEEWAY:
            return cached[0]
        return self._verify(token)

    def _verify(self, token: str) -> VideoGrants:
        # auth.ParseAPIToken: an unverified parse to learn the API key (iss).
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
            alg = header.get("alg")
            iss = unverified.get("iss", "")
            if not isinstance(alg, str) or alg not in _GO_JWT_ALGS or not isinstance(iss, str):
                raise ValueError(alg)
            for claim in ("exp", "nbf", "iat"):
                if claim in unverified and not isinstance(unverified[claim], (int, float)):
                    raise ValueError(claim)
        except Exception:
            raise _AuthError(ERR_INVALID_TOKEN) from None
        if iss != self.api_key:
            raise _AuthError(ERR_INVALID_API_KEY)
        try:
            claims = self._verifier.verify(token)
        except jwt.InvalidAlgorithmError:
            raise _AuthError(
                f"{ERR_INVALID_TOKEN}: token signature is invalid: signing method {alg} is invalid"
            ) from None
        except jwt.InvalidSignatureError:
            raise _AuthError(
                f"{ERR_INVALID_TOKEN}: token signature is invalid: signature is invalid"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise _AuthError(f"{ERR_INVALID_TOKEN}: {_claims_error(unverified, exc)}") from None
        grants = claims.video or VideoGrants()
        if len(self._token_cache) > 4096:
            self._token_cache.clear()
        self._token_cache[token] = (grants, float(unverified["exp"]))
        return grants

    # ------------------------------------------------------------ handlers
    # Each mirrors roomservice.go (+ roommanager.go / localstore.go for a
    # single node); the order of checks is LiveKit's.
    def _create_room(self, req: room_pb.CreateRoomRequest, grants: VideoGrants | None) -> Message:
        if grants is None or not grants.room_create:
            raise _denied()
        if len(req.name.encode()) > MAX_NAME_BYTES:
            # fmt.Errorf("%w: max length %d", ErrRoomNameExceedsLimits, ...) reaches twirp
            # through psrpcError.As, which keeps only the psrpc message.
            raise _TwirpError("invalid_argument", "room name length exceeds limits")
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        with self.state.lock:
            room = self.state.rooms.get(req.name)
            if room is None:
                room = self.state.new_room_locked(
                    req.name, req.metadata, req.empty_timeout, req.departure_timeout, req.max_participants
                )
            return _copy(room)

    def _list_rooms(self, req: room_pb.ListRoomsRequest, grants: VideoGrants | None) -> Message:
        if grants is None or not grants.room_list:
            raise _denied()
        resp = room_pb.ListRoomsResponse()
        with self.state.lock:
            rooms = self.state.rooms
            if req.names:
                wanted = [rooms[n] for n in dict.fromkeys(req.names) if n in rooms]
            else:
                wanted = list(rooms.values())
            resp.rooms.extend(wanted)  # copies
        return resp

    def _delete_room(self, req: room_pb.DeleteRoomRequest, grants: VideoGrants | None) -> Message:
        if grants is None or not grants.room_create:
            raise _denied()
        with self.state.lock:
            if not self.state.delete_room_locked(req.room):
                raise _TwirpError("not_found", "requested room does not exist")
        return room_pb.DeleteRoomResponse()

    def _list_participants(self, req: room_pb.ListParticipantsRequest, grants: VideoGrants | None) -> Message:
        if not _has_admin(grants, req.room):
            raise _denied()
        resp = room_pb.ListParticipantsResponse()
        with self.state.lock:
            resp.participants.extend(self.state.participants.get(req.room, {}).values())
        return resp

    def _known_participant_locked(self, room: str, identity: str) -> models.ParticipantInfo:
        # roomservice.go: GetParticipant / UpdateParticipant answer ErrParticipantNotFound.
        p = self.state.participant_locked(room, identity)
        if p is None:
            raise _TwirpError("not_found", "participant does not exist")
        return p

    def _get_participant(self, req: room_pb.RoomParticipantIdentity, grants: VideoGrants | None) -> Message:
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            p = self._known_participant_locked(req.room, req.identity)
            return _copy(p)

    def _remove_participant(
        self, req: room_pb.RoomParticipantIdentity, grants: VideoGrants | None
    ) -> Message:
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            if not self.state.remove_participant_locked(req.room, req.identity):
                raise _TwirpError("not_found", "participant does not exist")
        return room_pb.RemoveParticipantResponse()

    def _mute_published_track(self, req: room_pb.MuteRoomTrackRequest, grants: VideoGrants | None) -> Message:
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            p = self.state.participant_locked(req.room, req.identity)
            if p is None:
                # The psrpc request goes to a participant topic nobody serves.
                raise _TwirpError("unavailable", "no response from servers", delay=self.mute_unknown_delay)
            # roommanager.go checks remote unmute only after finding the participant.
            if not req.muted and not self.enable_remote_unmute:
                raise _TwirpError("failed_precondition", "remote unmute not enabled")
            resp = room_pb.MuteRoomTrackResponse()
            for track in p.tracks:
                if track.sid == req.track_sid:
                    track.muted = req.muted
                    resp.track.CopyFrom(track)
                    break
            return resp

    def _update_participant(
        self, req: room_pb.UpdateParticipantRequest, grants: VideoGrants | None
    ) -> Message:
        # roomservice.go validates sizes before the permission check.
        if len(req.name.encode()) > MAX_PARTICIPANT_NAME_LENGTH:
            raise _invalid_argument("name length exceeds limits", MAX_PARTICIPANT_NAME_LENGTH)
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        if sum(len(k.encode()) + len(v.encode()) for k, v in req.attributes.items()) > MAX_ATTRIBUTES_SIZE:
            raise _invalid_argument("attribute size exceeds limits", MAX_ATTRIBUTES_SIZE)
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            p = self._known_participant_locked(req.room, req.identity)
            # participant.UpdateMetadata: empty name/metadata mean "unchanged".
            if req.name:
                p.name = req.name
            if req.metadata:
                p.metadata = req.metadata
            for k, v in req.attributes.items():
                if v:
                    p.attributes[k] = v
                else:
                    p.attributes.pop(k, None)
            if req.HasField("permission"):
                p.permission.CopyFrom(req.permission)
            p.version += 1
            return _copy(p)

    def _update_room_metadata(
        self, req: room_pb.UpdateRoomMetadataRequest, grants: VideoGrants | None
    ) -> Message:
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            room = self.state.rooms.get(req.room)
            if room is None:
                raise _TwirpError("not_found", "requested room does not exist")
            room.metadata = req.metadata
            return _copy(room)

    def __repr__(self) -> str:
        return f"<LiveKitEmulator {self.url} running={self.running}>"


def _kind(fault: Fault | None) -> str | None:
    return None if fault is None else fault.kind


def _claims_error(claims: dict, exc: Exception) -> str:
    """golang-jwt v5.3.1's text for a claims failure (validator.go joins several with ", ")."""
    now = time.time()
    errs = []
    exp = claims.get("exp")
    if exp is None:
        errs.append("token is missing required claim: exp claim is required")
    elif now >= exp + _JWT_LEEWAY:
        errs.append("token is expired")
    nbf = claims.get("nbf")
    if nbf is not None and now < nbf - _JWT_LEEWAY:
        errs.append("token is not valid yet")
    if not errs:  # a PyJWT-only rule (e.g. iat in the future); say what PyJWT said
        errs.append(str(exc))
    return "token has invalid claims: " + ", ".join(errs)
