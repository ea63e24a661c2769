"""What keeps a slow or dead LiveKit from taking the host app down, without refusing healthy work.

Everything here lives in the host's process, one set per app (and per forked worker):

- :class:`Lane`: admission to LiveKit. At most ``limit`` requests of the lane do LiveKit work
  at once, and one caller (a tenant's auth id; every caller without one counts as one) at
  most its share of them (``LIVEKIT_MODERATION_CALLER_SHARE``), so one tenant can never fill
  the lane. A request over the limit **waits** while the requests holding the lane are on
  time, and is refused (503 ``LIVEKIT_BUSY``) as soon as every one it waits behind is late:
  a LiveKit that answers in its normal time never gets a request refused, and a stuck one
  holds at most ``limit`` threads, the waiters giving up within a fraction of a second.
  The limit adapts (additive increase, multiplicative decrease, as TCP's congestion window
  and Netflix's AIMD limit do): halved on failures that show LiveKit itself is unwell (a
  connection refused or reset, a 5xx, or lateness seen from two callers), raised by one on
  each request answered on time, up to ``LIVEKIT_MODERATION_MAX_CONCURRENCY``.
  Ban enforcement (the webhook, the reconciler) has a lane of its own, which no tenant
  request can take (``LIVEKIT_MODERATION_ENFORCEMENT_CONCURRENCY``).
- :class:`Lateness`: when a LiveKit call counts as late: the way TCP sets its retransmission
  timeout (RFC 6298), a smoothed round trip plus four times its variation, learned from the
  calls LiveKit answered, never below :data:`LATE_FLOOR` (:data:`COLD_LATE_FLOOR` before
  LiveKit ever answered). A waiter gives up when every request ahead of it has been late for a
  lateness with no answer in between (at once, before LiveKit ever answered).
- :class:`Breakers`: after ``LIVEKIT_MODERATION_BREAKER_FAILURES`` consecutive requests
  that found LiveKit unavailable, requests are refused at once for
  ``LIVEKIT_MODERATION_BREAKER_COOLDOWN`` seconds; then one probe request is let through
  (half-open), and its outcome closes or re-opens the breaker. Answers that prove LiveKit is
  up (a 404, 401 or 412 from it) count as successes. The app's breaker counts what shows
  LiveKit is down (connection failures, 5xx, deadlines passed by two callers or more); a
  caller whose own requests keep passing the deadline (a slow room) trips only its own.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

logger = logging.getLogger("flask_livekit_moderation")

#: Seconds below which no LiveKit call counts as late once LiveKit has answered: the jitter
#: of a loaded host must not refuse healthy work (Linux's minimum TCP RTO is 0.2 s).
LATE_FLOOR = 0.2
#: The same before LiveKit ever answered: with no sign that it answers at all, a waiter holds
#: a thread as briefly as can be (an outage that starts with the process costs the least).
COLD_LATE_FLOOR = 0.05
#: Seconds within which lateness seen from two different callers counts as LiveKit's own.
_ACROSS_CALLERS_WINDOW = 10.0
#: Callers whose breakers are kept (the least recently seen closed ones are forgotten first).
_CALLER_BREAKERS = 1024


class Outcome(enum.Enum):
    """What one request's LiveKit work proved about LiveKit."""

    #: LiveKit answered (a success or a refusal such as not_found): it is up.
    UP = "up"
    #: A call could not connect, was reset, answered 5xx or an unusable answer.
    UNAVAILABLE = "unavailable"
    #: The request's deadline passed before LiveKit answered.
    TIMED_OUT = "timed_out"
    #: No call was answered or failed (e.g. the work failed before calling LiveKit).
    UNKNOWN = "unknown"


class Busy(Exception):
    """A lane refuses the request: ``limit`` names which limit, ``why`` why it gave up waiting."""

    def __init__(self, lane: str, limit: str, capacity: int, why: str) -> None:
        super().__init__(f"{lane} lane: {limit}")
        self.lane = lane
        self.limit = limit
        self.capacity = capacity
        self.why = why


