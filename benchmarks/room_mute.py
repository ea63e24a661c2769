"""``python -m benchmarks.room_mute``: muting a whole room, one request against a loop over tracks.

The LiveKit stand-in runs in its own process with a simulated round trip of ``--latency-ms``
(default 20 ms) per RoomService call; gunicorn serves our example app and the naive reference
app (``benchmarks/naive_app.py``). For each room size of ``--sizes`` (default 10, 50, 200,
1,000 and 5,000 participants, each publishing a microphone and a camera, the room owned by the caller's
tenant), one keep-alive client in this process times three ways to mute every microphone:

* **room mute**: one ``POST /livekit/room/mute`` (ListRooms + ListParticipants at once, then
  every MutePublishedTrack at once, at most ``ROOM_MUTE_CONCURRENCY`` in flight);
* **loop, ours**: ``POST /livekit/participant/mute`` once per microphone, one after another
  (ListRooms + GetParticipant at once, then MutePublishedTrack: two round trips per track);
* **loop, naive**: the naive app's per-track mute route once per microphone (ListRooms,
  ListParticipants, ListParticipants, MutePublishedTrack: four round trips per track).

The loops are given the track SIDs up front (listing them would cost one more request), which
favours them; they run for rooms of at most ``--loop-max-size`` (200) participants (a loop over
1,000 microphones takes a minute). Figures are medians of ``--repeat`` room mutes (at most
``--big-repeat`` for rooms over 200) and ``--loop-repeat`` loops, all measured in one run,
after one warm-up of each. ``round trips`` is the median divided by the latency; ``CPU/track``
is our gunicorn worker's CPU (user + system from ``/proc/<pid>/stat``) over the timed room
mutes, per muted track.

Targets: a room mute of 50 participants within 3 round trips plus 10 ms, i.e. <= 70 ms at
20 ms per call (issue 12); of 1,000 within 20 round trips, with <= 0.15 ms of worker CPU per
track, and of 5,000 within the default deadline, 5 s (issue 27). Raw figures go to ``--out``
(JSON).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.participants.operations import ROOM_MUTE_CONCURRENCY

from .processes import ROOT, TENANT_ID, TENANT_TOKEN, Gunicorn, StandIn, WorkerSetup, cpu_seconds

TARGETS = ("room_mute", "loop_ours", "loop_naive")
LABELS = {
    "room_mute": "room mute (one request)",
    "loop_ours": "loop of /participant/mute",
    "loop_naive": "loop of naive per-track",
}
#: Issue 12: a room mute of this many participants ...
TARGET_SIZE = 50
#: ... within this many round trips ...
TARGET_ROUND_TRIPS = 3
#: ... plus this much of our own time (70 ms at 20 ms per call).
TARGET_SLACK_MS = 10.0
#: Issue 27: a room mute of this many participants within this many round trips ...
BIG_SIZE, BIG_ROUND_TRIPS = 1000, 20
#: ... with at most this much worker CPU per muted track (ms) ...
BIG_CPU_PER_TRACK_MS = 0.15
#: ... and one of this many within the default deadline (ms).
HUGE_SIZE, HUGE_LIMIT_MS = 5000, 5000.0


class Client:
    """One keep-alive HTTP connection to one server, sending the caller's JSON requests."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {TENANT_TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.conn.request("POST", path, body=json.dumps(body).encode(), headers=self.headers)
        answer = self.conn.getresponse()
        raw = answer.read()
        return answer.status, json.loads(raw)

    def close(self) -> None:
        self.conn.close()


def timed(action: Callable[[], None]) -> float:
    """Milliseconds ``action`` took."""
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000.0


def room_mute(client: Client, room: str, size: int) -> Callable[[], None]:
    def run() -> None:
        status, body = client.post("/livekit/room/mute", {"room_name": room, "muted": True})
        if status != 200 or len(body["tracks"]) != size or body["failed"]:
            raise RuntimeError(f"room mute of {room} answered {status}: {str(body)[:500]}")

    return run


