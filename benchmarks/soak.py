"""Load and soak: ``python -m benchmarks.soak [--duration 60]``.

Serves the example app with gunicorn (several gthread workers, threads, ``--preload``)
against the LiveKit stand-in (each in its own process), drives it from a separate
client process with concurrent keep-alive clients for a bounded time, then reports:

* requests, answers by status, latency percentiles (overall and per operation);
* removals exactly once: every participant is targeted by two racing removes; exactly
  one must answer 200 and the other 404, and the stand-in's state (participants left
  per room) and call record (successful RemoveParticipant calls) must agree exactly
  with the 200 answers; removes aimed at another tenant's room answer 404 and never
  reach RemoveParticipant;
* each worker's open fds, threads and RSS after the warm-up and at the end, and whether
  any worker was replaced.

The mix: 50% removes (in racing pairs), 25% mutes (``muted=true``), 15% listings,
10% removes in a room owned by another tenant. Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask_livekit_moderation import room_metadata

from .processes import (
    ROOT,
    TENANT_ID,
    TENANT_TOKEN,
    Gunicorn,
    StandIn,
    WorkerSetup,
)

PER_ROOM = 20
MUTE_ROOMS = 5
#: A room owned by someone else: every remove aimed at it must be refused, untouched.
FOREIGN_ROOM = "soak-foreign"
FOREIGN_TENANT = "someone-else"
#: Operation of each slot in a client's cycle of 20 requests (the mix above).
CYCLE = ["remove"] * 10 + ["mute"] * 5 + ["list"] * 3 + ["foreign"] * 2

#: Default bounds on worker growth between the warm-up and the end.
FD_GROWTH = 8
THREAD_GROWTH = 2
RSS_GROWTH_MIB = 20.0


# ----------------------------------------------------------- client process
async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The client side: ``clients`` loops over CYCLE until the deadline (or removes run out)."""
    import aiohttp

    from .load import summarize

    url = spec["url"]
    headers = {"Authorization": f"Bearer {spec['token']}", "Content-Type": "application/json"}
    removes = iter(spec["removes"])  # each pair twice in a row: two clients race for it
    mutes, rooms = spec["mutes"], spec["list_rooms"]
    foreign = spec["foreign_identities"]
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    remove_answers: list[list[Any]] = []
    counter = 0
    deadline = time.perf_counter() + float(spec["duration"])

    async def one(session: aiohttp.ClientSession, op: str, n: int) -> bool:
        pair = None
        if op == "remove":
            pair = next(removes, None)
            if pair is None:
                return False
            method, path = "DELETE", "/livekit/participant"
            body: Any = {"room_name": pair[0], "participant_identity": pair[1]}
        elif op == "foreign":
            method, path = "DELETE", "/livekit/participant"
            body = {"room_name": FOREIGN_ROOM, "participant_identity": foreign[n % len(foreign)]}
        elif op == "mute":
            room, identity, track = mutes[n % len(mutes)]
            method, path = "POST", "/livekit/participant/mute"
            body = {"room_name": room, "participant_identity": identity, "track_sid": track, "muted": True}
        else:
            method, path, body = "GET", f"/livekit/participants?room_name={rooms[n % len(rooms)]}", None
        began = time.perf_counter()
        try:
            async with session.request(
                method, url + path, data=None if body is None else json.dumps(body), headers=headers
            ) as answer:
                raw = await answer.read()
                status = str(answer.status)
        except Exception as exc:  # noqa: BLE001 - a transport failure is an outcome to count
            raw, status = b"", type(exc).__name__
        latencies[op].append(time.perf_counter() - began)
        statuses[f"{op} {status}"] += 1
        code = ""
        if status != "200":
            try:
                code = json.loads(raw).get("code", "")
            except (ValueError, AttributeError):
                code = "non-JSON body"
            codes[f"{op} {status} {code}"] += 1
        if pair is not None:
            remove_answers.append([pair[0], pair[1], status, code])
        return True

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal counter
        slot = index
        while time.perf_counter() < deadline:
            counter += 1
            if not await one(session, CYCLE[slot % len(CYCLE)], counter):
                return
            slot += 1

    # The warm-up opens a new connection per request so that every worker accepts some and
    # starts all its threads; keep-alive connections would stay with whichever worker won them.
    connector = aiohttp.TCPConnector(
        limit=int(spec["clients"]), force_close=bool(spec.get("fresh_connections"))
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session, i) for i in range(int(spec["clients"]))))
        elapsed = time.perf_counter() - began
    everything = [v for values in latencies.values() for v in values]
    return {
        "elapsed_s": elapsed,
        "requests": len(everything),
        "statuses": dict(statuses),
        "error_codes": dict(codes),
        "latency_ms": summarize(everything),
        "latency_ms_by_op": {op: summarize(values) for op, values in latencies.items()},
        "remove_answers": remove_answers,
    }


