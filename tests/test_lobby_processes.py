"""The lobby across processes: two gunicorn workers on the default SQLite file, and two app
processes sharing one real Redis server, or one real PostgreSQL server. A lock, a knock, an
admission or a denial made through one is what the other answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.lobby import LobbyGunicorn
from benchmarks.processes import TENANT_ID, TENANT_TOKEN, WorkerSetup
from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.test_bans_processes import session_per_worker

ROOM = "lobby-cross-process"
AUTH = {"Authorization": f"Bearer {TENANT_TOKEN}"}


def post(session: requests.Session, url: str, path: str, body: dict[str, Any]) -> requests.Response:
    return session.post(url + path, json=body, headers=AUTH, timeout=30)


class Door:
    """One process (or one worker, through a kept-alive session bound to it) of the host app."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url, self.session = url, session

    def lock(self, locked: bool = True) -> int:
        answer = post(self.session, self.url, "/livekit/room/lock", {"room_name": ROOM, "locked": locked})
        assert answer.status_code == 200, answer.text
        return int(answer.headers["X-Worker-Pid"])

    def decide(self, what: str, identity: str) -> int:
        body = {"room_name": ROOM, "participant_identities": [identity]}
        answer = post(self.session, self.url, f"/livekit/lobby/{what}", body)
        assert answer.status_code == 200, answer.text
        return int(answer.headers["X-Worker-Pid"])

    def knock(self, identity: str) -> tuple[str, int]:
        answer = self.session.post(self.url + "/knock", json={"room": ROOM, "identity": identity}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["status"], int(answer.headers["X-Worker-Pid"])

    def waiting(self) -> list[str]:
        answer = self.session.get(
            self.url + "/livekit/lobby", params={"room_name": ROOM}, headers=AUTH, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return [entry["participant_identity"] for entry in answer.json()["waiting"]]

    def token(self, identity: str) -> int:
        answer = self.session.get(
            self.url + "/token", params={"room": ROOM, "identity": identity}, timeout=30
        )
        return answer.status_code


def the_lobby_is_shared(one: Door, other: Door, emu: LiveKitEmulator) -> set[int]:
    """Every step through one door, checked through the other; the pids that answered the lock
    and the knock."""
    locked_by = one.lock()
    status, knocked_by = other.knock("guest")
    assert status == "waiting"
    assert one.waiting() == ["guest"]
    assert one.token("guest") == 403
    one.decide("admit", "guest")
    assert other.knock("guest")[0] == "admitted" and other.token("guest") == 200
    assert other.waiting() == []
    other.decide("deny", "pest")
    assert one.knock("pest")[0] == "denied" and one.token("pest") == 403
    # A joiner the lobby did not admit, removed through whichever process LiveKit's webhook reached.
    emu.join(ROOM, "sneaky", tracks=[])
    assert emu.wait_webhooks(10) and emu.wait_idle()
    assert emu.participant(ROOM, "sneaky") is None
    other.lock(False)
    assert one.knock("pest")[0] == "admitted" and one.token("pest") == 200
    return {locked_by, knocked_by}


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator(webhook_time_scale=0.05) as emulator:
        emulator.add_room(ROOM, metadata=room_metadata(TENANT_ID))
        yield emulator


def removals(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_two_gunicorn_workers_share_the_lobby_on_the_default_sqlite_store(
    emu: LiveKitEmulator, tmp_path: Path
) -> None:
    log = tmp_path / "removals.jsonl"
    env = {"BANS_INSTANCE_PATH": str(tmp_path / "instance"), "BANS_EVENT_LOG": str(log)}  # default store
    with LobbyGunicorn(emu, WorkerSetup(workers=2, threads=4), env) as app:
        workers = set(app.workers())
        sessions = session_per_worker(app, workers)
        first, second = (Door(app.url, sessions[pid]) for pid in sorted(workers))
        emu.webhook_urls = [app.url + "/livekit/webhook"]
        assert the_lobby_is_shared(first, second, emu) == workers  # each door is its own worker
        for session in sessions.values():
            session.close()
    assert [r["identity"] for r in removals(log)] == ["sneaky"]
    assert (tmp_path / "instance" / "livekit_moderation.sqlite3").exists()


@pytest.fixture(params=["redis", "postgresql"])
def shared_store(request: pytest.FixtureRequest) -> str:
    """The URL of a store server shared by two app processes."""
    return request.getfixturevalue("redis_url" if request.param == "redis" else "postgres_url")


def test_two_app_processes_share_the_lobby_through_a_store_server(
    emu: LiveKitEmulator, tmp_path: Path, shared_store: str
) -> None:
    log = tmp_path / "removals.jsonl"
    env = {"BANS_STORE": shared_store, "BANS_EVENT_LOG": str(log), "BANS_INSTANCE_PATH": str(tmp_path)}
    one_worker = WorkerSetup(workers=1, threads=4)
    with LobbyGunicorn(emu, one_worker, env) as first, LobbyGunicorn(emu, one_worker, env) as second:
        (second_pid,) = second.workers()
        emu.webhook_urls = [second.url + "/livekit/webhook"]  # only the second one hears LiveKit
        with requests.Session() as one, requests.Session() as other:
            the_lobby_is_shared(Door(first.url, one), Door(second.url, other), emu)
    assert [(r["pid"], r["identity"]) for r in removals(log)] == [(second_pid, "sneaky")]
    assert not list(tmp_path.glob("*.sqlite3"))  # the server only: no SQLite file was made
