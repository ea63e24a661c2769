"""What keeps a slow or dead LiveKit from taking the host app down: a bulkhead and a breaker.

Both live in the host's process, one pair per app (and per forked worker):

- :class:`Bulkhead`: at most ``LIVEKIT_MODERATION_MAX_CONCURRENCY`` requests do LiveKit work
  at once. A request over the cap is refused at once rather than queued, because a queued
  request would hold a WSGI thread just the same.
- :class:`CircuitBreaker`: after ``LIVEKIT_MODERATION_BREAKER_FAILURES`` consecutive requests
  that found LiveKit unavailable, requests are refused at once for
  ``LIVEKIT_MODERATION_BREAKER_COOLDOWN`` seconds; then one probe request is let through
  (half-open), and its outcome closes or re-opens the breaker. Answers that prove LiveKit is
  up (a 404, 401 or 412 from it) count as successes.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("flask_livekit_moderation")


class Outcome(enum.Enum):
    """What one request's LiveKit work proved about LiveKit."""

    #: LiveKit answered (a success or a refusal such as not_found): it is up.
    UP = "up"
    #: A call timed out, could not connect, was reset, answered 5xx or an unusable answer.
    UNAVAILABLE = "unavailable"
    #: No call was answered or failed (e.g. the work failed before calling LiveKit).
    UNKNOWN = "unknown"


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerChange:
    """One transition of a breaker, as logged and signalled."""

    state: BreakerState
    previous: BreakerState
    failures: int
    retry_after: int | None


class Refused(Exception):
    """The breaker refuses the request; ``retry_after`` is whole seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class CircuitBreaker:
    """Remembers that LiveKit is down, so requests stop waiting on it.

    ``threshold`` 0 turns the breaker off. ``on_change`` is called, outside the lock, with
    every transition.
    """

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        on_change: Callable[[BreakerChange], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._open_until = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Let a request through, or raise :class:`Refused`. Returns True for the probe."""
        if self.threshold == 0 or self.state is BreakerState.CLOSED:
            return False  # the common case, without the lock
        change = None
        with self._lock:
            now = self._clock()
            if self.state is BreakerState.OPEN:
                if now < self._open_until:
                    raise Refused(math.ceil(self._open_until - now))
                change = self._move(BreakerState.HALF_OPEN, None)
            if self.state is BreakerState.HALF_OPEN:
                if self._probing:
                    raise Refused(1)
                self._probing = True
                probe = True
            else:
                probe = False
        self._notify(change)
        return probe

    def record(self, outcome: Outcome, probe: bool) -> None:
        """Account for the outcome of a request that :meth:`admit` let through."""
        if self.threshold == 0:
            return
        change = None
        with self._lock:
            if probe:
                self._probing = False
            if outcome is Outcome.UNAVAILABLE:
                if self.state is BreakerState.CLOSED:
                    self.failures += 1
                    if self.failures >= self.threshold:
                        change = self._open()
                elif probe:
                    self.failures += 1
                    change = self._open()
            elif outcome is Outcome.UP:
                if self.state is BreakerState.CLOSED:
                    self.failures = 0
                elif probe:
                    self.failures = 0
                    change = self._move(BreakerState.CLOSED, None)
        self._notify(change)

    def retry_after(self) -> int:
        """Whole seconds a client should wait before trying again (1 when closed)."""
        with self._lock:
            if self.state is BreakerState.OPEN:
                return max(1, math.ceil(self._open_until - self._clock()))
        return 1

    def _open(self) -> BreakerChange:
        self._open_until = self._clock() + self.cooldown
        return self._move(BreakerState.OPEN, math.ceil(self.cooldown))

    def _move(self, state: BreakerState, retry_after: int | None) -> BreakerChange:
        previous, self.state = self.state, state
        return BreakerChange(state, previous, self.failures, retry_after)

    def _notify(self, change: BreakerChange | None) -> None:
        if change is None:
            return
        if change.state is BreakerState.OPEN:
            logger.warning(
                "LiveKit circuit breaker open after %d consecutive unavailable outcomes: "
                "answering 503 for %.1fs without calling LiveKit",
                change.failures,
                self.cooldown,
            )
        elif change.state is BreakerState.CLOSED:
            logger.info("LiveKit circuit breaker closed: LiveKit answered the probe request")
        else:
            logger.info("LiveKit circuit breaker half-open: letting one probe request through")
        if self._on_change is not None:
            self._on_change(change)


class Bulkhead:
    """At most ``size`` concurrent holders; ``size`` 0 means no limit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size) if size else None

    def try_enter(self) -> bool:
        """Take a slot if one is free, without waiting."""
        return self._slots is None or self._slots.acquire(blocking=False)

    def leave(self) -> None:
        if self._slots is not None:
            self._slots.release()
