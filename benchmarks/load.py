"""The load generator, run in its own process: ``python -m benchmarks.load < spec.json``.

It reads one JSON spec on stdin, drives a target over HTTP keep-alive (``aiohttp``,
one connection per concurrent client) or, for the *floor*, issues the LiveKit calls our
route makes with one persistent ``livekit-api`` client, and prints one JSON result.

Spec keys: ``kind`` (``http`` | ``floor``), ``route`` (``remove`` | ``mute`` | ``noop``),
``url`` + ``token`` (http), ``livekit`` = ``{url, api_key, api_secret}`` (floor),
``items`` (``[room, identity]`` or ``[room, identity, track_sid]``; removes use each
once, mutes cycle through them), ``concurrency``, ``warmup`` (requests not measured),
and either ``requests`` (measured count) or ``duration`` (seconds).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from livekit.api import LiveKitAPI
from livekit.protocol.room import ListRoomsRequest, MuteRoomTrackRequest, RoomParticipantIdentity

#: One request: returns ``"ok"`` or what went wrong (an HTTP status or an exception name).
Operation = Callable[[list[str]], Awaitable[str]]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summarize(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min/max in milliseconds."""
    values = sorted(latencies)
    ms = 1000.0
    return {
        "p50": percentile(values, 0.50) * ms,
        "p95": percentile(values, 0.95) * ms,
        "p99": percentile(values, 0.99) * ms,
        "mean": (sum(values) / len(values) * ms) if values else 0.0,
        "min": values[0] * ms if values else 0.0,
        "max": values[-1] * ms if values else 0.0,
    }


def _http_operation(session: aiohttp.ClientSession, spec: dict[str, Any]) -> Operation:
    url, route = spec["url"], spec["route"]
    headers = {"Authorization": f"Bearer {spec['token']}", "Content-Type": "application/json"}

    async def send(method: str, path: str, body: bytes | None) -> str:
        async with session.request(method, url + path, data=body, headers=headers) as answer:
            await answer.read()
            return "ok" if answer.status == 200 else str(answer.status)

    if route == "noop":
        return lambda item: send("GET", "/noop", None)
    if route == "remove":
        return lambda item: send(
            "DELETE",
            "/livekit/participant",
            json.dumps({"room_name": item[0], "participant_identity": item[1]}).encode(),
        )
    if route == "mute":
        return lambda item: send(
            "POST",
            "/livekit/participant/mute",
            json.dumps(
                {"room_name": item[0], "participant_identity": item[1], "track_sid": item[2], "muted": True}
            ).encode(),
        )
    raise ValueError(f"unknown route {route!r}")


def _floor_operation(lk: LiveKitAPI, route: str) -> Operation:
    # Exactly the calls our route makes for a caller with an auth id (operations.py),
    # in the same order and with the same concurrency; no Flask, no extension code.
    async def remove(item: list[str]) -> str:
        room, identity = item[0], item[1]
        await lk.room.list_rooms(ListRoomsRequest(names=[room]))
        await lk.room.remove_participant(RoomParticipantIdentity(room=room, identity=identity))
        return "ok"

    async def mute(item: list[str]) -> str:
        room, identity, track = item[0], item[1], item[2]
        await asyncio.gather(
            lk.room.list_rooms(ListRoomsRequest(names=[room])),
            lk.room.get_participant(RoomParticipantIdentity(room=room, identity=identity)),
        )
        answer = await lk.room.mute_published_track(
            MuteRoomTrackRequest(room=room, identity=identity, track_sid=track, muted=True)
        )
        return "ok" if answer.HasField("track") else "no_track"

    return {"remove": remove, "mute": mute}[route]


def _items(spec: dict[str, Any]) -> Iterator[list[str]]:
    items = spec.get("items") or []
    if spec["route"] == "noop":
        while True:
            yield []
    if spec["route"] == "remove":
        yield from items  # a participant can only be removed once
        return
    while items:
        yield from items


async def _drive(operation: Operation, spec: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(spec.get("concurrency", 1))
    warmup = int(spec.get("warmup", 0))
    target = spec.get("requests")
    duration = spec.get("duration")
    items = _items(spec)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    exhausted = False
    started = 0  # requests handed out, warm-up included
    clock = time.perf_counter
    measure_from: float | None = None
    deadline = float("inf")

    async def run_one(item: list[str], measured: bool) -> None:
        begin = clock()
        try:
            outcome = await operation(item)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
            outcome = getattr(exc, "code", None) or type(exc).__name__
        if measured:
            latencies.append(clock() - begin)
            outcomes[outcome] += 1

    async def client() -> None:
        nonlocal started, exhausted, measure_from, deadline
        while True:
            if started < warmup:
                measured = False
            else:
                if measure_from is None:
                    # The first measured request starts the clock (warm-up is over
                    # for this client; the others finish theirs within one request).
                    measure_from = clock()
                    if duration is not None:
                        deadline = measure_from + float(duration)
                if target is not None and started - warmup >= int(target):
                    return
                if clock() >= deadline:
                    return
                measured = True
            item = next(items, None)
            if item is None:
                exhausted = True
                return
            started += 1
            await run_one(item, measured)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = clock() - (measure_from or clock())
    total = sum(outcomes.values())
    errors = {k: v for k, v in outcomes.items() if k != "ok"}
    return {
        "requests": total,
        "ok": outcomes["ok"],
        "errors": errors,
        "error_count": sum(errors.values()),
        "elapsed_s": elapsed,
        "rps": total / elapsed if elapsed > 0 else 0.0,
        "latency_ms": summarize(latencies),
        "exhausted": exhausted,
        "concurrency": concurrency,
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive the target the spec names and return the figures."""
    if spec["kind"] == "floor":
        creds = spec["livekit"]
        async with LiveKitAPI(creds["url"], creds["api_key"], creds["api_secret"]) as lk:
            return await _drive(_floor_operation(lk, spec["route"]), spec)
    connector = aiohttp.TCPConnector(limit=int(spec.get("concurrency", 1)))
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _drive(_http_operation(session, spec), spec)


def main() -> None:
    spec = json.load(sys.stdin)
    result = asyncio.run(run(spec))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
