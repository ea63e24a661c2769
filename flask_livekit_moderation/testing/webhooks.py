"""LiveKit webhooks, sent the way livekit/protocol ``webhook/resource_url_notifier.go`` does.

Each event is POSTed to every configured URL with ``Content-Type:
application/webhook+json``; the body is the protojson of ``WebhookEvent``
(lowerCamelCase names); ``Authorization`` is a bare JWT signed with the API key and
secret, valid 5 minutes, whose ``sha256`` claim is the base64 SHA-256 of the body.

Delivery is asynchronous on one worker thread, so events leave in the order they
happened (hence in order per room) and never block a RoomService answer. ``delay`` holds
each event back that many seconds first: a real LiveKit lists a participant before it sends
their ``participant_joined`` (it waits until their connection is up).  Failed
attempts are retried with a short doubling backoff on the rule of
hashicorp/go-retryablehttp's ``DefaultRetryPolicy`` (connection errors, 429 and 5xx
except 501), so an event can arrive late and, when an answer is lost, more than once.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from google.protobuf import json_format
from livekit.api import AccessToken
from livekit.protocol.webhook import WebhookEvent

from .state import new_sid

__all__ = ["CONTENT_TYPE", "WebhookDelivery", "WebhookSender"]

CONTENT_TYPE = "application/webhook+json"  # webhook/consts.go ContentType
_USER_AGENT = "LiveKit"  # webhook/consts.go DefaultUserAgent
_TOKEN_TTL = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class WebhookDelivery:
    """What became of one event for one URL.

    ``status`` is the last HTTP status received (None: no answer at all);
    ``attempts`` how many POSTs were made; ``delivered`` whether one got a 2xx.
    """

    id: str
    event: str
    room: str
    url: str
    status: int | None
    attempts: int
    delivered: bool
    error: str = ""


def _retryable(status: int | None) -> bool:
    # go-retryablehttp DefaultRetryPolicy / baseRetryPolicy.
    if status is None:
        return True
    return status == 429 or (status >= 500 and status != 501)


class WebhookSender:
    """Queue and worker that deliver webhook events.

    :param retries: extra attempts after the first one (go-retryablehttp RetryMax).
    :param backoff: seconds before the first retry, doubled for each next one.
    :param timeout: seconds one attempt may take.
    :param delay: seconds each event waits after it happened before its first attempt.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        urls: Sequence[str] = (),
        retries: int = 3,
        backoff: float = 0.05,
        timeout: float = 2.0,
        delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.delay = delay
        self._urls: tuple[str, ...] = tuple(urls)
        self._cond = threading.Condition()
        #: (event, url, when its first attempt is due on the monotonic clock)
        self._queue: deque[tuple[WebhookEvent, str, float]] = deque()
        self._busy = 0
        self._deliveries: list[WebhookDelivery] = []
        self._worker: threading.Thread | None = None

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
                self._queue.append((event, url, due))
                self._busy += 1
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="LiveKitEmulator:webhooks", daemon=True
                )
                self._worker.start()

    def deliveries(self) -> list[WebhookDelivery]:
        """Every finished delivery, in the order they finished."""
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

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._worker = None
                    return
                event, url, due = self._queue.popleft()
            # Each waits for its own due time, in queue order: the order holds even if the delay changed.
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            delivery = self._deliver(event, url)
            with self._cond:
                self._deliveries.append(delivery)
                self._busy -= 1
                self._cond.notify_all()

    def _deliver(self, event: WebhookEvent, url: str) -> WebhookDelivery:
        body = json_format.MessageToJson(event, indent=None).encode()
        status: int | None = None
        error = ""
        attempts = 0
        wait = self.backoff
        while True:
            attempts += 1
            try:
                status = self._post(url, body)
                error = ""
            except (OSError, http.client.HTTPException) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                break
            if attempts > self.retries or not _retryable(status):
                break
            time.sleep(wait)
            wait *= 2
        return WebhookDelivery(
            event.id,
            event.event,
            event.room.name,
            url,
            status,
            attempts,
            status is not None and 200 <= status < 300,
            error,
        )

    def _post(self, url: str, body: bytes) -> int:
        # resource_url_notifier.go send(): a fresh token per attempt's request.
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        token = AccessToken(self.api_key, self.api_secret).with_ttl(_TOKEN_TTL).with_sha256(digest).to_jwt()
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
            return resp.status
        finally:
            conn.close()