def track_loop(client: Client, room: str, mics: list[tuple[str, str]]) -> Callable[[], None]:
    def run() -> None:
        for identity, sid in mics:
            body = {"room_name": room, "participant_identity": identity, "track_sid": sid, "muted": True}
            status, answer = client.post("/livekit/participant/mute", body)
            if status != 200 or answer.get("muted") is not True:
                raise RuntimeError(f"mute of {identity}/{sid} answered {status}: {answer}")

    return run


def measure(
    stand_in: StandIn, action: Callable[[], None], runs: int, worker: int
) -> tuple[list[float], dict[str, float], float]:
    """One warm-up, then ``runs`` timed runs; the LiveKit calls per run, by method, and the
    serving worker's CPU seconds per run."""
    action()
    stand_in.control("DELETE", "calls")
    cpu_before = cpu_seconds(worker)
    times = [timed(action) for _ in range(runs)]
    cpu = (cpu_seconds(worker) - cpu_before) / runs
    counts = stand_in.control("GET", "calls")["counts"]
    return times, {method: n / runs for method, n in sorted(counts.items())}, cpu


def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = WorkerSetup(workers=1, threads=args.threads, preload=True)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    results: dict[str, Any] = {}
    with StandIn(args.latency_ms) as stand_in:
        with Gunicorn("ours", stand_in, setup) as ours, Gunicorn("naive", stand_in, setup) as naive:
            clients = {"ours": Client(ours.url), "naive": Client(naive.url)}
            try:
                for size in args.sizes:
                    room = f"room-mute-{size}"
                    stand_in.seed([room], size, room_metadata(TENANT_ID))
                    # Each participant publishes its microphone first, then its camera.
                    mics = sorted((identity, sids[0]) for identity, sids in stand_in.tracks(room).items())
                    repeat = args.repeat if size <= args.loop_max_size else min(args.repeat, args.big_repeat)
                    actions = {"room_mute": (room_mute(clients["ours"], room, size), repeat, ours)}
                    if size <= args.loop_max_size:
                        loop = args.loop_repeat
                        actions["loop_ours"] = (track_loop(clients["ours"], room, mics), loop, ours)
                        actions["loop_naive"] = (
                            track_loop(clients["naive"], room, mics),
                            args.loop_repeat,
                            naive,
                        )
                    per_size: dict[str, Any] = {}
                    for target, (action, runs, server) in actions.items():
                        (worker,) = server.workers()
                        try:
                            times, calls, cpu = measure(stand_in, action, runs, worker)
                        except RuntimeError as exc:
                            # A room too big for the deadline: a figure of this run, not its end.
                            per_size[target] = {"runs": runs, "error": str(exc)[:300]}
                            log(f"  {size:4d} participants, {target:10}: {exc}")
                            continue
                        per_size[target] = {
                            "runs": runs,
                            "median_ms": median(times),
                            "min_ms": min(times),
                            "max_ms": max(times),
                            "times_ms": times,
                            "livekit_calls": calls,
                            "worker_cpu_ms": cpu * 1000,
                            "worker_cpu_ms_per_track": cpu * 1000 / size,
                        }
                        log(f"  {size:4d} participants, {target:10}: median {median(times):9.1f} ms")
                    results[str(size)] = per_size
            finally:
                for client in clients.values():
                    client.close()
    return results


def _or_failed(figures: dict[str, Any]) -> dict[str, Any]:
    """A way's figures; a way whose runs failed counts as infinitely slow."""
    if "error" in figures:
        return {key: math.inf for key in ("median_ms", "max_ms", "worker_cpu_ms_per_track")}
    return figures


