"""A LiveKit outage seen from the host app: does the host's own route stay fast?

``python3 -m benchmarks.outage`` serves the example app with real gunicorn
(``-k gthread -w 1 --threads 8``) against the LiveKit stand-in in its own process, and makes
LiveKit a black hole (connections accepted, requests read, nothing ever answered). While a
prober asks the host's own ``/healthz`` every 10 ms, 32 moderation requests arrive at once,
then 20 more one after another; then LiveKit comes back. It runs twice and prints a
before/after table:

- **unguarded**: no bulkhead and no circuit breaker (``LIVEKIT_MODERATION_MAX_CONCURRENCY=0``,
  ``LIVEKIT_MODERATION_BREAKER_FAILURES=0``): every request waits out the deadline, holding a
  WSGI thread, like release 0.1.0 did (which also applied its timeout per call, not per request);
- **guarded**: the defaults (deadline 5 s, bulkhead 4, breaker after 5 failures for 5 s).

``tests/test_outage_gunicorn.py`` runs the same scenario with short times and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from flask_livekit_moderation import room_metadata

from .load import percentile
from .processes import ROOT, TENANT_ID, TENANT_TOKEN, Gunicorn, StandIn, WorkerSetup

ROOM = "outage-room"
SETUP = WorkerSetup(workers=1, threads=8, preload=True)
#: Answered ``/healthz`` probes the outage lasts for, at least.
MIN_PROBES_DURING = 50


@dataclass(frozen=True)
class Answer:
    """One moderation answer: HTTP status, error code (``None`` on success), seconds taken."""

    status: int
    code: str | None
    seconds: float
    retry_after: str | None


@dataclass
class Figures:
    """What one run of the scenario measured."""

    label: str
    settings: dict[str, str]
    healthz_before_ms: list[float] = field(default_factory=list)
    healthz_during_ms: list[float] = field(default_factory=list)
    wave: list[Answer] = field(default_factory=list)
    after_wave: list[Answer] = field(default_factory=list)
    #: Calls the stand-in received (answered or held) while ``after_wave`` was sent.
    calls_during_after_wave: int = 0
    recovery: Answer | None = None
    recovery_wait_s: float = 0.0


async def _probe(base: str, interval: float) -> None:
    """GET ``/healthz`` every ``interval`` seconds, open loop, until standard input closes.

    A probe starts on time whether or not the previous ones were answered (each on a
    connection of its own when they overlap), so a host that stops answering shows up as
    many slow probes, not as a few missing ones, as a load balancer's health checks see it.
    Each answered probe is printed at once as a JSON line: [wall-clock time sent, milliseconds].
    """
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def one() -> None:
            sent, started = time.time(), time.perf_counter()
            async with session.get(base + "/healthz") as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"/healthz answered {answer.status}")
            print(json.dumps([sent, (time.perf_counter() - started) * 1000]), flush=True)

        stdin_closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
        while not stdin_closed.done():
            task = asyncio.ensure_future(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(interval)
        # Probes still out are answered once the host has a thread again: wait for them.
        await asyncio.gather(*pending)


class _Prober:
    """The prober in a process of its own, so the load the scenario makes cannot delay it; its
    answered probes are read as they come."""

    def __init__(self, base: str, interval: float = 0.01) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.outage", "--probe", base, "--interval", str(interval)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.samples: list[tuple[float, float]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sent, ms = json.loads(line)
            self.samples.append((sent, ms))  # list.append is atomic: no lock for one writer

    def between(self, start: float, end: float) -> list[float]:
        """Milliseconds of the probes sent between wall-clock times ``start`` and ``end``."""
        return [ms for sent, ms in list(self.samples) if start <= sent <= end]

    async def answered_since(self, start: float, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` probes sent since ``start`` were answered: on a loaded machine
        the prober sends fewer than one per interval, and a verdict needs enough of them."""
        deadline = time.monotonic() + timeout
        while len(self.between(start, float("inf"))) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} /healthz probes answered in {timeout} s")
            await asyncio.sleep(0.05)

    def __enter__(self) -> _Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if self.proc.wait(timeout=150) != 0:
            raise RuntimeError(f"the prober failed with {self.proc.returncode}")
        self._reader.join(10)


