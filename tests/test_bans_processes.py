"""Bans across processes: real gunicorn workers on the default SQLite file, and two app
processes sharing one real Redis server, or one real PostgreSQL server. The LiveKit stand-in
runs in the test process and sends its LiveKit-signed webhooks to gunicorn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.bans import BansGunicorn
from benchmarks.processes import TENANT_ID, TENANT_TOKEN, WorkerSetup
from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import rejoin as banned_rejoins

ROOM = "cross-process"
AUTH = {"Authorization": f"Bearer {TENANT_TOKEN}", "Connection": "close"}
AUTH_KEEP_ALIVE = {"Authorization": f"Bearer {TENANT_TOKEN}"}


def session_per_worker(app: BansGunicorn, workers: set[int]) -> dict[int, requests.Session]:
    """One kept-alive HTTP session bound to each worker (a connection stays with its worker)."""
    sessions: dict[int, requests.Session] = {}
    for _ in range(200):
        session = requests.Session()
        pid = int(session.get(app.url + "/noop", timeout=30).headers["X-Worker-Pid"])
        if pid in sessions:
            session.close()
        else:
            sessions[pid] = session
        if set(sessions) == workers:
            return sessions
    raise AssertionError(f"200 connections reached only workers {sorted(sessions)} of {sorted(workers)}")


def ban(app: BansGunicorn, identity: str, session: requests.Session | None = None) -> int:
    """Ban ``identity`` for an hour; returns the pid of the worker that did.

    On a fresh connection, or on ``session``'s kept-alive one (which stays with its worker).
    """
    body: dict[str, Any] = {"room_name": ROOM, "participant_identity": identity, "duration_seconds": 3600}
    if session is not None:
        answer = session.post(app.url + "/livekit/bans", json=body, headers=AUTH_KEEP_ALIVE, timeout=30)
    else:
        answer = requests.post(app.url + "/livekit/bans", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 201, answer.text
    return int(answer.headers["X-Worker-Pid"])


def token(app: BansGunicorn, identity: str) -> requests.Response:
    params = {"room": ROOM, "identity": identity}
    return requests.get(app.url + "/token", params=params, headers={"Connection": "close"}, timeout=30)


def removals(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def rejoin(emu: LiveKitEmulator, identity: str) -> None:
    banned_rejoins(emu, ROOM, identity, tracks=[])
    assert emu.wait_webhooks(10) and emu.wait_idle()


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator(webhook_time_scale=0.05) as emulator:
        emulator.add_room(ROOM, metadata=room_metadata(TENANT_ID))
        yield emulator


def test_banned_through_one_gunicorn_worker_removed_by_another(emu: LiveKitEmulator, tmp_path: Path) -> None:
    log = tmp_path / "removals.jsonl"
    env = {"BANS_INSTANCE_PATH": str(tmp_path / "instance"), "BANS_EVENT_LOG": str(log)}  # default store
    with BansGunicorn(emu, WorkerSetup(workers=2, threads=4), env) as app:
        workers = set(app.workers())
        sessions = session_per_worker(app, workers)
        emu.webhook_urls = [app.url + "/livekit/webhook"]
        pairs: list[tuple[int, int]] = []
        for attempt in range(30):
            # Ban through the worker that did not handle the last webhook (LiveKit's connections
            # land on a worker at random); banning again is harmless: it replaces the ban.
            other = [pid for pid in sessions if not pairs or pid != pairs[-1][1]][0]
            banned_by = ban(app, "troll", sessions[other])
            assert banned_by == other
            rejoin(emu, "troll")
            assert emu.participant(ROOM, "troll") is None, attempt
            assert len(removals(log)) == attempt + 1
            pairs.append((banned_by, removals(log)[-1]["pid"]))
            if pairs[-1][0] != pairs[-1][1]:
                break
        refused = token(app, "troll")
        for session in sessions.values():
            session.close()
    banned_by, removed_by = pairs[-1]
    assert banned_by != removed_by, pairs  # the webhook reached the other worker
    assert {banned_by, removed_by} == workers
    assert (refused.status_code, refused.json()["code"]) == (403, "PARTICIPANT_BANNED")
    assert (tmp_path / "instance" / "livekit_moderation.sqlite3").exists()


@pytest.fixture(params=["redis", "postgresql"])
def shared_store(request: pytest.FixtureRequest) -> str:
    """The URL of a store server shared by two app processes."""
    return request.getfixturevalue("redis_url" if request.param == "redis" else "postgres_url")


def test_two_app_processes_share_bans_through_a_store_server(
    emu: LiveKitEmulator, tmp_path: Path, shared_store: str
) -> None:
    log = tmp_path / "removals.jsonl"
    env = {"BANS_STORE": shared_store, "BANS_EVENT_LOG": str(log), "BANS_INSTANCE_PATH": str(tmp_path)}
    one_worker = WorkerSetup(workers=1, threads=4)
    with BansGunicorn(emu, one_worker, env) as first, BansGunicorn(emu, one_worker, env) as second:
        (first_pid,) = first.workers()
        (second_pid,) = second.workers()
        emu.webhook_urls = [second.url + "/livekit/webhook"]  # only the second one hears LiveKit

        assert ban(first, "troll") == first_pid
        rejoin(emu, "troll")
        assert emu.participant(ROOM, "troll") is None
        assert [(r["pid"], r["identity"]) for r in removals(log)] == [(second_pid, "troll")]
        assert token(second, "troll").status_code == 403

        lifted = requests.delete(
            first.url + "/livekit/bans",
            json={"room_name": ROOM, "participant_identity": "troll"},
            headers=AUTH,
            timeout=30,
        )
        assert lifted.status_code == 200
        assert token(second, "troll").status_code == 200
        rejoin(emu, "troll")
        assert emu.participant(ROOM, "troll") is not None
        assert len(removals(log)) == 1
    assert not list(tmp_path.glob("*.sqlite3"))  # the server only: no SQLite file was made
