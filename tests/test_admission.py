"""Admission to LiveKit (issue 20): healthy bursts are never refused, and no tenant can starve
another tenant or ban enforcement.

A threaded werkzeug server serves the host app (concurrency is what is tested); LiveKit is the
stand-in, with a per-call latency and, for one tenant's room, a latency of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_livekit_moderation import room_metadata, signals
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import WEBHOOK, joined, signed
from tests.helpers import TENANTS, ServedApp, host_app, in_process, run_benchmark, serve

TENANT_C = {"id": "tenant-c", "secret": "secret-c-0123456789"}
TOKEN_A, TOKEN_B, TOKEN_C = TENANTS[0]["secret"], TENANTS[1]["secret"], TENANT_C["secret"]
AUTH = {"LIVEKIT_MODERATION_AUTH_REQUIRED": True, "LIVEKIT_MODERATION_API_SECRETS": [*TENANTS, TENANT_C]}


@pytest.fixture
def emu(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    """Tenant A's slow room, tenant B's and C's ordinary ones, a few people in each."""
    for room, owner in (("slow-a", "tenant-a"), ("room-b", "tenant-b"), ("room-c", "tenant-c")):
        livekit_emulator.add_room(room, metadata=room_metadata(owner))
        livekit_emulator.add_participants(room, [f"{room}-p{i}" for i in range(80)])
    return livekit_emulator


@pytest.fixture
def served(emu: LiveKitEmulator, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServedApp]:
    config: dict[str, Any] = {
        **AUTH,
        "LIVEKIT_MODERATION_BAN_STORE": f"sqlite:///{tmp_path}/bans.sqlite3",
        **getattr(request, "param", {}),
    }
    with serve(host_app(emu, **config)) as served:
        yield served


def _session_request(
    served: ServedApp, method: str, path: str, token: str, **kwargs: Any
) -> requests.Response:
    # One session per thread: a requests.Session is not safe to share between threads.
    with requests.Session() as session:
        return session.request(
            method, served.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
        )


def _remove(served: ServedApp, room: str, identity: str, token: str) -> requests.Response:
    body = {"room_name": room, "participant_identity": identity}
    return _session_request(served, "DELETE", "/livekit/participant", token, json=body)


def _ban(served: ServedApp, room: str, identity: str) -> None:
    """Tenant B bans ``identity`` from its room ``room`` for ten minutes.

    In process (the app's test client): a ban is the stage of these tests, not their load, and
    a new connection per ban made the raid's 300 bans take longer than the raid.
    """
    body = {"room_name": room, "participant_identity": identity, "duration_seconds": 600}
    assert in_process(served.app).request("POST", "/livekit/bans", TOKEN_B, json=body).status_code == 201


def _listing(served: ServedApp, room: str, token: str) -> requests.Response:
    return _session_request(served, "GET", "/livekit/participants", token, params={"room_name": room})


def test_a_healthy_burst_is_never_refused(
    emu: LiveKitEmulator, served: ServedApp, caplog: pytest.LogCaptureFixture
) -> None:
    """60 removes from 16 threads, LiveKit answering in 10 ms: every one answered 200.

    Before: four requests held the four places and the other twelve got 503 LIVEKIT_BUSY."""
    emu.set_latency(0.01)
    identities = [f"room-b-p{i}" for i in range(60)]
    with ThreadPoolExecutor(16) as pool, caplog.at_level(logging.INFO, "flask_livekit_moderation"):
        answers = list(pool.map(lambda identity: _remove(served, "room-b", identity, TOKEN_B), identities))
    refusals = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert [a.status_code for a in answers] == [200] * 60, refusals
    assert all(a.json()["status"] == "removed" for a in answers)
    removed = sorted(
        str(getattr(c.request, "identity", "")) for c in emu.calls if c.method == "RemoveParticipant"
    )
    assert removed == sorted(identities)
    assert [p.identity for p in emu.participants("room-b")] == [f"room-b-p{i}" for i in range(60, 80)]