async def _remove(session: aiohttp.ClientSession, base: str, identity: str) -> Answer:
    body = json.dumps({"room_name": ROOM, "participant_identity": identity})
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with session.delete(base + "/livekit/participant", data=body, headers=headers) as answer:
        raw = await answer.read()
    seconds = time.perf_counter() - started
    code = None if answer.status == 200 else json.loads(raw).get("code")
    return Answer(answer.status, code, seconds, answer.headers.get("Retry-After"))


async def _connected(base: str, count: int) -> aiohttp.ClientSession:
    """A session holding ``count`` open connections, so the wave measures answers, not connects."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=300),
        timeout=aiohttp.ClientTimeout(total=120),
    )
    await asyncio.gather(*(session.get(base + "/healthz") for _ in range(count)))
    return session


def _calls(stand_in: StandIn) -> tuple[int, int]:
    answer = stand_in.control("GET", "calls")
    return int(answer["total"]), int(answer["in_flight"])


@contextmanager
def serving(settings: dict[str, str]) -> Iterator[tuple[StandIn, Gunicorn]]:
    """The stand-in and gunicorn serving the example app with ``settings``."""
    with StandIn() as stand_in, Gunicorn("ours", stand_in, SETUP, settings) as gunicorn:
        yield stand_in, gunicorn


def run_in_own_process(settings: dict[str, str]) -> Figures:
    """:func:`run` in a fresh interpreter: the measuring client is not slowed by its caller's
    state (a long test session's garbage collections would show up as slow answers)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.outage", "--json-settings", json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the outage scenario failed ({done.returncode}): {done.stderr[-3000:]}")
    raw = json.loads(done.stdout)
    answers = {name: [Answer(**a) for a in raw[name]] for name in ("wave", "after_wave")}
    recovery = None if raw["recovery"] is None else Answer(**raw["recovery"])
    return Figures(**{**raw, **answers, "recovery": recovery})


def run(label: str, settings: dict[str, str], wave: int = 32, after_wave: int = 20) -> Figures:
    """The whole scenario once; ``settings`` are the extension's ``LIVEKIT_MODERATION_*``."""
    with serving(settings) as (stand_in, gunicorn):
        return asyncio.run(_scenario(label, settings, stand_in, gunicorn.url, wave, after_wave))


async def _scenario(
    label: str, settings: dict[str, str], stand_in: StandIn, base: str, wave: int, after_wave: int
) -> Figures:
    figures = Figures(label, settings)
    cooldown = float(settings.get("LIVEKIT_MODERATION_BREAKER_COOLDOWN", "5"))
    identities = [f"p{i}" for i in range(wave + after_wave + 1)]
    stand_in.seed([ROOM], len(identities), room_metadata(TENANT_ID))
    senders = await _connected(base, wave)
    try:
        with _Prober(base) as prober:
            await asyncio.sleep(1.0)
            healthy_until = time.time()
            stand_in.control("POST", "black_hole", {"on": True})
            outage_start = time.time()
            figures.wave = list(
                await asyncio.gather(*(_remove(senders, base, identity) for identity in identities[:wave]))
            )
            before = _calls(stand_in)
            for identity in identities[wave:-1]:
                figures.after_wave.append(await _remove(senders, base, identity))
            after = _calls(stand_in)
            figures.calls_during_after_wave = sum(after) - sum(before)
            # The outage lasts until the host was probed often enough to judge it.
            await prober.answered_since(outage_start, MIN_PROBES_DURING)
            outage_end = time.time()
        figures.healthz_before_ms = prober.between(0, healthy_until)
        figures.healthz_during_ms = prober.between(outage_start, outage_end)
        stand_in.control("POST", "black_hole", {"on": False})
        # The next request once the breaker's cooldown (counted from the last failure) is over.
        await asyncio.sleep(cooldown + 0.2)
        figures.recovery_wait_s = time.time() - outage_end
        figures.recovery = await _remove(senders, base, identities[-1])
    finally:
        await senders.close()
    return figures


def _ms(values: list[float], fraction: float) -> float:
    return percentile(sorted(values), fraction) if values else float("nan")


def summary(figures: Figures) -> dict[str, Any]:
    """The figures the table prints (and the test asserts on)."""
    moderation = figures.wave + figures.after_wave
    busy = [a for a in moderation if a.code == "LIVEKIT_BUSY"]
    refused_open = [a for a in figures.after_wave if a.seconds < 0.05]
    return {
        "healthz_p50_ms_before": _ms(figures.healthz_before_ms, 0.5),
        "healthz_p50_ms": _ms(figures.healthz_during_ms, 0.5),
        "healthz_p99_ms": _ms(figures.healthz_during_ms, 0.99),
        "healthz_max_ms": max(figures.healthz_during_ms, default=float("nan")),
        "moderation_p50_s": statistics.median(a.seconds for a in moderation),
        "moderation_max_s": max(a.seconds for a in moderation),
        "answers": dict(Counter(f"{a.status} {a.code}" for a in moderation)),
        "busy_max_ms": max((a.seconds * 1000 for a in busy), default=float("nan")),
        "fast_after_wave": len(refused_open),
        "fast_after_wave_p50_ms": _ms([a.seconds * 1000 for a in refused_open], 0.5),
        "calls_during_after_wave": figures.calls_during_after_wave,
        "recovery": None
        if figures.recovery is None
        else f"{figures.recovery.status} {figures.recovery.code}",
    }


def _table(rows: list[Figures]) -> str:
    lines = [
        "Scenario: gunicorn -k gthread -w 1 --threads 8; LiveKit a black hole; /healthz every 10 ms;",
        "32 concurrent removes, then 20 sequential ones; then LiveKit back.",
        "",
        f"{'':38}" + "".join(f"{figures.label:>16}" for figures in rows),
    ]
    summaries = [summary(figures) for figures in rows]
    for key, title, fmt in [
        ("healthz_p50_ms_before", "/healthz p50 ms, LiveKit healthy", "{:.1f}"),
        ("healthz_p50_ms", "/healthz p50 ms, during the outage", "{:.1f}"),
        ("healthz_p99_ms", "/healthz p99 ms, during the outage", "{:.1f}"),
        ("healthz_max_ms", "/healthz max ms, during the outage", "{:.1f}"),
        ("moderation_p50_s", "moderation answer p50, s", "{:.3f}"),
        ("moderation_max_s", "moderation answer max, s", "{:.3f}"),
        ("busy_max_ms", "503 LIVEKIT_BUSY slowest, ms", "{:.1f}"),
        ("fast_after_wave", "later requests answered < 50 ms", "{}"),
        ("fast_after_wave_p50_ms", "  their p50, ms", "{:.1f}"),
        ("calls_during_after_wave", "LiveKit calls for the later requests", "{}"),
        ("recovery", "first request after LiveKit is back", "{}"),
    ]:
        lines.append(f"{title:38}" + "".join(f"{fmt.format(s[key]):>16}" for s in summaries))
    for figures, s in zip(rows, summaries, strict=True):
        lines.append(f"{figures.label}: answers {s['answers']}; settings {figures.settings}")
    return "\n".join(lines)


UNGUARDED = {"LIVEKIT_MODERATION_MAX_CONCURRENCY": "0", "LIVEKIT_MODERATION_BREAKER_FAILURES": "0"}
GUARDED = {"LIVEKIT_MODERATION_MAX_CONCURRENCY": "8"}  # the documented default, set explicitly


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.outage", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--timeout", default="5", help="LIVEKIT_MODERATION_TIMEOUT, seconds (default 5)")
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)  # the prober's own process
    parser.add_argument("--interval", type=float, default=0.01, help=argparse.SUPPRESS)
    parser.add_argument(
        "--json-settings", metavar="JSON", help="run once with these settings and print the figures as JSON"
    )
    args = parser.parse_args()
    if args.probe:
        asyncio.run(_probe(args.probe, args.interval))
        return
    if args.json_settings:
        print(json.dumps(asdict(run("scenario", json.loads(args.json_settings)))))
        return
    deadline = {"LIVEKIT_MODERATION_TIMEOUT": args.timeout}
    # Unguarded, each later request waits out the deadline too: three of them tell the story.
    rows = [
        run("unguarded", {**UNGUARDED, **deadline}, after_wave=3),
        run("guarded", {**GUARDED, **deadline}),
    ]
    print(_table(rows))


if __name__ == "__main__":
    main()
