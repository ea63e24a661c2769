"""LiveKit webhooks, sent the way livekit/protocol ``webhook/`` does.

Each event is POSTed to every configured URL with ``Content-Type:
application/webhook+json``; the body is the protojson of ``WebhookEvent``
(lowerCamelCase names); ``Authorization`` is a bare JWT signed with the API key and
secret, valid 5 minutes, whose claims are ``iss``, ``iat``, ``nbf``, ``exp`` and
``sha256`` (the base64 SHA-256 of the body; Go's ``auth.AccessToken`` with only
``SetValidFor`` / ``SetSha256``: no ``sub``, no ``video``), minted once per event and
reused by every attempt (``resource_url_notifier.go`` ``send``).

Delivery follows ``resource_url_notifier.go`` and ``resource_queue.go``: one queue, with
its own worker, per URL and room name (``EventKey``), so one room's events keep their
order and a slow room never holds up another; an event is dropped when its room's queue
already holds ``max_depth`` (200) events, or when it waited more than ``max_age`` (30 s)
before its turn.  Each event is tried up to 5 times (hashicorp/go-retryablehttp
``RetryMax`` 4) on connection errors, 429 and 5xx except 501 (``DefaultRetryPolicy``),
waiting 1, 2, 4, 8 s between attempts (``DefaultBackoff``: ``RetryWaitMin`` 1 s doubled,
at most ``RetryWaitMax`` 30 s), or the ``Retry-After`` of a 429/503 answer instead.

``time_scale`` multiplies every one of those waits and the 30 s age (1.0 = LiveKit's real
values; tests use e.g. 0.01).  ``delay`` holds each event back that many seconds (not
scaled) before it is queued: a real LiveKit lists a participant before it sends their
``participant_joined`` (it waits until their connection is up).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from google.protobuf import json_format
from livekit.protocol.webhook import WebhookEvent

from .state import new_sid

__all__ = ["CONTENT_TYPE", "WebhookDelivery", "WebhookSender"]

CONTENT_TYPE = "application/webhook+json"  # webhook/consts.go ContentType
_USER_AGENT = "LiveKit"  # webhook/consts.go DefaultUserAgent
_TOKEN_TTL = 5 * 60  # seconds; resource_url_notifier.go SetValidFor(5 * time.Minute)
#: go-retryablehttp defaults (LiveKit sets none of them): RetryMax 4, RetryWaitMin 1 s, RetryWaitMax 30 s.
MAX_ATTEMPTS = 5
RETRY_WAIT_MIN = 1.0
RETRY_WAIT_MAX = 30.0
#: resource_url_notifier.go DefaultResourceURLNotifierConfig.
MAX_AGE = 30.0
MAX_DEPTH = 200


@dataclass(frozen=True)
class WebhookDelivery:
    """What became of one event for one URL.

    ``status`` is the last HTTP status received (None: no answer at all);
    ``attempts`` how many POSTs were made; ``delivered`` whether one got a 2xx.
    A dropped event has ``attempts == 0`` and ``error`` ``"dropped: queue is full"`` or
    ``"dropped: age"``.  ``waits`` are the seconds slept before each retry (scaled).
    """

    id: str
    event: str
    room: str
    url: str
    status: int | None
    attempts: int
    delivered: bool
    error: str = ""
    waits: tuple[float, ...] = ()


def _retryable(status: int | None) -> bool:
    # go-retryablehttp DefaultRetryPolicy / baseRetryPolicy.
    if status is None:
        return True
    return status == 429 or (status >= 500 and status != 501)


def retry_after(value: str | None) -> float | None:
    """go-retryablehttp ``parseRetryAfterHeader``: whole seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, status: int | None, retry_after_header: str | None) -> float:
    """go-retryablehttp ``DefaultBackoff`` before retry ``attempt`` (1 = the first retry):
    a 429/503's ``Retry-After`` when it has one, else 1 s doubled per attempt, at most 30 s."""
    if status in (429, 503):
        told = retry_after(retry_after_header)
        if told is not None:
            return told
    return min(RETRY_WAIT_MIN * float(2 ** (attempt - 1)), RETRY_WAIT_MAX)


@dataclass
class _Item:
    event: WebhookEvent
    url: str
    due: float  # monotonic: when it is queued (after ``delay``)


