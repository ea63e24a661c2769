"""``python -m benchmarks``: ours vs. the naive route vs. the LiveKit floor vs. a no-op route.

For each simulated LiveKit round trip L (``--latencies``, default 0 and 20 ms) it starts
the LiveKit stand-in in its own process with that latency, serves ``benchmarks.apps:ours()``
and ``benchmarks.apps:naive()`` with gunicorn (auth on, one tenant; every room owned by
it), and drives each from a separate load-generator process (``benchmarks.load``):

* concurrency 1: ``--requests`` measured requests after ``--warmup`` -> p50/p95;
* concurrency ``--concurrency`` (16) for ``--duration`` (10 s) -> requests/s and errors.

Every remove targets a participant seeded for it, so each one removes a real participant;
mutes set ``muted=true`` on a seeded audio track (unmuting needs LiveKit's
``enable_remote_unmute``, off by default). At L = 0 a CPU phase compares the worker CPU per
request (user + system from ``/proc``) of ours, the hand-written DIY app
(``benchmarks.diy_app``) and the naive app in ``--cpu-rounds`` interleaved rounds of
``--cpu-requests`` requests: medians, and the median of each round's ratio to DIY. A last
phase measures one fresh worker's RSS after ``--memory-after`` and after ``--memory-requests``
requests. The table goes to stdout, the raw figures to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

from flask_livekit_moderation import room_metadata

from .processes import (
    ROOT,
    TENANT_ID,
    TENANT_TOKEN,
    Gunicorn,
    StandIn,
    WorkerSetup,
    cpu_seconds,
)

ROUTES = ("remove", "mute")
TARGETS = ("ours", "naive", "floor")
#: The apps whose worker CPU per request is compared, in the order each round runs them.
CPU_TARGETS = ("ours", "diy", "naive")

#: Participants per seeded room: a realistic room, so the naive route's listings stay small.
PER_ROOM = 20
#: Rooms whose participants the mute phases cycle through (mutes remove nobody).
MUTE_ROOMS = 10
#: Upper bound on the participants seeded for one timed remove phase.
MAX_POOL = 40_000

#: The issue's limits.
RATIO_LIMITS = {"remove": 0.55, "mute": 0.70}
OVERHEAD_AT_LATENCY_MS = 2.0
OWN_COST_AT_ZERO_MS = 0.5
THROUGHPUT_FACTOR = 2.0
MEMORY_GROWTH_MIB = 5.0
#: Issue 27: our worker CPU per request at most this many times the DIY app's.
CPU_RATIO_TO_DIY = 1.05


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load-generator process with ``spec`` and return its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Run:
    """One benchmark run: its settings, the processes of the current L, and the figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.setup = WorkerSetup(workers=args.workers, threads=args.threads, preload=True)
        self.metadata = room_metadata(TENANT_ID)
        self.rooms_made = 0
        self.results: dict[str, Any] = {}
        self.service_ms: dict[str, float] = {}

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(message, file=sys.stderr, flush=True)

    # -------------------------------------------------------------- seeding
    def fresh_pairs(self, stand_in: StandIn, count: int) -> list[list[str]]:
        """Seed ``count`` participants (rounded up to whole rooms) nobody has touched yet."""
        rooms = [f"bench-{self.rooms_made + i}" for i in range(max(1, math.ceil(count / PER_ROOM)))]
        self.rooms_made += len(rooms)
        return [list(pair) for pair in stand_in.seed(rooms, PER_ROOM, self.metadata)]

    def mute_items(self, stand_in: StandIn) -> list[list[str]]:
        """(room, identity, audio track SID) for every participant of the mute rooms."""
        rooms = [f"mute-{i}" for i in range(MUTE_ROOMS)]
        if not stand_in.control("GET", f"participants?room={rooms[0]}")["count"]:
            stand_in.seed(rooms, PER_ROOM, self.metadata)
        items = []
        for room in rooms:
            for identity, tracks in sorted(stand_in.tracks(room).items()):
                items.append([room, identity, tracks[0]])
        return items

    # ------------------------------------------------------------ one phase
    def spec(
        self, target: str, route: str, servers: dict[str, Gunicorn], stand_in: StandIn
    ) -> dict[str, Any]:
        if target == "floor":
            creds = {"url": stand_in.url, "api_key": stand_in.api_key, "api_secret": stand_in.api_secret}
            return {"kind": "floor", "route": route, "livekit": creds}
        server = servers["naive" if target.startswith("naive") else "ours"]
        return {"kind": "http", "route": route, "url": server.url, "token": TENANT_TOKEN}

    def measure(
        self,
        target: str,
        route: str,
        servers: dict[str, Gunicorn],
        stand_in: StandIn,
        c1_p50_ms: float | None = None,
    ) -> dict[str, Any]:
        """c=1 latency and c=N throughput of one target on one route."""
        args = self.args
        figures: dict[str, Any] = {}
        for phase in ("c1", "cN"):
            spec = self.spec(target, route, servers, stand_in)
            if phase == "c1":
                spec.update(concurrency=1, warmup=args.warmup, requests=args.requests)
            else:
                spec.update(concurrency=args.concurrency, warmup=args.warmup, duration=args.duration)
            if route == "remove":
                spec["items"] = self.fresh_pairs(stand_in, self.remove_budget(spec, figures))
            elif route == "mute":
                spec["items"] = self.mute_items(stand_in)
            stand_in.control("DELETE", "calls")
            figures[phase] = run_load(spec)
            if target == "floor" and phase == "c1":
                self.record_service_time(stand_in, route)
            self.log(
                f"  {route:6} {target:6} {phase}: p50 {figures[phase]['latency_ms']['p50']:.2f} ms, "
                f"{figures[phase]['rps']:.0f} req/s, errors {figures[phase]['error_count']}"
                + (" (ran out of participants)" if figures[phase]["exhausted"] else "")
            )
        return figures

    def remove_budget(self, spec: dict[str, Any], figures: dict[str, Any]) -> int:
        """Participants a remove phase may consume: all it can possibly remove, bounded."""
        if spec["concurrency"] == 1:
            return int(spec["warmup"] + spec["requests"])
        # At concurrency N a target cannot beat N requests per single-request latency.
        p50_s = max(figures["c1"]["latency_ms"]["min"], 0.05) / 1000.0
        ceiling = spec["concurrency"] * spec["duration"] / p50_s * 1.2 + spec["warmup"]
        return int(min(MAX_POOL, max(1000, ceiling)))

    def record_service_time(self, stand_in: StandIn, route: str) -> None:
        """Median time the stand-in spent inside each call of the floor's c=1 phase."""
        records = stand_in.control("GET", "calls?records=1")["calls"]
        by_method: dict[str, list[float]] = {}
        for record in records:
            if record.get("status") == 200:
                by_method.setdefault(record["method"], []).append(record["finished"] - record["started"])
        for method, durations in by_method.items():
            self.service_ms[f"{route}:{method}"] = median(durations) * 1000.0

    # ------------------------------------------------------------- one L
    def run_latency(self, latency_ms: float) -> dict[str, Any]:
        self.log(f"L = {latency_ms:g} ms: starting the stand-in and gunicorn ({self.setup.describe()})")
        out: dict[str, Any] = {}
        self.service_ms = {}
        with StandIn(latency_ms) as stand_in:
            with contextlib.ExitStack() as running:
                servers = {
                    name: running.enter_context(Gunicorn(name, stand_in, self.setup))
                    for name in ("ours", "naive")
                }
                out["noop"] = self.measure("ours", "noop", servers, stand_in)
                out["noop_naive_server"] = self.measure("naive", "noop", servers, stand_in)
                for route in self.args.routes:
                    out[route] = {
                        target: self.measure(target, route, servers, stand_in) for target in TARGETS
                    }
                if latency_ms == 0 and self.args.cpu_rounds:
                    servers["diy"] = running.enter_context(Gunicorn("diy", stand_in, self.setup))
                    out["cpu"] = self.measure_cpu(stand_in, servers)
            if latency_ms == 0 and self.args.memory_requests:
                out["memory"] = self.measure_memory(stand_in)
        out["standin_service_ms"] = dict(self.service_ms)
        return out

    def measure_cpu(self, stand_in: StandIn, servers: dict[str, Gunicorn]) -> dict[str, Any]:
        """Worker CPU per request of ours, DIY and naive, in interleaved rounds.

        Each round sends ``--cpu-requests`` requests (c=1) of each route to each app, one app
        after the other, and reads each worker's user + system CPU from ``/proc`` before and
        after: the machine's other work moves every app's figure of a round alike, so the
        ratios of a round hold where wall-clock differences do not.
        """
        args = self.args
        cpu: dict[str, dict[str, list[float]]] = {
            route: {target: [] for target in CPU_TARGETS} for route in args.routes
        }
        errors = 0
        mute_items = self.mute_items(stand_in)
        for round_number in range(args.cpu_rounds + 1):  # round 0 warms every app up
            for route in args.routes:
                for target in CPU_TARGETS:
                    server = servers[target]
                    spec: dict[str, Any] = {
                        "kind": "http",
                        "route": route,
                        "url": server.url,
                        "token": TENANT_TOKEN,
                        "concurrency": 1,
                        "warmup": 0,
                        "requests": args.cpu_requests,
                    }
                    if route == "remove":
                        spec["items"] = self.fresh_pairs(stand_in, args.cpu_requests)
                    else:
                        spec["items"] = mute_items
                    workers = server.workers()
                    before = sum(cpu_seconds(pid) for pid in workers)
                    result = run_load(spec)
                    used = sum(cpu_seconds(pid) for pid in workers) - before
                    errors += result["error_count"]
                    if round_number:
                        cpu[route][target].append(used / result["requests"] * 1000.0)
        self.log(f"  cpu: {args.cpu_rounds} rounds of {args.cpu_requests} requests, errors {errors}")
        return {
            "rounds": args.cpu_rounds,
            "requests_per_round": args.cpu_requests,
            "errors": errors,
            "per_request_ms": cpu,
            "median_ms": {
                route: {target: median(values) for target, values in per.items()}
                for route, per in cpu.items()
            },
            # Each round's own ratio, then their median: a noisy round moves one ratio, not all.
            "ratio_to_diy": {
                route: {
                    # A round too short for one clock tick (10 ms) of DIY's CPU has no ratio.
                    target: median(
                        t / d if d else math.inf for t, d in zip(per[target], per["diy"], strict=True)
                    )
                    for target in CPU_TARGETS
                }
                for route, per in cpu.items()
            },
        }

    def measure_memory(self, stand_in: StandIn) -> dict[str, Any]:
        """A fresh worker's RSS after ``--memory-after`` and ``--memory-requests`` requests."""
        args = self.args
        self.log(f"  memory: {args.memory_requests} requests (half removes, half mutes) on a fresh gunicorn")
        mute_items = self.mute_items(stand_in)
        checkpoints: dict[str, Any] = {}
        errors = 0
        with Gunicorn("ours", stand_in, self.setup) as ours:
            checkpoints["start"] = [s.as_dict() for s in ours.worker_stats()]
            done = 0
            for label, upto in (("after_first", args.memory_after), ("after_all", args.memory_requests)):
                batch = upto - done
                for route, count in (("remove", batch // 2), ("mute", batch - batch // 2)):
                    spec = {
                        "kind": "http",
                        "route": route,
                        "url": ours.url,
                        "token": TENANT_TOKEN,
                        "concurrency": args.concurrency,
                        "warmup": 0,
                        "requests": count,
                        "items": self.fresh_pairs(stand_in, count) if route == "remove" else mute_items,
                    }
                    errors += run_load(spec)["error_count"]
                done = upto
                checkpoints[label] = [s.as_dict() for s in ours.worker_stats()]
        growth = [
            (end["rss_kib"] - first["rss_kib"]) / 1024.0
            for first, end in zip(checkpoints["after_first"], checkpoints["after_all"], strict=False)
        ]
        self.log(
            f"  memory: RSS growth per worker {', '.join(f'{g:.2f}' for g in growth)} MiB, errors {errors}"
        )
        return {
            "after_first_requests": args.memory_after,
            "after_all_requests": args.memory_requests,
            "workers": checkpoints,
            "rss_growth_mib": growth,
            "errors": errors,
        }


# ---------------------------------------------------------------- targets
def evaluate(results: dict[str, Any], routes: Sequence[str]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and pass/fail (those measured)."""
    checks: list[dict[str, Any]] = []

    def p50(block: dict[str, Any]) -> float:
        return float(block["c1"]["latency_ms"]["p50"])

    def add(name: str, value: float, limit: float, ok: bool, unit: str) -> None:
        checks.append({"target": name, "value": value, "limit": limit, "unit": unit, "pass": ok})

    for _key, per_l in results.items():
        latency = per_l["latency_ms"]
        noop = p50(per_l["noop"])
        for route in routes:
            ours, naive, floor = (p50(per_l[route][t]) for t in TARGETS)
            if latency == 20:
                ratio = ours / naive
                add(
                    f"L=20 {route}: ours/naive p50",
                    ratio,
                    RATIO_LIMITS[route],
                    ratio <= RATIO_LIMITS[route],
                    "",
                )
                over = ours - (floor + noop)
                add(
                    f"L=20 {route}: ours p50 - (floor p50 + noop p50)",
                    over,
                    OVERHEAD_AT_LATENCY_MS,
                    over <= OVERHEAD_AT_LATENCY_MS,
                    "ms",
                )
            if latency == 0:
                own = ours - floor - noop
                add(
                    f"L=0 {route}: ours p50 - floor p50 - noop p50",
                    own,
                    OWN_COST_AT_ZERO_MS,
                    own <= OWN_COST_AT_ZERO_MS,
                    "ms",
                )
                ours_n, naive_n = per_l[route]["ours"]["cN"], per_l[route]["naive"]["cN"]
                factor = ours_n["rps"] / naive_n["rps"] if naive_n["rps"] else math.inf
                add(
                    f"L=0 {route} c=N: ours req/s / naive req/s (ours errors {ours_n['error_count']})",
                    factor,
                    THROUGHPUT_FACTOR,
                    factor >= THROUGHPUT_FACTOR and ours_n["error_count"] == 0,
                    "x",
                )
        cpu = per_l.get("cpu")
        if cpu:
            for route, ratios in cpu["ratio_to_diy"].items():
                ratio = ratios["ours"]
                add(
                    f"L=0 {route}: worker CPU per request, ours / DIY "
                    f"(median of {cpu['rounds']} rounds' ratios)",
                    ratio,
                    CPU_RATIO_TO_DIY,
                    ratio <= CPU_RATIO_TO_DIY and cpu["errors"] == 0,
                    "x<=",
                )
        memory = per_l.get("memory")
        if memory:
            worst = max(memory["rss_growth_mib"])
            add(
                f"worker RSS after {memory['after_all_requests']} - "
                f"after {memory['after_first_requests']} requests",
                worst,
                MEMORY_GROWTH_MIB,
                worst <= MEMORY_GROWTH_MIB and memory["errors"] == 0,
                "MiB",
            )
    return checks


# ------------------------------------------------------------------ output
def render_table(results: dict[str, Any], routes: Sequence[str], concurrency: int, duration: float) -> str:
    """The human-readable table of one run."""
    lines = []
    header = (
        f"{'L':>5}  {'route':6}  {'target':6}  {'p50 ms':>8}  {'p95 ms':>8}  "
        f"{f'req/s c={concurrency}':>12}  {'errors':>6}  {'p50 ms c=' + str(concurrency):>12}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for per_l in results.values():
        latency = f"{per_l['latency_ms']:g}ms"
        rows = [("noop", "ours", per_l["noop"]), ("noop", "naive", per_l["noop_naive_server"])]
        rows += [(route, target, per_l[route][target]) for route in routes for target in TARGETS]
        for route, target, block in rows:
            c1, cn = block["c1"], block["cN"]
            mark = "*" if cn["exhausted"] else ""
            lines.append(
                f"{latency:>5}  {route:6}  {target:6}  "
                f"{c1['latency_ms']['p50']:8.2f}  {c1['latency_ms']['p95']:8.2f}  "
                f"{cn['rps']:11.0f}{mark:1}  {cn['error_count']:6d}  {cn['latency_ms']['p50']:12.2f}"
            )
        lines.append("")
    lines.append(f"c=1 figures: p50/p95 of the measured requests; c={concurrency}: {duration:g} s run.")
    lines.append("noop/naive is the no-op route on the naive app's gunicorn (same setup as ours).")
    return "\n".join(lines)


def render_cpu(key: str, cpu: dict[str, Any]) -> str:
    """The worker-CPU table of one L: medians per app and route, and the ratios to DIY."""
    lines = [
        f"Worker CPU per request at {key} (user + system from /proc; median of {cpu['rounds']} "
        f"interleaved rounds of {cpu['requests_per_round']} requests, c=1):",
        f"{'route':8}" + "".join(f"{target:>12}" for target in CPU_TARGETS) + "  ratios to DIY",
    ]
    for route, medians in cpu["median_ms"].items():
        ratios = ", ".join(f"{t} {cpu['ratio_to_diy'][route][t]:.2f}" for t in CPU_TARGETS if t != "diy")
        lines.append(f"{route:8}" + "".join(f"{medians[t]:9.3f} ms" for t in CPU_TARGETS) + f"  {ratios}")
    return "\n".join(lines)


def render_checks(checks: list[dict[str, Any]]) -> str:
    lines = ["Targets:"]
    for check in checks:
        verdict = "PASS" if check["pass"] else "FAIL"
        unit = check["unit"]
        comparison = ">=" if unit == "x" else "<="
        unit = unit.removesuffix("<=")  # "x<=": a factor that must stay below its limit
        lines.append(
            f"  [{verdict}] {check['target']}: {check['value']:.3f}{unit} "
            f"(target {comparison} {check['limit']:g}{unit})"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--latencies", default="0,20", help="simulated LiveKit round trips in ms (default 0,20)"
    )
    parser.add_argument("--routes", default="remove,mute", help="routes to measure (default remove,mute)")
    parser.add_argument("--requests", type=int, default=400, help="measured requests at concurrency 1 (400)")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured requests before each phase (40)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in the throughput phase (16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the throughput phase (10)")
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=10_000,
        help="requests of the memory phase, 0 to skip it (10000)",
    )
    parser.add_argument(
        "--memory-after", type=int, default=200, help="first RSS reading after this many (200)"
    )
    parser.add_argument(
        "--cpu-rounds",
        type=int,
        default=5,
        help="interleaved rounds of the CPU phase at L=0, 0 to skip it (5)",
    )
    parser.add_argument("--cpu-requests", type=int, default=200, help="requests per app and round (200)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (1)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (16)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        help="where the raw JSON goes (benchmarks/results/latest.json)",
    )
    parser.add_argument("--no-targets", action="store_true", help="do not print the targets (smoke runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.latencies = [float(v) for v in args.latencies.split(",") if v.strip()]
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = set(args.routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")
    if args.memory_requests and args.memory_after >= args.memory_requests:
        parser.error("--memory-after must be below --memory-requests")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    began = time.monotonic()
    loadavg_before = os.getloadavg()
    results: dict[str, Any] = {}
    for latency in args.latencies:
        results[f"L{latency:g}"] = {"latency_ms": latency, **run.run_latency(latency)}
    checks = [] if args.no_targets else evaluate(results, args.routes)
    report: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine skews every figure; the load averages say how much there was.
            "loadavg_before": loadavg_before,
            "loadavg_after": os.getloadavg(),
        },
        "setup": {
            "server": run.setup.describe(),
            "load_generator": "one process, aiohttp keep-alive; floor: one persistent livekit-api client",
            "per_room": PER_ROOM,
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "targets": checks,
        "wall_s": time.monotonic() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"Server: {run.setup.describe()}; load generator: separate process, aiohttp keep-alive.")
    print(
        f"Machine: {os.cpu_count()} CPUs shared by the load generator, gunicorn and the stand-in; "
        "load average "
        f"{loadavg_before[0]:.2f} before, {report['machine']['loadavg_after'][0]:.2f} after."
    )
    print(render_table(results, args.routes, args.concurrency, args.duration))
    for key, per_l in results.items():
        service = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(per_l["standin_service_ms"].items()))
        print(f"Stand-in service time at {key} (median ms inside the stand-in, floor c=1): {service}")
    for key, per_l in results.items():
        if "cpu" in per_l:
            print(render_cpu(key, per_l["cpu"]))
    if checks:
        print(render_checks(checks))
    print(f"Raw figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