@pytest.mark.parametrize("served", [{"LIVEKIT_MODERATION_TIMEOUT": 8}], indirect=True)
def test_a_tenant_saturating_on_a_slow_room_starves_neither_another_tenant_nor_bans(
    emu: LiveKitEmulator, served: ServedApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Tenant A: 16 concurrent listings of a room whose calls take 3 s. Meanwhile tenant B's
    listings and mutes answer 200 within a second each, and B's banned participant who joins
    is removed by the webhook."""
    emu.set_latency(3.0, room="slow-a")
    emu.enable_remote_unmute = True
    emu.add_room("stage-b", metadata=room_metadata("tenant-b"))
    emu.join("stage-b", "speaker")
    speaker = emu.participant("stage-b", "speaker")
    assert speaker is not None
    mic = speaker.tracks[0].sid
    _ban(served, "stage-b", "troll")

    with ThreadPoolExecutor(16) as pool, caplog.at_level(logging.INFO, "flask_livekit_moderation"):
        saturating = [pool.submit(_listing, served, "slow-a", TOKEN_A) for _ in range(16)]
        time.sleep(0.3)  # tenant A holds its places now, and its other requests wait or were refused
        timed: list[tuple[int, float]] = []
        for i in range(10):
            started = time.monotonic()
            answer = _listing(served, "room-b", TOKEN_B)
            timed.append((answer.status_code, time.monotonic() - started))
            assert len(answer.json()["participants"]) == 80
            started = time.monotonic()
            body = {
                "room_name": "stage-b",
                "participant_identity": "speaker",
                "track_sid": mic,
                "muted": i % 2 == 0,
            }
            answer = _session_request(served, "POST", "/livekit/participant/mute", TOKEN_B, json=body)
            timed.append((answer.status_code, time.monotonic() - started))
        emu.join("stage-b", "troll", tracks=[])
        event, headers = signed(emu, joined(emu, "stage-b", "troll"))
        started = time.monotonic()
        with requests.Session() as session:
            hook = session.post(served.url + WEBHOOK, data=event, headers=headers, timeout=30)
        hook_seconds = time.monotonic() - started
        a_answers = [f.result() for f in saturating]

    assert [status for status, _ in timed] == [200] * 20
    assert max(seconds for _, seconds in timed) < 1.0, timed
    assert (hook.status_code, hook.json()["removed"]) == (200, True) and hook_seconds < 1.0
    assert emu.participant("stage-b", "troll") is None
    # Tenant A got its share (half of the 8 places: 4 listings of the slow room, answered);
    # its other requests were refused once the four ahead of them were late.
    statuses = sorted(a.status_code for a in a_answers)
    assert statuses.count(200) == 4 and statuses.count(503) == 12, statuses
    assert {a.json()["code"] for a in a_answers if a.status_code == 503} == {"LIVEKIT_BUSY"}
    refusals = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(refusals) == 12, refusals
    assert all("'tenant-a'" in m and "caller_share" in m and "late" in m for m in refusals), refusals


@pytest.mark.parametrize(
    "served", [{"LIVEKIT_MODERATION_TIMEOUT": 0.3, "LIVEKIT_MODERATION_BREAKER_FAILURES": 3}], indirect=True
)
def test_one_tenant_past_the_deadline_never_opens_the_breaker_for_another(
    emu: LiveKitEmulator, served: ServedApp
) -> None:
    """Tenant A's removes in a room slower than the deadline, 10 in a row: A's own breaker
    opens; tenant B's next request still answers 200."""
    changes: list[dict[str, Any]] = []
    signals.livekit_breaker_changed.connect(
        lambda sender, **data: changes.append(data), served.app, weak=False
    )
    emu.set_latency(1.0, room="slow-a")
    a_answers = [_remove(served, "slow-a", "slow-a-p1", TOKEN_A) for _ in range(10)]
    assert [(a.status_code, a.json()["code"]) for a in a_answers] == [(503, "LIVEKIT_UNAVAILABLE")] * 10
    # Three passed the deadline at LiveKit; then A's breaker answered at once, calling nobody.
    assert emu.wait_idle(5)
    assert emu.call_names() == ["ListRooms"] * 3
    assert [(c["scope"], c["auth_id"], c["state"]) for c in changes] == [("caller", "tenant-a", "open")]

    answer = _remove(served, "room-b", "room-b-p1", TOKEN_B)
    assert (answer.status_code, answer.json()) == (
        200,
        {"status": "removed", "room_name": "room-b", "participant_identity": "room-b-p1"},
    )
    assert emu.participant("room-b", "room-b-p1") is None


@pytest.mark.parametrize(
    "served", [{"LIVEKIT_MODERATION_TIMEOUT": 0.3, "LIVEKIT_MODERATION_BREAKER_FAILURES": 3}], indirect=True
)
def test_deadlines_passed_by_two_tenants_open_the_breaker_for_everyone(
    emu: LiveKitEmulator, served: ServedApp
) -> None:
    """LiveKit slow for everyone: once two tenants' requests pass the deadline, the app's
    breaker counts them, opens, and a third tenant is refused at once too."""
    changes: list[dict[str, Any]] = []
    signals.livekit_breaker_changed.connect(
        lambda sender, **data: changes.append(data), served.app, weak=False
    )
    emu.set_latency(1.0)
    for token, room in ((TOKEN_A, "slow-a"), (TOKEN_B, "room-b"), (TOKEN_A, "slow-a"), (TOKEN_B, "room-b")):
        assert _remove(served, room, f"{room}-p1", token).json()["code"] == "LIVEKIT_UNAVAILABLE"
    assert [(c["scope"], c["state"]) for c in changes] == [("livekit", "open")]
    emu.set_latency(0)
    assert emu.wait_idle(5)
    calls = len(emu.calls)
    refused = _remove(served, "room-c", "room-c-p1", TOKEN_C)
    assert (refused.status_code, refused.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert len(emu.calls) == calls  # open: LiveKit hears nothing of it
    assert emu.participant("room-c", "room-c-p1") is not None


def test_a_raid_of_banned_rejoins_is_removed_whole(
    emu: LiveKitEmulator, served: ServedApp, caplog: pytest.LogCaptureFixture
) -> None:
    """300 banned identities rejoin and 32 webhook deliveries arrive at once, LiveKit healthy:
    every delivery is answered 200 and every banned participant removed."""
    identities = [f"raider-{i}" for i in range(300)]
    emu.add_room("raided", metadata=room_metadata("tenant-b"))
    for identity in identities:
        _ban(served, "raided", identity)
    deliveries = []
    for identity in identities:
        emu.join("raided", identity, tracks=[])
        deliveries.append(signed(emu, joined(emu, "raided", identity)))

    def deliver(delivery: tuple[bytes, dict[str, str]]) -> requests.Response:
        with requests.Session() as session:
            return session.post(served.url + WEBHOOK, data=delivery[0], headers=delivery[1], timeout=30)

    with ThreadPoolExecutor(32) as pool, caplog.at_level(logging.INFO, "flask_livekit_moderation"):
        answers = list(pool.map(deliver, deliveries))
    refusals = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert [a.status_code for a in answers] == [200] * 300, refusals
    assert all(a.json()["removed"] for a in answers)
    assert emu.participants("raided") == []


@pytest.mark.parametrize("served", [{"LIVEKIT_MODERATION_TIMEOUT": 8}], indirect=True)
def test_ban_enforcement_has_places_no_request_can_take(emu: LiveKitEmulator, served: ServedApp) -> None:
    """Tenants A and C fill every place of the requests' lane with listings of rooms whose
    calls take 3 s; a signed participant_joined for tenant B's banned participant is still
    answered 200 and the participant removed, on the enforcement lane."""
    emu.set_latency(3.0, room="slow-a")
    emu.set_latency(3.0, room="room-c")
    emu.add_room("stage-b", metadata=room_metadata("tenant-b"))
    _ban(served, "stage-b", "troll")
    with ThreadPoolExecutor(8) as pool:
        holding = [pool.submit(_listing, served, room, token) for room, token in [("slow-a", TOKEN_A)] * 4]
        holding += [pool.submit(_listing, served, "room-c", TOKEN_C) for _ in range(4)]
        time.sleep(0.5)  # all eight places held, every call late
        crowded = _listing(served, "room-b", TOKEN_B)
        emu.join("stage-b", "troll", tracks=[])
        body, headers = signed(emu, joined(emu, "stage-b", "troll"))
        started = time.monotonic()
        with requests.Session() as session:
            hook = session.post(served.url + WEBHOOK, data=body, headers=headers, timeout=30)
        hook_seconds = time.monotonic() - started
        held = [f.result().status_code for f in holding]
    assert held == [200] * 8
    # The requests' lane is full of late work: a request is refused at once...
    assert (crowded.status_code, crowded.json()["code"]) == (503, "LIVEKIT_BUSY")
    # ...but ban enforcement has its own places.
    assert (hook.status_code, hook.json()["removed"]) == (200, True) and hook_seconds < 1.0
    assert emu.participant("stage-b", "troll") is None


def test_the_admission_benchmark_runs_and_refuses_nothing_healthy(tmp_path: Path) -> None:
    """A short run of ``benchmarks.admission`` (real gunicorn -w 2 --threads 8, the stand-in in
    its own process), so that it cannot rot: no healthy request nor webhook answered 503."""
    done, report = run_benchmark(
        "benchmarks.admission",
        "--mixes",
        "mixed",
        "--clients",
        "32",
        "--requests",
        "90",
        "--raiders",
        "40",
        out=tmp_path / "admission.json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = report["this checkout"]
    ((burst,),) = [figures["bursts"]]
    assert (burst["mix"], burst["clients"], burst["requests"], burst["503"]) == ("mixed", 32, 90, 0), burst
    assert figures["raid"] == {
        "raiders": 40,
        "concurrent_deliveries": 32,
        "answers": {"200": 40},
        "503": 0,
        "banned_stayed": 0,
    }
    assert "raid: 40 banned rejoins" in done.stdout
