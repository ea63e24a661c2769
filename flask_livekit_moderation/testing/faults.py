"""Fault plan of the LiveKit stand-in: latency and one-shot failures per method.

Faults are queued per RoomService method and consumed by the next calls to that
method, in the order they were queued.  All methods are thread-safe; the lock is
never held while a call sleeps.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from .twirp import TWIRP_STATUS

__all__ = ["Fault", "FaultPlan"]

FaultKind = Literal["fail", "garbage", "drop", "hang", "redirect", "answer"]


@dataclass(frozen=True)
class Fault:
    """One queued misbehaviour for one call.

    ``fail``: answer twirp error ``code``/``msg`` with ``status``;
    ``garbage``: answer 200 with a body that is not protobuf;
    ``drop``: close the connection without answering;
    ``hang``: wait ``seconds`` (``None`` = until the emulator stops), then answer normally;
    ``redirect``: answer ``status`` (3xx) with a ``Location: location`` header, empty body;
    ``answer``: answer ``status`` with exactly ``body`` as ``content_type``.
    ``redirect`` and ``answer`` replace the handler: the state is not touched.
    """

    kind: FaultKind
    code: str = "internal"
    status: int = 500
    msg: str = ""
    seconds: float | None = None
    location: str = ""
    body: bytes = b""
    content_type: str = ""

    @classmethod
    def fail(cls, code: str = "internal", status: int | None = None, msg: str = "injected failure") -> Fault:
        """A twirp error answer; ``status`` defaults to twirp's status for ``code``."""
        return cls(
            "fail", code=code, status=TWIRP_STATUS.get(code, 500) if status is None else status, msg=msg
        )

    @classmethod
    def redirect(cls, location: str = "http://127.0.0.1:9/elsewhere", status: int = 302) -> Fault:
        """A 3xx answer pointing at ``location``."""
        if not 300 <= status <= 399:
            raise ValueError(f"a redirect status is 3xx, got {status}")
        return cls("redirect", status=status, location=location)

    @classmethod
    def answer(
        cls, status: int = 200, body: bytes = b"", content_type: str = "application/protobuf"
    ) -> Fault:
        """Exactly these bytes, whatever the call asked."""
        if not 100 <= status <= 599:
            raise ValueError(f"an HTTP status is 100..599, got {status}")
        return cls("answer", status=status, body=bytes(body), content_type=content_type)


class FaultPlan:
    """Thread-safe latency settings and per-method fault queues."""

    def __init__(self, latency: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._default_latency = float(latency)
        self._latency = float(latency)
        self._method_latency: dict[str, float] = {}
        self._room_latency: dict[str, float] = {}
        self._queues: dict[str, deque[Fault]] = {}

    def set_latency(self, seconds: float, method: str | None = None, room: str | None = None) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            if room is not None:
                # On top of the method's: a room LiveKit is slow to serve (a big one, a busy node).
                self._room_latency[room] = float(seconds)
            elif method is None:
                self._latency = float(seconds)
            else:
                self._method_latency[method] = float(seconds)

    def latency_for(self, method: str) -> float:
        # Reading two dicts without the lock is safe under the GIL and this is
        # on every call's path; a concurrent change is seen by the next call.
        return self._method_latency.get(method, self._latency)

    def room_latency(self, room: str) -> float:
        """Seconds added to every call about ``room``."""
        return self._room_latency.get(room, 0.0) if self._room_latency else 0.0

    def push(self, method: str, fault: Fault, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._queues.setdefault(method, deque()).extend([fault] * n)

    def take(self, method: str) -> Fault | None:
        """Pop the next fault queued for ``method``, if any."""
        if not self._queues:  # fast path: nothing ever queued
            return None
        with self._lock:
            queue = self._queues.get(method)
            if not queue:
                return None
            fault = queue.popleft()
            if not queue:
                del self._queues[method]
            return fault

    def pending(self) -> dict[str, int]:
        """How many faults are still queued, per method."""
        with self._lock:
            return {m: len(q) for m, q in self._queues.items()}

    def clear(self) -> None:
        """Drop queued faults and reset latency to the constructor's value."""
        with self._lock:
            self._queues.clear()
            self._method_latency.clear()
            self._room_latency.clear()
            self._latency = self._default_latency