class Lateness:
    """When a LiveKit call is late: SRTT + 4 x RTTVAR (RFC 6298), within [floor, ceiling]."""

    def __init__(
        self, ceiling: float, floor: float = LATE_FLOOR, cold_floor: float = COLD_LATE_FLOOR
    ) -> None:
        self.floor = floor
        self.cold_floor = cold_floor
        self.ceiling = max(floor, ceiling)
        self._srtt: float | None = None
        self._rttvar = 0.0
        #: Seconds after which a call still unanswered is late (it moves only with a sample, so
        #: it is kept, not computed at each look).
        self.threshold = cold_floor

    def sample(self, seconds: float) -> None:
        """Learn from one call LiveKit answered in ``seconds``."""
        if self._srtt is None:
            self._srtt, self._rttvar = seconds, seconds / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - seconds)
            self._srtt = 0.875 * self._srtt + 0.125 * seconds
        self.threshold = min(self.ceiling, max(self.floor, self._srtt + 4 * self._rttvar))

    @property
    def learned(self) -> bool:
        """LiveKit has answered at least once."""
        return self._srtt is not None


class Holder(Protocol):
    """What a lane needs of a request holding a place in it: the request's
    :class:`~.client.RoomCalls`, which sets ``call_started`` and ``late`` as its calls go."""

    #: Whose request it is (a tenant's auth id; ``None`` for every caller without one).
    caller: Hashable
    #: When its LiveKit call in flight started (``None`` between calls).
    call_started: float | None
    #: One of its calls was late, or it failed in a way that shows LiveKit unwell.
    late: bool


