"""``python -m benchmarks.lobby``: what a knock, an admission and a lobby listing cost.

With ``--waiting`` (10,000) identities waiting in one locked room, in each store (SQLite, a
file; Redis, a real ``redis-server``; PostgreSQL, a real server), measured side by side in one
run, in this process:

- **knock** (``LiveKitModeration.knock(room, identity, owner=...)``, the host's hot path, store
  only): a *first* knock (records the identity as waiting) and a *repeat* knock (what a waiting
  guest's page sends every few seconds), p50 and p99. Target: p50 <= 1 ms on SQLite.
- **admit**: the store's admission of one waiting identity (p50, p99), and the whole route
  ``POST /livekit/lobby/admit`` in process (Flask's test client; its room check is one ListRooms
  to the LiveKit stand-in, in its own process).
- **listing**: ``GET /livekit/lobby`` pages of ``limit`` 100 and 1000 (first page, and a page
  from a cursor at the middle), and walking all ``--waiting`` by pages of 1000.

``--json PATH`` writes the raw figures. :func:`create_app` is also the app the cross-process
tests run under gunicorn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from statistics import median, quantiles
from typing import Any

from flask import Flask, Response, jsonify, request

from flask_livekit_moderation import LiveKitModeration, room_metadata, signals
from flask_livekit_moderation.lobby import lobby_store

from .bans import BansGunicorn, RedisProcess
from .postgres import postgres_server
from .processes import TENANT_ID, TENANT_TOKEN, StandIn

ROOM = "bench-lobby"
SQLITE_KNOCK_TARGET_MS = 1.0


# -- the app gunicorn serves --------------------------------------------------------------


def create_app() -> Flask:
    """The host app of the lobby's cross-process tests, configured from the environment.

    As :func:`benchmarks.bans.create_app` (``BANS_STORE``, ``BANS_INSTANCE_PATH``,
    ``BANS_EVENT_LOG``: each webhook removal of an unadmitted joiner appends ``{"pid",
    "identity"}``); routes: ``/noop``, ``POST /knock`` ``{"room", "identity", "name"}``,
    ``/token?room=&identity=`` (403 when refused). Answers carry ``X-Worker-Pid``.
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

    @signals.unadmitted_participant_removed.connect_via(app)
    def note_removal(sender: Flask, **data: Any) -> None:
        if event_log:
            with open(event_log, "a", encoding="utf-8") as out:  # one short append: atomic
                out.write(json.dumps({"pid": os.getpid(), "identity": data["participant_identity"]}) + "\n")

    @app.get("/noop")
    def noop() -> Any:
        return jsonify({})

    @app.post("/knock")
    def knock() -> Any:
        body = request.get_json()
        admission = moderation.knock(body["room"], body["identity"], name=body.get("name"))
        return jsonify(status=admission.status)

    @app.get("/token")
    def token() -> Any:
        return jsonify(token=moderation.participant_token(request.args["room"], request.args["identity"]))

    @app.after_request
    def worker_pid(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return app


class LobbyGunicorn(BansGunicorn):
    """gunicorn serving :func:`create_app` (``extra_env`` added to the usual environment)."""

    def command(self) -> list[str]:
        command = super().command()
        command[-1] = "benchmarks.lobby:create_app()"
        return command


# -- figures ------------------------------------------------------------------------------


def _ms(seconds: list[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    p99 = quantiles(values, n=100)[-1] if len(values) >= 2 else values[0]
    return {"p50": round(median(values), 4), "p99": round(p99, 4), "n": len(values)}


def _timed(calls: Iterator[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def measure_store(
    name: str, url: str, stand_in: StandIn, waiting: int, samples: int, workdir: Path
) -> dict[str, Any]:
    """The figures of one store with ``waiting`` identities waiting in :data:`ROOM`."""
    app = Flask("bench", instance_path=str(workdir / "instance"))
    app.config.update(
        TESTING=True,
        LIVEKIT_URL=stand_in.url,
        LIVEKIT_API_KEY=stand_in.api_key,
        LIVEKIT_API_SECRET=stand_in.api_secret,
        LIVEKIT_MODERATION_BAN_STORE=url,
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=[{"id": TENANT_ID, "secret": TENANT_TOKEN}],
        LIVEKIT_MODERATION_RECONCILE_INTERVAL=0,
    )
    moderation = LiveKitModeration(app)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    figures: dict[str, Any] = {"waiting": waiting, "samples": samples}
    with app.app_context():
        lobby = lobby_store(moderation.bans)
        lobby.unlock(TENANT_ID, ROOM)
        lobby.lock(TENANT_ID, ROOM, [])
        started = time.perf_counter()
        for i in range(waiting):
            moderation.knock(ROOM, f"guest-{i:06d}", name=f"Guest {i}", owner=TENANT_ID)
        figures["fill_s"] = round(time.perf_counter() - started, 3)

        def knock(identity: str) -> Callable[[], object]:
            return lambda: moderation.knock(ROOM, identity, name="Late guest", owner=TENANT_ID)

        def admit(identity: str) -> Callable[[], object]:
            return lambda: lobby.decide(TENANT_ID, ROOM, [identity], "admitted")

        _timed(knock(f"guest-{i:06d}") for i in range(50))  # warm-up
        figures["knock_first_ms"] = _ms(_timed(knock(f"late-{i:06d}") for i in range(samples)))
        figures["knock_repeat_ms"] = _ms(_timed(knock(f"guest-{i:06d}") for i in range(samples)))
        figures["admit_store_ms"] = _ms(_timed(admit(f"guest-{i:06d}") for i in range(samples)))

        def admit_route(identity: str) -> Callable[[], object]:
            def call() -> None:
                body = {"room_name": ROOM, "participant_identities": [identity]}
                answer = client.post("/livekit/lobby/admit", json=body, headers=auth)
                assert answer.status_code == 200, answer.get_data(as_text=True)

            return call

        figures["admit_route_ms"] = _ms(
            _timed(admit_route(f"guest-{i:06d}") for i in range(samples, min(2 * samples, waiting)))
        )

        def page(limit: int, cursor: str | None) -> Callable[[], object]:
            def call() -> None:
                query: dict[str, Any] = {"room_name": ROOM, "limit": limit}
                if cursor is not None:
                    query["cursor"] = cursor
                answer = client.get("/livekit/lobby", query_string=query, headers=auth)
                assert answer.status_code == 200 and answer.json is not None
                assert len(answer.json["waiting"]) == min(limit, remaining - (0 if cursor is None else half))

            return call

        # Still waiting: the --waiting, plus the first knocks, less the two rounds of admissions.
        remaining, half = waiting - samples, (waiting - samples) // 2
        # The cursor half way through the list, reached by pages of at most 1000.
        middle: dict[str, Any] = {"next_cursor": None}
        for _ in range(0, half, 1000):
            resume = {
                "room_name": ROOM,
                "limit": min(1000, half),
                **({"cursor": middle["next_cursor"]} if middle["next_cursor"] else {}),
            }
            middle = client.get("/livekit/lobby", query_string=resume, headers=auth).json or {}
        half = min(half, 1000) * len(range(0, half, 1000))
        runs = max(5, samples // 10)
        for limit in (100, 1000):
            figures[f"page_{limit}_first_ms"] = _ms(_timed(page(limit, None) for _ in range(runs)))
            if middle["next_cursor"] is not None:
                figures[f"page_{limit}_middle_ms"] = _ms(
                    _timed(page(limit, middle["next_cursor"]) for _ in range(runs))
                )
        started = time.perf_counter()
        cursor, listed, pages = None, 0, 0
        while True:
            query: dict[str, Any] = {"room_name": ROOM, "limit": 1000}
            if cursor is not None:
                query["cursor"] = cursor
            body = client.get("/livekit/lobby", query_string=query, headers=auth).json
            assert body is not None
            listed, pages, cursor = listed + len(body["waiting"]), pages + 1, body["next_cursor"]
            if cursor is None:
                break
        assert listed == remaining, (listed, remaining)
        figures["walk_all_by_1000"] = {
            "listed": listed,
            "pages": pages,
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        lobby.unlock(TENANT_ID, ROOM)
    moderation.close()
    return figures


def _line(label: str, figures: dict[str, float]) -> str:
    return f"  {label:<52} p50 {figures['p50']:8.3f} ms   p99 {figures['p99']:8.3f} ms   (n={figures['n']})"


def report(results: dict[str, Any]) -> str:
    lines = [
        f"Lobby: {results['waiting']} identities waiting in one locked room, "
        f"{results['samples']} samples each"
    ]
    for store, figures in results["stores"].items():
        lines.append(f"{store} (filled in {figures['fill_s']} s):")
        lines.append(_line(f"{store}: knock, first (records waiting)", figures["knock_first_ms"]))
        lines.append(_line(f"{store}: knock, repeat (still waiting)", figures["knock_repeat_ms"]))
        lines.append(_line(f"{store}: admit, store only", figures["admit_store_ms"]))
        lines.append(_line(f"{store}: admit, route (ListRooms + store)", figures["admit_route_ms"]))
        for key in ("page_100_first_ms", "page_100_middle_ms", "page_1000_first_ms", "page_1000_middle_ms"):
            if key in figures:
                limit, where = key.split("_")[1:3]
                lines.append(_line(f"{store}: GET /livekit/lobby limit={limit}, {where} page", figures[key]))
        walk = figures["walk_all_by_1000"]
        lines.append(
            f"  {store}: all {walk['listed']} listed in {walk['pages']} pages of 1000: {walk['total_ms']} ms"
        )
    sqlite = results["stores"].get("sqlite")
    if sqlite is not None:
        worst = max(sqlite["knock_first_ms"]["p50"], sqlite["knock_repeat_ms"]["p50"])
        verdict = "met" if worst <= SQLITE_KNOCK_TARGET_MS else "NOT met"
        lines.append(f"SQLite knock p50 target <= {SQLITE_KNOCK_TARGET_MS} ms: {verdict} ({worst} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.lobby", description=__doc__.split("\n")[0])
    parser.add_argument("--waiting", type=int, default=10_000, help="identities waiting (default 10,000)")
    parser.add_argument("--samples", type=int, default=1000, help="knocks/admissions timed per case (1000)")
    parser.add_argument("--no-redis", action="store_true", help="leave Redis out")
    parser.add_argument("--no-postgresql", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    if args.waiting < 2 * args.samples + 10:
        parser.error("--waiting must be over twice --samples (+10): the admissions come out of the waiting")
    results: dict[str, Any] = {"waiting": args.waiting, "samples": args.samples, "stores": {}}
    with tempfile.TemporaryDirectory() as tmp, StandIn() as stand_in:
        workdir = Path(tmp)
        stand_in.control("POST", "rooms", {"name": ROOM, "metadata": room_metadata(TENANT_ID)})
        results["stores"]["sqlite"] = measure_store(
            "sqlite", f"sqlite:///{workdir}/lobby.sqlite3", stand_in, args.waiting, args.samples, workdir
        )
        with nullcontext(None) if args.no_redis else _redis(workdir) as redis_url:
            if redis_url is not None:
                results["stores"]["redis"] = measure_store(
                    "redis", redis_url, stand_in, args.waiting, args.samples, workdir
                )
        with nullcontext(None) if args.no_postgresql else postgres_server() as server:
            if server is not None:
                results["stores"]["postgresql"] = measure_store(
                    "postgresql", server.url, stand_in, args.waiting, args.samples, workdir
                )
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    server = RedisProcess(str(workdir)).start()
    try:
        yield server.url
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
