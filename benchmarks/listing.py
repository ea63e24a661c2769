"""``python -m benchmarks.listing``: what ``GET /livekit/participants`` costs for a big room.

The LiveKit stand-in runs in its own process (``--latency-ms``, default 0) with one room of
``--participants`` (default 5,000), each publishing a microphone, owned by the caller's
tenant; gunicorn (``-k gthread -w 1 --threads 16``) serves the example app. One keep-alive
client in this process asks for the room in three ways, in interleaved rounds (``--rounds``,
each ``--requests`` requests of every way, one after another):

* **whole room**: ``?room_name=`` (everyone with their tracks, as before pages existed);
* **no tracks**: ``&tracks=false``;
* **first page**: ``&limit=100``.

For each way it prints the answer's size, the median wall time of one request (this client's
clock: the request, LiveKit's listing, the answer's transfer) and the worker's CPU per
request (user + system from ``/proc/<pid>/stat`` over each round's requests, median of the
rounds), and the CPU per 1,000 participants listed. The targets (issue 27): the whole room of
5,000 answered in <= 100 ms at L = 0, with <= 20 ms of worker CPU per 1,000 participants.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

from flask_livekit_moderation import room_metadata

from .processes import ROOT, TENANT_ID, TENANT_TOKEN, Gunicorn, StandIn, WorkerSetup, cpu_seconds

ROOM = "big-room"
#: name -> extra query of the way to ask.
WAYS = {"whole room": {}, "no tracks": {"tracks": "false"}, "first page": {"limit": "100"}}
#: Issue 27: the whole room of this many participants ...
TARGET_PARTICIPANTS = 5000
#: ... within this much wall time at L = 0 ...
TARGET_WALL_MS = 100.0
#: ... and this much worker CPU per 1,000 participants.
TARGET_CPU_PER_1000_MS = 20.0


def _get(conn: http.client.HTTPConnection, query: dict[str, str]) -> bytes:
    path = "/livekit/participants?" + urllib.parse.urlencode({"room_name": ROOM, **query})
    conn.request("GET", path, headers={"Authorization": f"Bearer {TENANT_TOKEN}"})
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path} answered {answer.status}: {body[:300]!r}")
    return body


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every round against one stand-in and one gunicorn; the figures per way."""
    with StandIn(latency_ms=args.latency_ms) as stand_in:
        stand_in.seed([ROOM], args.participants, room_metadata(TENANT_ID), prefix="guest-")
        setup = WorkerSetup(workers=1, threads=16)
        with Gunicorn("ours", stand_in, setup) as server:
            (worker,) = server.workers()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            sizes = {way: len(_get(conn, query)) for way, query in WAYS.items()}
            listed = {way: len(json.loads(_get(conn, query))["participants"]) for way, query in WAYS.items()}
            walls: dict[str, list[float]] = {way: [] for way in WAYS}
            cpus: dict[str, list[float]] = {way: [] for way in WAYS}
            for _ in range(args.rounds):
                for way, query in WAYS.items():
                    cpu_before = cpu_seconds(worker)
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        _get(conn, query)
                        walls[way].append(time.perf_counter() - started)
                    cpus[way].append((cpu_seconds(worker) - cpu_before) / args.requests)
            conn.close()
    return {
        way: {
            "bytes": sizes[way],
            "participants": listed[way],
            "wall_ms_p50": median(walls[way]) * 1000,
            "worker_cpu_ms": median(cpus[way]) * 1000,
            "worker_cpu_ms_per_1000": median(cpus[way]) * 1000 / listed[way] * 1000,
            "rounds_cpu_ms": [c * 1000 for c in cpus[way]],
        }
        for way in WAYS
    }


def report(figures: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The table, and the targets' verdicts (when the run is the target's size and latency)."""
    lines = [
        f"GET /livekit/participants, one room of {args.participants} participants (one microphone each), "
        f"L = {args.latency_ms:g} ms, gunicorn -k gthread -w 1 --threads 16; "
        f"{args.rounds} interleaved rounds of {args.requests} requests per way",
        "",
        f"{'way':<12} {'listed':>7} {'bytes':>10} {'wall p50':>10} {'worker CPU':>11} {'CPU/1,000':>10}",
    ]
    for way, row in figures.items():
        lines.append(
            f"{way:<12} {row['participants']:>7} {row['bytes']:>10,} {row['wall_ms_p50']:>8.1f} ms"
            f" {row['worker_cpu_ms']:>8.1f} ms {row['worker_cpu_ms_per_1000']:>7.1f} ms"
        )
    whole = figures["whole room"]
    if args.participants == TARGET_PARTICIPANTS and args.latency_ms == 0:
        wall_ok = whole["wall_ms_p50"] <= TARGET_WALL_MS
        cpu_ok = whole["worker_cpu_ms_per_1000"] <= TARGET_CPU_PER_1000_MS
        lines += [
            "",
            f"target: whole room of {TARGET_PARTICIPANTS} in <= {TARGET_WALL_MS:g} ms: "
            f"{whole['wall_ms_p50']:.1f} ms {'PASS' if wall_ok else 'FAIL'}",
            f"target: <= {TARGET_CPU_PER_1000_MS:g} ms worker CPU per 1,000 participants: "
            f"{whole['worker_cpu_ms_per_1000']:.1f} ms {'PASS' if cpu_ok else 'FAIL'}",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.listing", description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=TARGET_PARTICIPANTS)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10, help="requests of each way per round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "listing.json")
    args = parser.parse_args(argv)

    figures = measure(args)
    print("\n".join(report(figures, args)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "args": {k: str(v) for k, v in vars(args).items()},
                "figures": figures,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
