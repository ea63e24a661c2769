"""``python -m benchmarks.bans``: how fast a ban sticks, and what a ban look-up costs.

1. **Webhook arrival -> RemoveParticipant.** The LiveKit stand-in runs in its own process
   (``--latency-ms`` adds a simulated round trip to every RoomService call) and sends its
   LiveKit-signed webhooks to gunicorn (``-k gthread -w 1``) serving :func:`create_app`.
   ``--joins`` identities are banned first (through the route), then join one at a time;
   each ``participant_joined`` webhook makes the app remove them. The app notes when each
   webhook reached it (WSGI entry, ``time.monotonic``); the stand-in notes when ListRooms and
   RemoveParticipant arrived (same clock: CLOCK_MONOTONIC is system-wide on Linux). So:
   ``total`` = arrival -> RemoveParticipant received; ``round trip`` = ListRooms received ->
   RemoveParticipant received (the room check's LiveKit round trip); ``own`` = total - round
   trip: verification, ban look-up, Flask, and sending. Target: own p50 <= 5 ms.
2. **active_ban with ``--stored`` (100,000) bans** in SQLite (a file), in Redis (a real
   ``redis-server``) and in PostgreSQL (a real server, Debian's ``postgresql``):
   ``LiveKitModeration.active_ban(room, identity, owner=...)`` p50 for hits and misses (store
   only; target 0.2 ms on SQLite, one round trip on Redis and PostgreSQL, shown beside a Redis
   PING and a PostgreSQL ``SELECT 1``), and, for reference, with the owner read from LiveKit
   (one ListRooms). For SQLite, the same look-up through SQLAlchemy Core (what the PostgreSQL
   store runs on) is timed beside it: why the SQLite store keeps ``sqlite3``.

Medians are from one run. ``--json PATH`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from statistics import median, quantiles
from typing import Any

from flask import Flask, Response, jsonify, request

from flask_livekit_moderation import LiveKitModeration, room_metadata, signals
from flask_livekit_moderation.bans import Ban, BanStore, PostgreSQLBanStore, RedisBanStore, SQLiteBanStore

from .postgres import postgres_server
from .processes import TENANT_ID, TENANT_TOKEN, Gunicorn, StandIn, WorkerSetup, http_json
from .processes import _ServerProcess as ServerProcess

ROOM = "bench-bans"
OWN_TARGET_MS = 5.0
SQLITE_TARGET_MS = 0.2


# -- the app gunicorn serves --------------------------------------------------------------


def create_app() -> Flask:
    """The host app for ban benchmarks and cross-process tests, configured from the environment.

    ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``, ``AUTH_REQUIRED``,
    ``AUTH_API_SECRETS_JSON`` as the example app; ``BANS_STORE`` (default: the SQLite file
    under ``BANS_INSTANCE_PATH``); ``BANS_EVENT_LOG``: a file where every webhook removal
    appends ``{"pid", "identity", "arrival"}``. Routes: ``/noop``, ``/token?room=&identity=``.
    Answers carry ``X-Worker-Pid``.
    """
    app = Flask(__name__, instance_path=os.environ.get("BANS_INSTANCE_PATH") or tempfile.gettempdir())
    app.config.update(
        LIVEKIT_URL=os.environ.get("LIVEKIT_URL"),
        LIVEKIT_API_KEY=os.environ.get("LIVEKIT_API_KEY"),
        LIVEKIT_API_SECRET=os.environ.get("LIVEKIT_API_SECRET"),
        LIVEKIT_MODERATION_AUTH_REQUIRED=os.environ.get("AUTH_REQUIRED", "false"),
        LIVEKIT_MODERATION_API_SECRETS=os.environ.get("AUTH_API_SECRETS_JSON", "[]"),
    )
    if os.environ.get("BANS_STORE"):
        app.config["LIVEKIT_MODERATION_BAN_STORE"] = os.environ["BANS_STORE"]
    moderation = LiveKitModeration(app)
    event_log = os.environ.get("BANS_EVENT_LOG")

    inner = app.wsgi_app

    def stamped(environ: dict[str, Any], start_response: Any) -> Any:
        environ["bans.arrival"] = time.monotonic()  # the webhook reached the app
        return inner(environ, start_response)

    app.wsgi_app = stamped  # type: ignore[method-assign]

    @signals.banned_participant_removed.connect_via(app)
    def note_removal(sender: Flask, **data: Any) -> None:
        if event_log:
            line = {
                "pid": os.getpid(),
                "identity": data["participant_identity"],
                "arrival": request.environ["bans.arrival"],
            }
            with open(event_log, "a", encoding="utf-8") as out:  # one short append: atomic
                out.write(json.dumps(line) + "\n")

    @app.get("/noop")
    def noop() -> Any:
        return jsonify({})

    @app.get("/token")
    def token() -> Any:
        return jsonify(token=moderation.participant_token(request.args["room"], request.args["identity"]))

    @app.after_request
    def worker_pid(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return app


class BansGunicorn(Gunicorn):
    """gunicorn serving :func:`create_app` (``extra_env`` added to the usual environment)."""

    def __init__(self, stand_in: Any, setup: WorkerSetup, extra_env: dict[str, str]) -> None:
        super().__init__("create_app", stand_in, setup)
        self.extra_env = extra_env

    def environment(self) -> dict[str, str]:
        return {**super().environment(), **self.extra_env}

    def command(self) -> list[str]:
        command = super().command()
        command[-1] = "benchmarks.bans:create_app()"
        return command


class RedisProcess(ServerProcess):
    """Debian's ``redis-server`` on a free loopback port, persisting nothing, in ``directory``."""

    what = "redis-server"

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _pong(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def start(self, timeout: float = 10.0) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: bash .ci/deps, or apt-get install -y redis-server"
            )
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory]
        self._spawn([*command, "--save", "", "--appendonly", "no"], self._pong, timeout)
        return self


