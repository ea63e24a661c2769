"""The host under a LiveKit outage, with real gunicorn (issue 10's scenario, short times).

gunicorn ``-k gthread -w 1 --threads 8`` serves the example app; LiveKit (the stand-in, in
its own process) turns into a black hole; 32 moderation requests arrive at once while the
host's own ``/healthz`` is probed every 10 ms. The scenario itself is
``benchmarks/outage.py``, which prints the same figures with the default times.
"""

from __future__ import annotations

from benchmarks import outage

TIMEOUT = 1.0
SETTINGS = {
    "LIVEKIT_MODERATION_TIMEOUT": str(TIMEOUT),
    "LIVEKIT_MODERATION_MAX_CONCURRENCY": "4",
    "LIVEKIT_MODERATION_BREAKER_FAILURES": "4",
    "LIVEKIT_MODERATION_BREAKER_COOLDOWN": "2",
}


def test_a_black_holed_livekit_never_takes_the_host_down():
    figures = outage.run_in_own_process(SETTINGS)
    s = outage.summary(figures)

    # The host's own route stays fast through the whole outage.
    assert s["healthz_p99_ms"] <= 50, s
    assert len(figures.healthz_during_ms) >= 50, s
    # Four requests hold the four slots and answer 503 at the deadline; the other 28 at once.
    assert all(a.seconds <= TIMEOUT + 0.5 for a in figures.wave), s
    unavailable = [a for a in figures.wave if a.code == "LIVEKIT_UNAVAILABLE"]
    busy = [a for a in figures.wave if a.code == "LIVEKIT_BUSY"]
    assert len(unavailable) == 4 and len(busy) == 28, s
    assert all(a.status == 503 and a.retry_after == "1" for a in busy), s
    assert all(a.seconds <= 0.05 for a in busy), s
    assert all(TIMEOUT <= a.seconds for a in unavailable), s
    # The breaker opened after those four failures: the next requests are refused at once,
    # telling when to come back, and LiveKit hears nothing of them.
    assert all(a.status == 503 and a.code == "LIVEKIT_UNAVAILABLE" for a in figures.after_wave), s
    assert all(a.seconds <= 0.005 for a in figures.after_wave), s
    assert all(a.retry_after in ("1", "2") for a in figures.after_wave), s
    assert figures.calls_during_after_wave == 0, s
    # LiveKit is back and the cooldown over: the next request goes through.
    assert figures.recovery is not None and figures.recovery.status == 200, s