class WebhookSender:
    """Per-room queues and workers that deliver webhook events.

    :param timeout: seconds one attempt may take.
    :param delay: seconds each event waits after it happened before it is queued.
    :param time_scale: multiplies the retry waits, ``Retry-After`` and the 30 s age limit.
    :param max_attempts: attempts per event (go-retryablehttp: 1 + RetryMax 4).
    :param max_depth: events a room's queue holds before new ones are dropped.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        urls: Sequence[str] = (),
        timeout: float = 2.0,
        delay: float = 0.0,
        time_scale: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.delay = delay
        self.time_scale = time_scale
        self.max_attempts = max_attempts
        self.max_depth = max_depth
        self._urls: tuple[str, ...] = tuple(urls)
        self._cond = threading.Condition()
        #: (url, room name) -> events waiting for their turn; a worker per non-empty queue.
        self._queues: dict[tuple[str, str], deque[_Item]] = {}
        self._busy = 0
        self._deliveries: list[WebhookDelivery] = []

    @property
    def time_scale(self) -> float:
        """Factor on every wait of the delivery (1.0 = LiveKit's)."""
        return self._time_scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError("webhook_time_scale must be > 0")
        self._time_scale = float(scale)

    @property
    def urls(self) -> list[str]:
        """Where new events go (a copy; assign to change)."""
        return list(self._urls)

    @urls.setter
    def urls(self, urls: Sequence[str]) -> None:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook url must be http(s)://host[:port]/path, got {url!r}")
        self._urls = tuple(urls)

    @property
    def active(self) -> bool:
        """True when events have somewhere to go."""
        return bool(self._urls)

    def enqueue(self, event: WebhookEvent) -> None:
        """Queue ``event`` for every URL (telemetry NotifyEvent sets ``id`` and ``createdAt``)."""
        urls = self._urls
        if not urls:
            return
        event.id = new_sid("EV_")
        event.created_at = int(time.time())
        due = time.monotonic() + max(0.0, self.delay)
        with self._cond:
            for url in urls:
                key = (url, event.room.name)
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = deque()
                    threading.Thread(
                        target=self._run, args=(key, queue), name="LiveKitEmulator:webhooks", daemon=True
                    ).start()
                if len(queue) >= self.max_depth:  # resource_queue.go EnqueueAt: errQueueFull
                    self._deliveries.append(_dropped(event, url, "queue is full"))
                    continue
                queue.append(_Item(event, url, due))
                self._busy += 1
                self._cond.notify_all()

    def deliveries(self) -> list[WebhookDelivery]:
        """Every finished (or dropped) delivery, in the order they finished."""
        with self._cond:
            return list(self._deliveries)

    def clear(self) -> None:
        """Forget finished deliveries."""
        with self._cond:
            self._deliveries.clear()

    def wait(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was delivered or gave up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _run(self, key: tuple[str, str], queue: deque[_Item]) -> None:
        while True:
            with self._cond:
                if not queue:
                    # Idle: the queue goes (LiveKit's sweeper does it after a timeout).
                    del self._queues[key]
                    return
                item = queue.popleft()
            wait = item.due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() - item.due > MAX_AGE * self.time_scale:  # Process: "age"
                delivery = _dropped(item.event, item.url, "age")
            else:
                delivery = self._deliver(item.event, item.url)
            with self._cond:
                self._deliveries.append(delivery)
                self._busy -= 1
                self._cond.notify_all()

    def _deliver(self, event: WebhookEvent, url: str) -> WebhookDelivery:
        body = json_format.MessageToJson(event, indent=None).encode()
        token = self._token(body)
        status: int | None = None
        error = ""
        attempts = 0
        waits: list[float] = []
        while True:
            attempts += 1
            told: str | None = None
            try:
                status, told = self._post(url, body, token)
                error = ""
            except (OSError, http.client.HTTPException) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                break
            if attempts >= self.max_attempts or not _retryable(status):
                break
            wait = backoff(attempts, status, told) * self.time_scale
            waits.append(wait)
            time.sleep(wait)
        return WebhookDelivery(
            event.id,
            event.event,
            event.room.name,
            url,
            status,
            attempts,
            status is not None and 200 <= status < 300,
            error,
            tuple(waits),
        )

    def _token(self, body: bytes) -> str:
        # auth.NewAccessToken(key, secret).SetValidFor(5 min).SetSha256(b64).ToJWT(): Go's
        # ClaimGrants omit an empty identity (sub) and an unset video grant.
        now = int(time.time())
        claims = {
            "iss": self.api_key,
            "iat": now,
            "nbf": now,
            "exp": now + _TOKEN_TTL,
            "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        }
        return jwt.encode(claims, self.api_secret, algorithm="HS256")

    def _post(self, url: str, body: bytes, token: str) -> tuple[int, str | None]:
        parts = urlsplit(url)
        conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(parts.hostname or "", parts.port, timeout=self.timeout)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Authorization": token, "Content-Type": CONTENT_TYPE, "User-Agent": _USER_AGENT},
            )
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("Retry-After")
        finally:
            conn.close()


def _dropped(event: WebhookEvent, url: str, reason: str) -> WebhookDelivery:
    return WebhookDelivery(event.id, event.event, event.room.name, url, None, 0, False, f"dropped: {reason}")