class Lane:
    """Admission of one kind of LiveKit work (see the module's docstring).

    ``ceiling`` 0 means no limit. ``adaptive`` False keeps the limit at ``ceiling``.
    """

    def __init__(
        self,
        name: str,
        ceiling: int,
        *,
        share: float,
        adaptive: bool,
        lateness: Lateness,
        queue_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.ceiling = ceiling
        self.share = share
        self.adaptive = adaptive
        self.lateness = lateness
        self.queue_timeout = queue_timeout
        self._clock = clock
        self._cond = threading.Condition()
        self._set_limit(float(ceiling))
        self._holders: list[Holder] = []
        self._by_caller: dict[Hashable, int] = {}
        self._bad_callers: dict[Hashable, float] = {}
        #: When a request of the lane (or of one caller) last got its answer from LiveKit.
        self._progress = -math.inf
        self._caller_progress: dict[Hashable, float] = {}
        #: Since when those ahead of waiters (of one caller, or of the lane) have been seen late.
        self._late_seen: dict[Hashable, float] = {}

    def _set_limit(self, limit: float) -> None:
        # Kept as numbers, not computed at each look: they move only when the limit adapts.
        self._limit = limit
        #: How many requests may hold the lane now.
        self.limit = max(1, int(limit))
        #: How many of them one caller may hold.
        self.caller_cap = max(1, math.ceil(self.limit * self.share))

    def enter(self, holder: Holder) -> None:
        """A place in the lane for ``holder``, waiting while those ahead are on time; else :class:`Busy`."""
        if self.ceiling == 0:
            return
        caller = holder.caller
        give_up = self._clock() + self.queue_timeout
        with self._cond:
            while True:
                mine = self._by_caller.get(caller, 0)
                scope: Hashable
                if mine >= self.caller_cap:
                    limit, ahead = "caller_share", [h for h in self._holders if h.caller == caller]
                    progress, scope = self._caller_progress.get(caller, -math.inf), ("caller", caller)
                elif len(self._holders) >= self.limit:
                    limit, ahead, progress, scope = "capacity", list(self._holders), self._progress, "lane"
                else:
                    self._holders.append(holder)
                    self._by_caller[caller] = mine + 1
                    return
                now = self._clock()
                threshold = self.lateness.threshold
                # Stuck: every one ahead is waiting on a late call and none got an answer lately,
                # seen for a lateness already. A host that stalls (CPU, GIL) makes calls late too,
                # but briefly; once stuck is seen, later arrivals are refused at once. Before
                # LiveKit ever answered there is nothing to be patient for: late is stuck.
                late = now - progress > threshold and all(
                    h.call_started is not None and now - h.call_started > threshold for h in ahead
                )
                if late:
                    seen = self._late_seen.setdefault(scope, now)
                    stuck = not self.lateness.learned or now - seen >= threshold
                    wake = seen + threshold
                else:
                    self._late_seen.pop(scope, None)
                    # Wake when a place frees (notified) or when the last one ahead turns late; one
                    # between two calls turns late only after its next call starts: look again then.
                    starts = [h.call_started for h in ahead if h.call_started is not None]
                    wake = max(starts) + threshold if len(starts) == len(ahead) else now + threshold
                    stuck, wake = False, max(wake, progress + threshold)
                if now >= give_up or stuck:
                    capacity = self.caller_cap if limit == "caller_share" else self.limit
                    why = "those ahead are late" if stuck else f"waited {self.queue_timeout:g}s"
                    raise Busy(self.name, limit, capacity, why)
                self._cond.wait(max(0.001, min(give_up, wake) - now))

    def leave(self, holder: Holder, outcome: Outcome) -> None:
        """Give the place back; the outcome moves the limit."""
        if self.ceiling == 0:
            return
        with self._cond:
            self._holders.remove(holder)
            left = self._by_caller[holder.caller] - 1
            if left:
                self._by_caller[holder.caller] = left
            else:
                del self._by_caller[holder.caller]
            if outcome is Outcome.UP:
                self._progress = self._caller_progress[holder.caller] = self._clock()
                self._late_seen.clear()
            if len(self._caller_progress) > _CALLER_BREAKERS:
                self._caller_progress = {
                    c: t for c, t in self._caller_progress.items() if c in self._by_caller
                }
            if self.adaptive:  # the limit adapts (see the module's docstring)
                if outcome is Outcome.UNAVAILABLE:
                    self._decrease("LiveKit unavailable")
                elif holder.late or outcome is Outcome.TIMED_OUT:
                    # One caller's slow room is its own business; two callers late is LiveKit's.
                    now = self._clock()
                    self._bad_callers = {
                        c: t for c, t in self._bad_callers.items() if now - t <= _ACROSS_CALLERS_WINDOW
                    }
                    self._bad_callers[holder.caller] = now
                    if len(self._bad_callers) >= 2:
                        self._bad_callers.clear()
                        self._decrease("LiveKit late for several callers")
                elif outcome is Outcome.UP and self._limit < self.ceiling:
                    self._set_limit(min(float(self.ceiling), self._limit + 1))
            self._cond.notify_all()

    def _decrease(self, why: str) -> None:
        before = self.limit
        self._set_limit(max(1.0, self._limit / 2))
        if self.limit != before:
            logger.warning("LiveKit %s lane: %s, limit %d -> %d", self.name, why, before, self.limit)


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
    #: ``"livekit"`` for the app's breaker, ``"caller"`` for one caller's.
    scope: str = "livekit"
    #: The caller whose breaker it is (``None`` for the app's, or a caller without an auth id).
    auth_id: str | None = None


class Refused(Exception):
    """A breaker refuses the request; ``retry_after`` is whole seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class CircuitBreaker:
    """Remembers that LiveKit (or one caller's work on it) is failing, so requests stop waiting.

    ``threshold`` 0 turns the breaker off. ``on_change`` is called, outside the lock, with
    every transition.
    """

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        on_change: Callable[[BreakerChange], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        scope: str = "livekit",
        auth_id: str | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._on_change = on_change
        self._clock = clock
        self._scope = scope
        self._auth_id = auth_id
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
        if change is not None:
            self._notify(change)
        return probe

    def record(self, failed: bool | None, probe: bool) -> None:
        """Account for a request :meth:`admit` let through: ``failed`` True (a failure),
        False (LiveKit answered) or None (it proved nothing)."""
        if self.threshold == 0:
            return
        change = None
        with self._lock:
            if probe:
                self._probing = False
            if failed:
                if self.state is BreakerState.CLOSED:
                    self.failures += 1
                    if self.failures >= self.threshold:
                        change = self._open()
                elif probe:
                    self.failures += 1
                    change = self._open()
            elif failed is not None:
                if self.state is BreakerState.CLOSED:
                    self.failures = 0
                elif probe:
                    self.failures = 0
                    change = self._move(BreakerState.CLOSED, None)
        if change is not None:  # the common case: no transition, nothing to tell
            self._notify(change)

    def retry_after(self) -> int:
        """Whole seconds a client should wait before trying again (1 when closed)."""
        with self._lock:
            if self.state is BreakerState.OPEN:
                return max(1, math.ceil(self._open_until - self._clock()))
        return 1

    @property
    def idle(self) -> bool:
        """Closed with no failure counted: nothing to remember."""
        return self.state is BreakerState.CLOSED and self.failures == 0

    def _open(self) -> BreakerChange:
        self._open_until = self._clock() + self.cooldown
        return self._move(BreakerState.OPEN, math.ceil(self.cooldown))

    def _move(self, state: BreakerState, retry_after: int | None) -> BreakerChange:
        previous, self.state = self.state, state
        return BreakerChange(state, previous, self.failures, retry_after, self._scope, self._auth_id)

    def _notify(self, change: BreakerChange) -> None:
        whose = "LiveKit" if self._scope == "livekit" else f"LiveKit (caller {self._auth_id!r})"
        if change.state is BreakerState.OPEN:
            logger.warning(
                "%s circuit breaker open after %d consecutive unavailable outcomes: "
                "answering 503 for %.1fs without calling LiveKit",
                whose,
                change.failures,
                self.cooldown,
            )
        elif change.state is BreakerState.CLOSED:
            logger.info("%s circuit breaker closed: LiveKit answered the probe request", whose)
        else:
            logger.info("%s circuit breaker half-open: letting one probe request through", whose)
        if self._on_change is not None:
            self._on_change(change)


class Admitted(NamedTuple):
    """Which breakers let one request through, and whether as their probe."""

    caller: Hashable
    app_probe: bool
    caller_probe: bool


@dataclass
class Breakers:
    """The app's breaker and one per caller (see the module's docstring)."""

    threshold: int
    cooldown: float
    on_change: Callable[[BreakerChange], None] | None = None
    app: CircuitBreaker = field(init=False)
    _callers: OrderedDict[Hashable, CircuitBreaker] = field(init=False, default_factory=OrderedDict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: Callers whose requests passed the deadline since LiveKit last answered.
    _timed_out: set[Hashable] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.app = CircuitBreaker(self.threshold, self.cooldown, self.on_change)

    def _of(self, caller: Hashable) -> CircuitBreaker:
        with self._lock:
            breaker = self._callers.get(caller)
            if breaker is None:
                if len(self._callers) >= _CALLER_BREAKERS:
                    for key in [k for k, b in self._callers.items() if b.idle][: _CALLER_BREAKERS // 2]:
                        del self._callers[key]
                auth_id = caller if isinstance(caller, str) else None
                breaker = CircuitBreaker(
                    self.threshold, self.cooldown, self.on_change, scope="caller", auth_id=auth_id
                )
                self._callers[caller] = breaker
            else:
                self._callers.move_to_end(caller)
            return breaker

    def admit(self, caller: Hashable) -> Admitted:
        """Let ``caller``'s request through, or raise :class:`Refused`."""
        app_probe = self.app.admit()
        try:
            caller_probe = self._of(caller).admit()
        except Refused:
            self.app.record(None, app_probe)
            raise
        return Admitted(caller, app_probe, caller_probe)

    def record(self, admitted: Admitted, outcome: Outcome) -> None:
        """Account for the outcome of a request :meth:`admit` let through."""
        caller_failed: bool | None = None
        if outcome is Outcome.UP:
            app_failed: bool | None = False
            caller_failed = False
            with self._lock:
                self._timed_out.clear()
        elif outcome is Outcome.UNAVAILABLE:
            app_failed = True  # LiveKit itself: the caller's own breaker has nothing to add
        elif outcome is Outcome.TIMED_OUT:
            caller_failed = True
            with self._lock:
                self._timed_out.add(admitted.caller)
                app_failed = True if len(self._timed_out) >= 2 else None
        else:
            app_failed = None
        self.app.record(app_failed, admitted.app_probe)
        self._of(admitted.caller).record(caller_failed, admitted.caller_probe)

    def retry_after(self, caller: Hashable) -> int:
        """Whole seconds ``caller`` should wait before trying again."""
        return max(self.app.retry_after(), self._of(caller).retry_after())