def targets(args: argparse.Namespace, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets this run can judge: each needs its room size, and a latency to count trips."""
    if args.latency_ms <= 0:
        return []
    checks: list[tuple[str, float, float]] = []
    if str(TARGET_SIZE) in results:
        checks.append(
            (
                f"room mute of {TARGET_SIZE} participants at L={args.latency_ms:g}ms: median",
                _or_failed(results[str(TARGET_SIZE)]["room_mute"])["median_ms"],
                TARGET_ROUND_TRIPS * args.latency_ms + TARGET_SLACK_MS,
            )
        )
    if str(BIG_SIZE) in results:
        big = _or_failed(results[str(BIG_SIZE)]["room_mute"])
        checks += [
            (
                f"room mute of {BIG_SIZE} participants at L={args.latency_ms:g}ms: median",
                big["median_ms"],
                BIG_ROUND_TRIPS * args.latency_ms,
            ),
            (
                f"room mute of {BIG_SIZE} participants: worker CPU per track",
                big["worker_cpu_ms_per_track"],
                BIG_CPU_PER_TRACK_MS,
            ),
        ]
    if str(HUGE_SIZE) in results:
        checks.append(
            (
                f"room mute of {HUGE_SIZE} participants: slowest run, within the default deadline",
                _or_failed(results[str(HUGE_SIZE)]["room_mute"])["max_ms"],
                HUGE_LIMIT_MS,
            )
        )
    return [
        {"name": name, "value_ms": value, "limit_ms": limit, "passed": value <= limit}
        for name, value, limit in checks
    ]


def table(args: argparse.Namespace, results: dict[str, Any], checked: list[dict[str, Any]]) -> str:
    lines = [
        f"Room mute vs. loops, L = {args.latency_ms:g} ms per LiveKit call (stand-in in its own process); "
        f"gunicorn -k gthread -w 1 --threads {args.threads} --preload; one keep-alive client.",
        f"ROOM_MUTE_CONCURRENCY = {ROOM_MUTE_CONCURRENCY}. Medians of {args.repeat} room mutes and "
        f"{args.loop_repeat} loops per size, measured in one run; every microphone of the room muted.",
        f"Load average before: {args.load_before}.",
        f"{'participants':>12}  {'way':27} {'median ms':>10} {'round trips':>12} {'LiveKit calls':>14}"
        f" {'CPU/track ms':>13}",
        "-" * 94,
    ]
    for size, per_size in results.items():
        for target in TARGETS:
            if target not in per_size:
                continue
            figures: dict[str, Any] = per_size[target]
            if "error" in figures:
                lines.append(f"{size:>12}  {LABELS[target]:27} failed: {figures['error'][:60]}")
                continue
            trips = f"{figures['median_ms'] / args.latency_ms:.1f}" if args.latency_ms > 0 else "-"
            calls = sum(figures["livekit_calls"].values())
            lines.append(
                f"{size:>12}  {LABELS[target]:27} {figures['median_ms']:10.1f} {trips:>12} {calls:14.0f}"
                f" {figures['worker_cpu_ms_per_track']:13.3f}"
            )
        lines.append("")
    if checked:
        lines.append("Targets:")
        for check in checked:
            verdict = "PASS" if check["passed"] else "FAIL"
            value, limit = check["value_ms"], check["limit_ms"]
            lines.append(f"  [{verdict}] {check['name']}: {value:.3g} ms (target <= {limit:g} ms)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.room_mute", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="simulated round trip per LiveKit call"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10, 50, 200, 1000, 5000], help="participants per room"
    )
    parser.add_argument("--repeat", type=int, default=15, help="timed room mutes per size")
    parser.add_argument("--big-repeat", type=int, default=5, help="at most this many for rooms over 200")
    parser.add_argument("--loop-repeat", type=int, default=3, help="timed loops per size and app")
    parser.add_argument("--loop-max-size", type=int, default=200, help="loops only up to this room size")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads")
    parser.add_argument("--no-targets", action="store_true", help="do not check the target (exit 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "room_mute.json",
        help="raw figures (JSON)",
    )
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.repeat < 1 or args.loop_repeat < 1 or args.big_repeat < 1:
        parser.error("sizes and repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = run(args)
    checked = [] if args.no_targets else targets(args, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(timezone.utc).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": args.load_before,
        },
        "latency_ms": args.latency_ms,
        "room_mute_concurrency": ROOM_MUTE_CONCURRENCY,
        "results": results,
        "targets": checked,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(table(args, results, checked))
    print(f"Raw figures: {args.out}")
    return 0 if all(target["passed"] for target in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
