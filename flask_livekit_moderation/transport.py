"""LiveKit's Twirp calls over kept-alive HTTP/1.1 connections of one event loop.

livekit-api's ``RoomService`` builds each request (the livekit-protocol message, the grants
and the signed API token); :class:`TwirpTransport` stands where its ``TwirpClient`` stands
(``Service._client``) and sends it. Why not livekit-api's aiohttp session: measured against
the stand-in in its own process, one ListRooms costs the calling process about 350 µs of CPU
through livekit-api's ``TwirpClient`` on aiohttp (with a token signed per call; about 250 µs
without) and about 150 µs with this transport (h11 on an asyncio protocol), the same calls
and messages; the saving is what lets a request cost no more CPU than a hand-written route,
and a room mute of 1,000 tracks fit in its round trips (docs/performance.md). h11 (the HTTP/1.1
state machine of python-hyper) does the protocol; this module only pools its connections.

An answer is turned into a result or an error exactly as livekit-api's ``TwirpClient.request``
does (livekit-api 1.2, ``twirp_client.py``, one attempt: ``failover=False``): a 200 is the
response message; any other status is a :class:`~livekit.api.TwirpError` with the ``code``,
``msg`` and ``meta`` of its JSON body (``unknown`` and ``""`` when the body is no JSON
object). Two stricter rules stay ours: a redirect is never followed and a 200 must be
protobuf (:class:`UnusableAnswer`).

Transport failures are told apart by how far the exchange got, which decides what a failed
write answers (:mod:`.client`): :class:`ConnectFailed` (nothing sent), :class:`NoAnswer`
(the connection ended before the first byte of an answer: a kept-alive connection the
server had closed, safe to send again once on a new one) and :class:`CutAnswer` (the answer
began and broke off: the request reached LiveKit).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import h11
from google.protobuf.message import Message
from livekit.api import TwirpError
from livekit.api.version import __version__ as livekit_api_version

T = TypeVar("T", bound=Message)

try:
    from livekit.api.twirp_client import REQUEST_ID_HEADER as _REQUEST_ID_HEADER

    #: The header carrying a fresh id per call, as the installed livekit-api sends it (its
    #: 1.2.0, the floor, sends none).
    REQUEST_ID_HEADER: str | None = _REQUEST_ID_HEADER
except ImportError:
    REQUEST_ID_HEADER = None

#: What livekit-api sends as its User-Agent, so LiveKit sees the same client.
USER_AGENT = f"livekit-server-sdk-python/{livekit_api_version}"
#: Seconds an idle connection is kept (aiohttp's default keep-alive, which livekit-api used).
IDLE_SECONDS = 15.0
#: Idle connections kept per transport; more are closed when they come back.
IDLE_LIMIT = 100
#: livekit-api's test of a JSON error body's Content-Type (aiohttp's ``json_re``, matched on
#: the lower-cased header).
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+?\+)?json")


#: A header name (RFC 9110 ``token``).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: What h11 is told of each request (see _Connection.exchange).
_SENT = h11.Request(method="POST", target="/", headers=[("Host", "livekit"), ("Content-Length", "0")])
_SENT_END = h11.EndOfMessage()


class TransportError(Exception):
    """The exchange with LiveKit failed below HTTP."""


class ConnectFailed(TransportError):
    """No connection could be opened: nothing was sent."""


class NoAnswer(TransportError):
    """The connection ended before the first byte of an answer."""


class CutAnswer(TransportError):
    """The answer began and then broke off, or was no HTTP."""


class UnusableAnswer(Exception):
    """LiveKit's HTTP answer is none a LiveKit server gives: a redirect, or a 200 that is not
    protobuf."""

    def __init__(self, reason: str, location: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location


class _Answer(NamedTuple):
    status: int
    #: By lower-cased name (h11 lowers them); of a repeated header the first, as aiohttp's
    #: ``headers.get``, which livekit-api reads, gives.
    headers: dict[bytes, bytes]
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time."""

    def __init__(self) -> None:
        self.http = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[_Answer] | None = None
        self.answered = False  # a byte of the current answer arrived
        self.closed = False
        self.idle_since = 0.0
        self._status = 0
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.http.receive_data(data)
            self._read()
        except h11.ProtocolError as exc:
            self._fail(CutAnswer(f"no HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        try:
            self.http.receive_data(b"")
            self._read()
        except h11.ProtocolError:
            pass
        self._fail(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc)

    def _read(self) -> None:
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status, self._headers, self._body = event.status_code, dict(reversed(event.headers)), []
            elif isinstance(event, h11.Data):
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                waiter = self.waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(_Answer(self._status, self._headers, b"".join(self._body)))
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._fail(None)
                return

    def _fail(self, exc: BaseException | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            error = CutAnswer if self.answered else NoAnswer
            waiter.set_exception(error(f"connection closed ({exc!r})" if exc else "connection closed"))
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes) -> _Answer:
        """Send ``request`` and read its answer; the connection is then ready for the next
        exchange, or ``closed``."""
        assert self.transport is not None
        # h11 reads the answer; it is told that a POST went out, which is all that decides how
        # an answer is framed (the bytes of the request are written as they are).
        self.http.send(_SENT)
        self.http.send(_SENT_END)
        self.waiter = asyncio.get_running_loop().create_future()
        self.answered = False
        self.transport.write(request)
        try:
            answer = await self.waiter
        except BaseException:
            # Cancelled by the deadline, or broken: this connection is out of step for good.
            self.closed = True
            self.transport.abort()
            raise
        finally:
            self.waiter = None
        # Reusable only when both sides finished this exchange and neither is closing.
        finished = self.http.our_state is h11.DONE and self.http.their_state is h11.DONE
        if finished and not self.closed and not self.transport.is_closing():
            self.http.start_next_cycle()
        else:
            self.close()
        return answer

    def close(self) -> None:
        """Close it now (no exchange in progress)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class TwirpTransport:
    """Sends livekit-api's Twirp requests to one LiveKit URL over pooled connections.

    Use on one event loop only (its connections belong to it). ``reuse=False`` opens a new
    connection per call and closes it after (for the one retry after a stale connection).
    """

    def __init__(
        self, url: str, *, reuse: bool = True, prefix: str = "twirp", package: str = "livekit"
    ) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.replace("ws", "http", 1) if parts.scheme.startswith("ws") else parts.scheme
        secure = scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if secure else 80)
        self._authority = parts.netloc.rsplit("@", 1)[-1]
        if not self._authority or any(c in url for c in "\r\n\t "):
            raise ValueError(f"not a LiveKit URL: {url!r}")
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if secure else None
        self._base = f"{parts.path.rstrip('/')}/{prefix}/{package}."
        self._reuse = reuse
        self._idle: list[_Connection] = []

    async def request(
        self,
        service: str,
        method: str,
        data: Message,
        headers: dict[str, str],
        response_class: type[T],
        *,
        timeout: Any = None,
    ) -> T:
        """``TwirpClient.request``'s contract: the answer as ``response_class``, or a TwirpError."""
        body = data.SerializeToString()
        # The request is written here, not by h11 (whose checks of every header cost as much
        # as the rest of a call, measured): its parts are livekit-api's headers, checked below,
        # and ours, checked once in __init__.
        lines = [f"POST {self._base}{service}/{method} HTTP/1.1\r\nHost: {self._authority}\r\n"]
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
                raise ValueError(f"an invalid header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        if REQUEST_ID_HEADER is not None:
            lines.append(f"{REQUEST_ID_HEADER}: {uuid.uuid4()}\r\n")
        lines.append(
            f"User-Agent: {USER_AGENT}\r\nContent-Type: application/protobuf\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        # The most recently used idle connection still open and fresh; those passed over close.
        connection: _Connection | None = None
        now = time.monotonic()
        while self._idle and connection is None:
            connection = self._idle.pop()
            if connection.closed or now - connection.idle_since >= IDLE_SECONDS:
                connection.close()
                connection = None
        if connection is None:
            connection = await self._connect()
        answer = await connection.exchange("".join(lines).encode("latin-1") + body)
        # Back to the pool when it can carry the next exchange.
        if self._reuse and not connection.closed and len(self._idle) < IDLE_LIMIT:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return _result(answer, response_class)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None,
            )
        except OSError as exc:  # refused, unreachable, TLS handshake failed
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        return connection

    async def close(self) -> None:
        """Close the idle connections (those in use close when their exchange ends)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        if idle:
            await asyncio.sleep(0)  # let the transports finish closing on this loop


def _result(answer: _Answer, response_class: type[T]) -> T:
    status = answer.status
    if 300 <= status < 400:
        raise UnusableAnswer(f"a {status} redirect", answer.headers.get(b"location", b"").decode("latin-1"))
    content_type = answer.headers.get(b"content-type", b"").decode("latin-1").lower()
    if status == 200:
        content_type = content_type.split(";", 1)[0].strip()
        if content_type != "application/protobuf":
            raise UnusableAnswer(f"a 200 with Content-Type {content_type or 'application/octet-stream'!r}")
        return response_class.FromString(answer.body)
    # twirp_client.py: "Twirp encodes errors as JSON regardless of content type", read with
    # aiohttp's ``resp.json()`` (which wants a JSON Content-Type); anything else counts as {}.
    error: Any = {}
    if _JSON_TYPE.match(content_type) and answer.body.strip():
        try:
            error = json.loads(answer.body.strip().decode("utf-8"))
        except ValueError:
            error = {}
    if not isinstance(error, dict):
        error = {}
    raise TwirpError(
        error.get("code", "unknown"), error.get("msg", ""), status=status, metadata=error.get("meta")
    )