def _run_client(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--client"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the soak client failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ------------------------------------------------------------- the checks
def check_removals(
    answers: list[list[Any]], calls: list[dict[str, Any]], rooms_left: dict[str, int], seeded: dict[str, int]
) -> dict[str, Any]:
    """Do the 200 answers, the stand-in's call record and its state agree, once each?"""
    per_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
    for room, identity, status, _code in answers:
        per_pair[(room, identity)].append(status)
    answered_removed = {pair for pair, statuses in per_pair.items() if "200" in statuses}
    twice = sorted(f"{r}/{i}" for (r, i), s in per_pair.items() if s.count("200") > 1)
    # A pair both of whose racing removes were sent must show one 200 and one 404.
    raced_badly = sorted(
        f"{r}/{i}: {s}" for (r, i), s in per_pair.items() if len(s) == 2 and sorted(s) != ["200", "404"]
    )
    performed: Counter[tuple[str, str]] = Counter()
    foreign_calls = 0
    for call in calls:
        if call["method"] != "RemoveParticipant":
            continue
        request = call.get("request") or {}
        pair = (request.get("room", ""), request.get("identity", ""))
        if pair[0] == FOREIGN_ROOM:
            foreign_calls += 1
        if call.get("status") == 200:
            performed[pair] += 1
    performed_twice = sorted(f"{r}/{i}" for (r, i), n in performed.items() if n > 1)
    state_mismatch = {}
    removed_per_room = Counter(room for room, _ in answered_removed)
    for room, count in seeded.items():
        expected = count - removed_per_room.get(room, 0)
        if rooms_left.get(room, 0) != expected:
            state_mismatch[room] = {"expected": expected, "stand_in": rooms_left.get(room, 0)}
    agree = set(performed) == answered_removed
    return {
        "removed": len(answered_removed),
        "pairs_targeted": len(per_pair),
        "answered_200_twice": twice[:20],
        "races_not_one_200_one_404": raced_badly[:20],
        "stand_in_removed_twice": performed_twice[:20],
        "call_record_matches_answers": agree,
        "only_in_call_record": sorted(f"{r}/{i}" for r, i in set(performed) - answered_removed)[:20],
        "only_in_answers": sorted(f"{r}/{i}" for r, i in answered_removed - set(performed))[:20],
        "state_mismatch_rooms": dict(list(state_mismatch.items())[:20]),
        "remove_calls_on_foreign_room": foreign_calls,
        "exactly_once": agree
        and not twice
        and not raced_badly
        and not performed_twice
        and not state_mismatch
        and foreign_calls == 0,
    }


def soak(
    duration: float = 60.0,
    workers: int = 3,
    threads: int = 4,
    clients: int = 24,
    latency_ms: float = 1.0,
    warmup_s: float = 2.0,
    log: Any = None,
) -> dict[str, Any]:
    """Run one soak and return its report (see the module docstring)."""
    say = log or (lambda message: None)
    setup = WorkerSetup(workers=workers, threads=threads, preload=True)
    metadata = room_metadata(TENANT_ID)
    # Far more than this machine can remove (about 150 racing pairs/s here): removes never run out.
    pool = int(max(2_000, (duration + warmup_s) * 400))
    rooms = [f"soak-{i}" for i in range(pool // PER_ROOM)]
    # --max-calls 0 keeps every call record: the exactly-once check reads all of them.
    with StandIn(latency_ms, extra_args=("--max-calls", "0")) as stand_in:
        say(f"seeding {len(rooms) * PER_ROOM} participants in {len(rooms)} rooms")
        pairs = stand_in.seed(rooms, PER_ROOM, metadata)
        mute_rooms = [f"soak-mute-{i}" for i in range(MUTE_ROOMS)]
        stand_in.seed(mute_rooms, PER_ROOM, metadata)
        mutes = [[r, i, t[0]] for r in mute_rooms for i, t in sorted(stand_in.tracks(r).items())]
        foreign = [
            identity for _, identity in stand_in.seed([FOREIGN_ROOM], 5, room_metadata(FOREIGN_TENANT))
        ]
        warm, measured = pairs[: len(pairs) // 20], pairs[len(pairs) // 20 :]
        with Gunicorn("ours", stand_in, setup) as server:
            say(f"serving with {setup.describe()}; warm-up {warmup_s:g} s")
            base = {
                "url": server.url,
                "token": TENANT_TOKEN,
                "clients": clients,
                "mutes": mutes,
                "list_rooms": mute_rooms,
                "foreign_identities": foreign,
            }
            warm_result = _run_client(
                {
                    **base,
                    "duration": warmup_s,
                    "fresh_connections": True,
                    "removes": [list(p) for p in warm for _ in range(2)],
                }
            )
            start = server.worker_stats()
            stand_in.control("DELETE", "calls")
            say(f"driving {clients} clients for {duration:g} s")
            result = _run_client(
                {**base, "duration": duration, "removes": [list(p) for p in measured for _ in range(2)]}
            )
            end = server.worker_stats()
            log_tail = server.log()
        calls = stand_in.control("GET", "calls?records=1")["calls"]
        rooms_left = {r["name"]: r["num_participants"] for r in stand_in.control("GET", "rooms")["rooms"]}
    warm_removed = Counter(room for room, _i, status, _c in warm_result["remove_answers"] if status == "200")
    # Rooms touched in the warm-up are checked against the measured run only.
    seeded = {room: PER_ROOM - warm_removed.get(room, 0) for room in {r for r, _ in measured}}
    removals = check_removals(result.pop("remove_answers"), calls, rooms_left, seeded)
    foreign_left = rooms_left.get(FOREIGN_ROOM, 0)
    removals["foreign_room_untouched"] = foreign_left == len(foreign)
    removals["exactly_once"] = removals["exactly_once"] and removals["foreign_room_untouched"]
    statuses = result["statuses"]
    server_errors = {
        k: v for k, v in statuses.items() if not k.split()[1].isdigit() or k.split()[1][0] == "5"
    }
    unexpected = {
        k: v
        for k, v in statuses.items()
        if k not in {"remove 200", "remove 404", "foreign 404", "mute 200", "list 200"}
    }
    start_by_pid = {s.pid: s for s in start}
    workers_report = []
    for stat in end:
        first = start_by_pid.get(stat.pid)
        workers_report.append(
            {
                "pid": stat.pid,
                "start": first.as_dict() if first else None,
                "end": stat.as_dict(),
                "fd_growth": stat.fds - first.fds if first else None,
                "thread_growth": stat.threads - first.threads if first else None,
                "rss_growth_mib": (stat.rss_kib - first.rss_kib) / 1024.0 if first else None,
            }
        )
    replaced = sorted(set(start_by_pid) ^ {s.pid for s in end})
    return {
        "setup": {
            "server": setup.describe(),
            "clients": clients,
            "duration_s": duration,
            "stand_in_latency_ms": latency_ms,
            "warmup_s": warmup_s,
            "seeded_participants": len(pairs),
        },
        **result,
        "rps": result["requests"] / result["elapsed_s"] if result["elapsed_s"] else 0.0,
        "server_errors": server_errors,
        "unexpected_statuses": unexpected,
        "removals": removals,
        "workers": workers_report,
        "workers_replaced": replaced,
        "gunicorn_log_tail": log_tail[-2000:],
    }


def verdicts(
    report: dict[str, Any], fd_growth: int, thread_growth: int, rss_growth_mib: float
) -> list[tuple[str, bool]]:
    """Each soak check with pass/fail."""
    workers = report["workers"]
    return [
        ("no 5xx and no transport errors", not report["server_errors"]),
        (
            "only expected statuses (remove 200/404, foreign 404, mute 200, list 200)",
            not report["unexpected_statuses"],
        ),
        ("every removal performed exactly once", report["removals"]["exactly_once"]),
        ("no worker replaced", not report["workers_replaced"]),
        (
            f"fd growth per worker <= {fd_growth}",
            all(w["fd_growth"] is not None and w["fd_growth"] <= fd_growth for w in workers),
        ),
        (
            f"thread growth per worker <= {thread_growth}",
            all(w["thread_growth"] is not None and w["thread_growth"] <= thread_growth for w in workers),
        ),
        (
            f"RSS growth per worker <= {rss_growth_mib:g} MiB",
            all(w["rss_growth_mib"] is not None and w["rss_growth_mib"] <= rss_growth_mib for w in workers),
        ),
    ]


def render(report: dict[str, Any], checks: list[tuple[str, bool]]) -> str:
    """The human-readable soak report."""
    setup = report["setup"]
    lat = report["latency_ms"]
    lines = [
        f"Soak: {setup['server']}, {setup['clients']} clients, {setup['duration_s']:g} s, "
        f"stand-in latency {setup['stand_in_latency_ms']:g} ms",
        f"requests {report['requests']} ({report['rps']:.0f}/s); latency ms p50 {lat['p50']:.2f} "
        f"p95 {lat['p95']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f}",
        "answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["statuses"].items())),
        "error codes: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(report["error_codes"].items())) or "none"),
    ]
    for op, figures in sorted(report["latency_ms_by_op"].items()):
        lines.append(
            f"  {op:8} p50 {figures['p50']:.2f} p95 {figures['p95']:.2f} p99 {figures['p99']:.2f} ms"
        )
    removals = report["removals"]
    lines.append(
        f"removals: {removals['removed']} participants removed of {removals['pairs_targeted']} targeted "
        f"(two racing removes each); call record matches answers: {removals['call_record_matches_answers']}; "
        f"RemoveParticipant calls on the foreign room: {removals['remove_calls_on_foreign_room']}"
    )
    lines.append("workers (after warm-up -> end): fds, threads, RSS MiB")
    for w in report["workers"]:
        s, e = w["start"] or {}, w["end"]
        lines.append(
            f"  pid {w['pid']}: fds {s.get('fds')} -> {e['fds']}, "
            f"threads {s.get('threads')} -> {e['threads']}, "
            f"RSS {s.get('rss_kib', 0) / 1024:.1f} -> {e['rss_kib'] / 1024:.1f}"
        )
    lines.append("Checks:")
    lines.extend(f"  [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in checks)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load after the warm-up (60)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up before the first reading (2)"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (3)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--clients", type=int, default=24, help="concurrent keep-alive clients (24)")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="stand-in latency per LiveKit call (1)")
    parser.add_argument("--fd-growth", type=int, default=FD_GROWTH)
    parser.add_argument("--thread-growth", type=int, default=THREAD_GROWTH)
    parser.add_argument("--rss-growth-mib", type=float, default=RSS_GROWTH_MIB)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # the client process
    args = parser.parse_args(argv)
    if args.client:
        json.dump(asyncio.run(_drive(json.load(sys.stdin))), sys.stdout)
        return 0
    report = soak(
        duration=args.duration,
        workers=args.workers,
        threads=args.threads,
        clients=args.clients,
        latency_ms=args.latency_ms,
        warmup_s=args.warmup,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    checks = verdicts(report, args.fd_growth, args.thread_growth, args.rss_growth_mib)
    report["checks"] = [{"check": name, "pass": ok} for name, ok in checks]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(render(report, checks))
    print(f"Raw figures: {args.out}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