# -- figures ------------------------------------------------------------------------------


def _ms(seconds: Iterable[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    p95 = quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
    return {"p50": round(median(values), 4), "p95": round(p95, 4), "n": len(values)}


def measure_enforcement(joins: int, latency_ms: float, workdir: Path) -> dict[str, Any]:
    """Ban ``joins`` identities, make each join, and time arrival -> RemoveParticipant."""
    event_log = workdir / "removals.jsonl"
    setup = WorkerSetup(workers=1, threads=8)
    with StandIn(latency_ms=latency_ms) as stand_in:
        env = {"BANS_INSTANCE_PATH": str(workdir / "instance"), "BANS_EVENT_LOG": str(event_log)}
        with BansGunicorn(stand_in, setup, env) as app:
            stand_in.control("POST", "settings", {"webhook_urls": [app.url + "/livekit/webhook"]})
            stand_in.control("POST", "rooms", {"name": ROOM, "metadata": room_metadata(TENANT_ID)})
            identities = [f"banned-{i}" for i in range(joins)]
            auth = {"Authorization": f"Bearer {TENANT_TOKEN}"}
            for identity in identities:
                body = {"room_name": ROOM, "participant_identity": identity, "duration_seconds": 3600}
                status, answer = http_json(app.url, "POST", "/livekit/bans", body, auth)
                if status != 201:
                    raise RuntimeError(f"ban answered {status}: {answer}")
            stand_in.control("GET", "webhooks?wait=10")
            stand_in.control("DELETE", "calls")
            for identity in identities:
                stand_in.control(
                    "POST", "participants", {"room": ROOM, "identities": [identity], "tracks": []}
                )
                stand_in.control("GET", "webhooks?wait=10")  # joined, removed, left: all delivered
            calls = stand_in.control("GET", "calls?records=1")["calls"]
            left = stand_in.control("GET", f"participants?room={ROOM}")["identities"]
            # The app's own figure for "one round trip": the token route's ListRooms.
            token_times = []
            for _ in range(min(joins, 50)):
                started = time.perf_counter()
                status, _ = http_json(app.url, "GET", f"/token?room={ROOM}&identity=someone")
                token_times.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"token route answered {status}")
    arrivals = {}
    for line in event_log.read_text().splitlines():
        entry = json.loads(line)
        arrivals[entry["identity"]] = entry["arrival"]
    list_rooms: float | None = None
    total, before, round_trip = [], [], []
    for call in calls:
        if call["method"] == "ListRooms":
            list_rooms = call["started"]
        elif call["method"] == "RemoveParticipant" and list_rooms is not None:
            arrival = arrivals[call["request"]["identity"]]
            total.append(call["started"] - arrival)
            before.append(list_rooms - arrival)
            round_trip.append(call["started"] - list_rooms)
            list_rooms = None
    if len(total) != joins or left:
        raise RuntimeError(f"{len(total)} removals for {joins} banned joins; still in the room: {left}")
    own = [t - r for t, r in zip(total, round_trip, strict=True)]
    return {
        "latency_ms": latency_ms,
        "joins": joins,
        "setup": setup.describe(),
        "total_ms": _ms(total),
        "arrival_to_list_rooms_ms": _ms(before),
        "round_trip_ms": _ms(round_trip),
        "own_ms": _ms(own),
        "token_route_ms": _ms(token_times),
    }


def _seed(store: BanStore, stored: int) -> tuple[list[tuple[str, str]], float]:
    """``stored`` bans of one owner over 1,000 rooms; returns their keys and the seconds taken."""
    keys = [(f"room-{i % 1000}", f"user-{i}") for i in range(stored)]
    started = time.perf_counter()
    batch = 10_000
    for start in range(0, stored, batch):
        store.put_many(
            Ban.starting_now(TENANT_ID, room, identity, 3600, "benchmark")
            for room, identity in keys[start : start + batch]
        )
    return keys, time.perf_counter() - started


def _timed(call: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def _time_lookups(
    app: Flask,
    moderation: LiveKitModeration,
    hits: list[tuple[str, str]],
    misses: list[tuple[str, str]],
    lookups: int,
) -> dict[str, Any]:
    hit_iter, miss_iter = iter(hits), iter(misses)

    def hit() -> None:
        room, identity = next(hit_iter)
        assert moderation.active_ban(room, identity, owner=TENANT_ID) is not None

    def miss() -> None:
        room, identity = next(miss_iter)
        assert moderation.active_ban(room, identity, owner=TENANT_ID) is None

    with app.app_context():
        _timed(lambda: moderation.active_ban("room-0", "user-0", owner=TENANT_ID), 200)  # warm-up
        return {
            "hit_ms": _ms(_timed(hit, lookups)),
            "miss_ms": _ms(_timed(miss, lookups)),
            "owner_from_livekit_ms": _ms(
                _timed(lambda: moderation.active_ban("room-7", "user-7"), min(lookups, 200))
            ),
        }


def _sqlalchemy_sqlite_ms(path: str, hits: list[tuple[str, str]]) -> dict[str, float]:
    """The SQLite hit look-up through SQLAlchemy Core, as the PostgreSQL store runs its reads: a
    pooled connection checked out per look-up, the statement as ``text()``, a ``Ban`` built."""
    from sqlalchemy import create_engine, text

    from flask_livekit_moderation.bans.model import utc_datetime
    from flask_livekit_moderation.bans.sql import _GET_BAN

    engine = create_engine(f"sqlite:///{path}")
    statement = text(_GET_BAN)
    found = iter(hits)

    def hit() -> None:
        room, identity = next(found)
        params = {"room_name": room, "owner": TENANT_ID, "identity": identity, "now": time.time()}
        with engine.connect() as connection:
            row = connection.execute(statement, params).fetchone()
        assert row is not None
        Ban(row[0], row[1], row[2], utc_datetime(row[3]), utc_datetime(row[4]), row[5])

    with engine.connect() as connection:  # warm the pool and the statement cache
        connection.execute(statement, {"room_name": "", "owner": "", "identity": "", "now": 0}).fetchall()
    figures = _ms(_timed(hit, len(hits)))
    engine.dispose()
    return figures


def measure_active_ban(
    stored: int, lookups: int, workdir: Path, redis_url: str | None, postgres_url: str | None = None
) -> dict[str, Any]:
    """``active_ban`` p50 with ``stored`` bans in SQLite (and Redis, PostgreSQL), hits and misses."""
    rng = random.Random(11)
    results: dict[str, Any] = {"stored": stored, "lookups": lookups}
    backends: list[tuple[str, str]] = [("sqlite", f"sqlite:///{workdir}/active-ban.sqlite3")]
    if redis_url is not None:
        backends.append(("redis", redis_url))
    if postgres_url is not None:
        backends.append(("postgresql", postgres_url))
    with StandIn() as stand_in:
        stand_in.control("POST", "rooms", {"name": "room-7", "metadata": room_metadata(TENANT_ID)})
        for name, url in backends:
            app = Flask("bench", instance_path=str(workdir / "instance"))
            app.config.update(
                LIVEKIT_URL=stand_in.url,
                LIVEKIT_API_KEY=stand_in.api_key,
                LIVEKIT_API_SECRET=stand_in.api_secret,
                LIVEKIT_MODERATION_AUTH_REQUIRED=False,  # the store is measured, not the callers
                LIVEKIT_MODERATION_BAN_STORE=url,
            )
            moderation = LiveKitModeration(app)
            store = app.extensions["livekit_moderation"].bans
            assert isinstance(store, (SQLiteBanStore, RedisBanStore, PostgreSQLBanStore))
            keys, seed_seconds = _seed(store, stored)
            hits = [keys[rng.randrange(stored)] for _ in range(lookups)]
            misses = [(room, identity + "-not-banned") for room, identity in hits]
            figures = _time_lookups(app, moderation, hits, misses, lookups)
            figures["seed_seconds"] = round(seed_seconds, 2)
            if isinstance(store, RedisBanStore):
                figures["redis_ping_ms"] = _ms(_timed(store.client.ping, lookups))
            if isinstance(store, PostgreSQLBanStore):
                figures["select_1_ms"] = _ms(_timed(functools.partial(store._read, "SELECT 1", {}), lookups))
            if isinstance(store, SQLiteBanStore):
                figures["sqlalchemy_hit_ms"] = _sqlalchemy_sqlite_ms(store.path, hits)
            store.close()
            results[name] = figures
    return results


# -- the command --------------------------------------------------------------------------


def _line(label: str, figures: dict[str, float], note: str = "") -> str:
    return f"  {label:<56} p50 {figures['p50']:8.3f} ms   p95 {figures['p95']:8.3f} ms{note}"


def report(enforcement: dict[str, Any], lookups: dict[str, Any]) -> str:
    own = enforcement["own_ms"]["p50"]
    lines = [
        f"Webhook arrival -> RemoveParticipant ({enforcement['joins']} banned joins, simulated LiveKit "
        f"round trip {enforcement['latency_ms']:g} ms, {enforcement['setup']}):",
        _line("total: arrival -> RemoveParticipant received", enforcement["total_ms"]),
        _line(
            "arrival -> ListRooms received (verify + ban look-up)", enforcement["arrival_to_list_rooms_ms"]
        ),
        _line("ListRooms -> RemoveParticipant (one LiveKit round trip)", enforcement["round_trip_ms"]),
        _line(
            "own time (total - round trip)",
            enforcement["own_ms"],
            f"   target p50 <= {OWN_TARGET_MS:g} ms: {'OK' if own <= OWN_TARGET_MS else 'MISSED'}",
        ),
        _line("token route (active_ban: ListRooms + store, then sign)", enforcement["token_route_ms"]),
        f"active_ban with {lookups['stored']:,} stored bans ({lookups['lookups']} look-ups each):",
    ]
    for name in ("sqlite", "redis", "postgresql"):
        figures = lookups.get(name)
        if figures is None:
            lines.append(f"  {name}: not measured")
            continue
        note = ""
        if name == "sqlite":
            ok = figures["hit_ms"]["p50"] <= SQLITE_TARGET_MS
            note = f"   target p50 <= {SQLITE_TARGET_MS:g} ms: {'OK' if ok else 'MISSED'}"
        lines.append(_line(f"{name}: hit, owner given (store only)", figures["hit_ms"], note))
        lines.append(_line(f"{name}: miss, owner given (store only)", figures["miss_ms"]))
        if "sqlalchemy_hit_ms" in figures:
            ok = figures["sqlalchemy_hit_ms"]["p50"] <= SQLITE_TARGET_MS
            note = f"   target p50 <= {SQLITE_TARGET_MS:g} ms: {'OK' if ok else 'MISSED'}"
            lines.append(
                _line("sqlite: hit through SQLAlchemy Core (comparison)", figures["sqlalchemy_hit_ms"], note)
            )
        if "redis_ping_ms" in figures:
            lines.append(_line("redis: PING (one round trip, for comparison)", figures["redis_ping_ms"]))
        if "select_1_ms" in figures:
            lines.append(
                _line("postgresql: SELECT 1 (one round trip, for comparison)", figures["select_1_ms"])
            )
        lines.append(
            _line(f"{name}: owner from LiveKit (ListRooms at L=0, + store)", figures["owner_from_livekit_ms"])
        )
        lines.append(f"  {name}: {lookups['stored']:,} bans stored in {figures['seed_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.bans", description=__doc__.split("\n")[0])
    parser.add_argument("--joins", type=int, default=200, help="banned joins timed (default 200)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated LiveKit round trip")
    parser.add_argument("--stored", type=int, default=100_000, help="bans stored for active_ban (100,000)")
    parser.add_argument("--lookups", type=int, default=5000, help="active_ban calls timed per case")
    parser.add_argument("--no-redis", action="store_true", help="leave Redis out")
    parser.add_argument("--no-postgresql", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bans-") as directory:
        workdir = Path(directory)
        enforcement = measure_enforcement(args.joins, args.latency_ms, workdir)
        with contextlib.ExitStack() as servers:
            redis_url = postgres_url = None
            if not args.no_redis:
                redis_dir = workdir / "redis"
                redis_dir.mkdir()
                redis_url = servers.enter_context(RedisProcess(str(redis_dir))).url
            if not args.no_postgresql:
                postgres_url = servers.enter_context(postgres_server()).url
            lookups = measure_active_ban(args.stored, args.lookups, workdir, redis_url, postgres_url)
    print(report(enforcement, lookups))
    if args.json is not None:
        args.json.write_text(json.dumps({"enforcement": enforcement, "active_ban": lookups}, indent=2))
        print(f"raw figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
