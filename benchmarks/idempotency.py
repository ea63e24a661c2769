"""``python -m benchmarks.idempotency``: what an ``Idempotency-Key`` adds to a request.

The LiveKit stand-in runs in its own process; the host app runs in this one, reached through
Flask's test client (no HTTP server: what is measured is the extension's own work). The route
is ``POST /livekit/participant/mute`` by an anonymous caller (GetParticipant, then
MutePublishedTrack). For each store (``--stores``, default memory and SQLite; ``redis`` starts
a ``redis-server``), requests without a key and requests with a new key each (one claim, one
kept answer: what every first attempt costs) alternate, ``--requests`` of each, after a
warm-up. Printed side by side: CPU per request of this process (every thread, the LiveKit
client's loop included; the stand-in is another process), the median wall
time, and what the key added. Raw figures go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

from flask import Flask

from flask_livekit_moderation import LiveKitModeration

from .bans import RedisProcess
from .processes import StandIn

ROOM, IDENTITY = "bench-room", "speaker"


def process_cpu_seconds() -> float:
    """User + system CPU of this process, every thread (``CLOCK_PROCESS_CPUTIME_ID``: the kernel's
    per-process accounting, as ``/proc/self/stat`` reports it, at nanosecond resolution rather
    than its 10 ms ticks)."""
    return time.process_time()


@contextmanager
def store_url(kind: str, directory: str) -> Iterator[str]:
    """The ``LIVEKIT_MODERATION_BAN_STORE`` of one store kind, its server running for the block."""
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{directory}/keys.sqlite3"
    elif kind == "redis":
        redis = RedisProcess(directory).start()
        try:
            yield redis.url
        finally:
            redis.stop()
    else:
        raise SystemExit(f"unknown store {kind!r}: memory, sqlite or redis")


def measure(stand_in: StandIn, store: str, requests: int, track_sid: str) -> dict[str, Any]:
    """Alternate requests without and with a key; CPU per request and wall medians of each."""
    app = Flask("bench")
    app.config.update(
        LIVEKIT_URL=stand_in.url,
        LIVEKIT_API_KEY=stand_in.api_key,
        LIVEKIT_API_SECRET=stand_in.api_secret,
        LIVEKIT_MODERATION_BAN_STORE=store,
        LIVEKIT_MODERATION_RECONCILE_INTERVAL=0,
    )
    moderation = LiveKitModeration(app)
    client = app.test_client()
    body = {"room_name": ROOM, "participant_identity": IDENTITY, "track_sid": track_sid, "muted": True}

    def send(keyed: bool) -> float:
        headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
        started = time.perf_counter()
        answer = client.post("/livekit/participant/mute", json=body, headers=headers)
        took = time.perf_counter() - started
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return took

    for _ in range(50):  # warm-up: connections, the store's schema, the token cache
        send(False), send(True)
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, float] = {False: 0.0, True: 0.0}
    for _ in range(requests):
        for keyed in (False, True):
            before = process_cpu_seconds()
            walls[keyed].append(send(keyed))
            cpu[keyed] += process_cpu_seconds() - before
    moderation.close()
    return {
        keyed_name: {
            "cpu_ms_per_request": round(cpu[keyed] / requests * 1000, 4),
            "wall_ms_p50": round(median(walls[keyed]) * 1000, 4),
        }
        for keyed, keyed_name in ((False, "without_key"), (True, "with_key"))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,sqlite", help="comma-separated: memory, sqlite, redis")
    parser.add_argument("--requests", type=int, default=1000, help="requests of each kind per store")
    parser.add_argument("--out", type=Path, help="write the raw figures here (JSON)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with StandIn() as stand_in, tempfile.TemporaryDirectory() as directory:
        stand_in.control("POST", "rooms", {"name": ROOM})
        added = stand_in.control("POST", "participants", {"room": ROOM, "identities": [IDENTITY]})
        track_sid = next(iter(added["participants"][IDENTITY].values()))
        for kind in args.stores.split(","):
            with store_url(kind, directory) as url:
                results[kind] = measure(stand_in, url, args.requests, track_sid)
    print(f"{args.requests} requests of each kind per store; POST /livekit/participant/mute, anonymous")
    print(
        f"{'store':<8} {'CPU ms/req, no key':>19} {'CPU ms/req, key':>16} {'added':>8} "
        f"{'p50 ms, no key':>15} {'p50 ms, key':>12}"
    )
    for kind, figures in results.items():
        plain, keyed = figures["without_key"], figures["with_key"]
        figures["added_cpu_ms_per_request"] = round(
            keyed["cpu_ms_per_request"] - plain["cpu_ms_per_request"], 4
        )
        print(
            f"{kind:<8} {plain['cpu_ms_per_request']:>19.3f} {keyed['cpu_ms_per_request']:>16.3f} "
            f"{figures['added_cpu_ms_per_request']:>8.3f} {plain['wall_ms_p50']:>15.3f} "
            f"{keyed['wall_ms_p50']:>12.3f}"
        )
    if args.out is not None:
        report = {"requests": args.requests, "python": sys.version.split()[0], "results": results}
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
