"""The host under a LiveKit outage, with real gunicorn (issue 10's scenario, short times).

gunicorn ``-k gthread -w 1 --threads 8`` serves the example app; LiveKit (the stand-in, in
its own process) turns into a black hole; 32 moderation requests arrive at once while the
host's own ``/healthz`` is probed every 10 ms. The scenario itself is
``benchmarks/outage.py``, which prints the same figures with the default times.

"At once" here means well inside the LiveKit deadline: a host that waited for LiveKit would
answer after about ``TIMEOUT`` seconds, so the bounds are a quarter of it, loose enough for
a loaded CI machine and still four times short of what they guard against. How fast the
answers really are is what the benchmark prints.
"""

from __future__ import annotations

import pytest

from benchmarks import outage

pytestmark = pytest.mark.timing

TIMEOUT = 1.0
AT_ONCE = TIMEOUT / 4
SETTINGS = {
    "LIVEKIT_MODERATION_TIMEOUT": str(TIMEOUT),
    # One caller (the wave's tenant) may hold half of the limit: four places.
    "LIVEKIT_MODERATION_MAX_CONCURRENCY": "8",
    "LIVEKIT_MODERATION_BREAKER_FAILURES": "4",
    "LIVEKIT_MODERATION_BREAKER_COOLDOWN": "2",
}


def test_a_black_holed_livekit_never_takes_the_host_down():
    figures = outage.run_in_own_process(SETTINGS)
    s = outage.summary(figures)

    # The host's own route never waits for LiveKit through the whole outage.
    assert s["healthz_max_ms"] <= AT_ONCE * 1000, s
    assert len(figures.healthz_during_ms) >= outage.MIN_PROBES_DURING, s
    # Four requests hold the tenant's four places and answer 503 at the deadline; the other 28
    # wait only until those four are late twice (0.05 s apart: nothing learned yet), then 503 BUSY.
    assert all(a.seconds <= TIMEOUT + 0.5 for a in figures.wave), s
    unavailable = [a for a in figures.wave if a.code == "LIVEKIT_UNAVAILABLE"]
    busy = [a for a in figures.wave if a.code == "LIVEKIT_BUSY"]
    assert len(unavailable) == 4 and len(busy) == 28, s
    assert all(a.status == 503 and a.retry_after == "1" for a in busy), s
    assert all(a.seconds <= AT_ONCE for a in busy), s
    assert all(TIMEOUT <= a.seconds for a in unavailable), s
    # The tenant's breaker opened after those four deadlines: its next requests are refused at once,
    # telling when to come back, and LiveKit hears nothing of them.
    assert all(a.status == 503 and a.code == "LIVEKIT_UNAVAILABLE" for a in figures.after_wave), s
    assert all(a.seconds <= AT_ONCE for a in figures.after_wave), s
    assert all(a.retry_after in ("1", "2") for a in figures.after_wave), s
    assert figures.calls_during_after_wave == 0, s
    # LiveKit is back and the cooldown over: the next request goes through.
    assert figures.recovery is not None and figures.recovery.status == 200, s
