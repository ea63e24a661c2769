"""Measure the emulator's service time for a ListRooms + RemoveParticipant pair.

``python -m flask_livekit_moderation.testing._measure [--pairs 2000] [--in-process]``

One persistent ``livekit.api.LiveKitAPI`` client removes seeded participants one
by one, each removal preceded by a ListRooms, and the wall time of every pair is
taken.  By default the emulator runs as a separate process (as the benchmark and
soak scripts run it), so the figure is client + HTTP + emulator time with no GIL
shared between client and server; ``--in-process`` runs it on a thread instead.
Prints one JSON line with the median and other percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from livekit import api
from livekit.protocol import room as room_pb

from .emulator import LiveKitEmulator

ROOM = "measure-room"


def _control(url: str, secret: str, route: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        f"{url}/_emulator/{route}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


async def _drive(url: str, key: str, secret: str, pairs: int, warmup: int) -> list[float]:
    timings: list[float] = []
    async with api.LiveKitAPI(url, key, secret) as lk:
        for i in range(pairs + warmup):
            t0 = time.perf_counter()
            await lk.room.list_rooms(room_pb.ListRoomsRequest(names=[ROOM]))
            await lk.room.remove_participant(room_pb.RoomParticipantIdentity(room=ROOM, identity=f"user-{i}"))
            if i >= warmup:
                timings.append(time.perf_counter() - t0)
    return timings


def measure(pairs: int = 2000, in_process: bool = False, warmup: int = 100) -> dict[str, float | str]:
    """Return percentiles (ms) of the pair time; see the module docstring."""
    identities = [f"user-{i}" for i in range(pairs + warmup)]
    proc: subprocess.Popen[str] | None = None
    emu: LiveKitEmulator | None = None
    try:
        if in_process:
            emu = LiveKitEmulator().start()
            emu.add_room(ROOM)
            emu.add_participants(ROOM, identities)
            url, key, secret = emu.url, emu.api_key, emu.api_secret
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flask_livekit_moderation.testing", "--port", "0"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            url, key, secret = info["url"], info["api_key"], info["api_secret"]
            _control(url, secret, "rooms", {"name": ROOM})
            _control(url, secret, "participants", {"room": ROOM, "identities": identities})
        timings = asyncio.run(_drive(url, key, secret, pairs, warmup))
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    timings.sort()
    ms = [t * 1000 for t in timings]
    return {
        "pairs": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p10_ms": round(ms[len(ms) // 10], 3),
        "p90_ms": round(ms[len(ms) * 9 // 10], 3),
        "p99_ms": round(ms[len(ms) * 99 // 100], 3),
        "mode": "in-process" if in_process else "subprocess",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.pairs, args.in_process)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
