"""The reconciler: banned participants the webhook missed are removed, over real HTTP against
the stand-in, with short intervals (0.2 s) and generous bounds.

Each scenario's bound is the issue's: a banned participant who rejoins with no webhook at all
is removed within 2 intervals; with the store down at the rejoin, within 2 intervals after it
is back; two app instances sharing one store reconcile one at a time, and the other takes over
within 3 intervals when the holder stops. Times are read on one clock: the stand-in records
each call's arrival with ``time.monotonic()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.bans.reconcile import LEASE
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import Host, rejoin
from tests.helpers import ROOT, TOKEN_A, TOKEN_B
from tests.redis_server import RedisServer, redis_server

INTERVAL = 0.2


def removed_at(emu: LiveKitEmulator, identity: str, since: float) -> float | None:
    """When the first RemoveParticipant of ``identity`` after ``since`` reached the stand-in."""
    for call in emu.calls:
        if call.method == "RemoveParticipant" and getattr(call.request, "identity", "") == identity:
            if call.started >= since:
                return call.started
    return None


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def reconciling(hosts: Callable[..., Host], **config: Any) -> Host:
    """A host app reconciling every INTERVAL; its first request starts the reconciler."""
    host = hosts(LIVEKIT_MODERATION_RECONCILE_INTERVAL=INTERVAL, **config)
    assert host.request("GET", "/livekit/openapi.json").status_code == 200
    return host


@pytest.mark.timing
def test_a_banned_participant_back_with_no_webhook_is_removed_within_two_intervals(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator  # no webhook URL: LiveKit "lost" every event
    host = reconciling(hosts)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.add_room("elsewhere", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    banned = host.ban("r", "troll", token=TOKEN_A)
    assert banned.status_code == 201 and banned.json()["removed"] is True
    cutoff = [c.revoke_token_ts for c in emu.calls if c.method == "RemoveParticipant"][-1]

    for attempt in range(3):
        back = time.monotonic()
        emu.join("r", "troll", tracks=[])
        emu.join("elsewhere", "troll", tracks=[])  # not banned there: stays
        assert wait_until(lambda: removed_at(emu, "troll", back) is not None, 10 * INTERVAL), attempt  # noqa: B023
        took = (removed_at(emu, "troll", back) or 0) - back
        assert took <= 2 * INTERVAL, (attempt, took)
        assert emu.participant("r", "troll") is None and emu.participant("elsewhere", "troll") is not None
    removals = [c for c in emu.calls if c.method == "RemoveParticipant"]
    assert {c.revoke_token_ts for c in removals} == {cutoff}  # the ban's own cutoff, every time
    (signal,) = [s for s in host.signalled("banned_participant_removed")][:1]
    assert (signal["source"], signal["event_id"], signal["room_owner"]) == ("reconciler", None, "tenant-a")


def test_no_active_ban_no_livekit_call_and_another_owners_room_is_never_touched(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = livekit_emulator
    host = reconciling(hosts)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    emu.clear_calls()
    time.sleep(5 * INTERVAL)
    assert emu.calls == []  # no ban: no pass calls LiveKit
    assert host.signalled("bans_reconciled") == []

    # Tenant A bans troll from its room r; the room closes and tenant B opens its own room r.
    host.ban("r", "troll", token=TOKEN_A)
    emu.remove_room("r")
    emu.add_room("r", metadata=room_metadata("tenant-b"))
    rejoin(emu, "r", "troll", tracks=[])
    emu.clear_calls()
    time.sleep(5 * INTERVAL)
    assert emu.participant("r", "troll") is not None  # A's ban is not B's
    names = emu.call_names()
    assert "ListRooms" in names and "ListParticipants" not in names and "RemoveParticipant" not in names
    # B bans someone else there: now B's room is looked at, and only B's ban applies in it.
    emu.join("r", "spammer", tracks=[])
    host.ban("r", "spammer", token=TOKEN_B)
    rejoin(emu, "r", "spammer", tracks=[])
    assert wait_until(lambda: emu.participant("r", "spammer") is None, 10 * INTERVAL)
    time.sleep(2 * INTERVAL)
    assert emu.participant("r", "troll") is not None
    passes = host.signalled("bans_reconciled")
    assert passes and all(p["outcome"] == "reconciled" for p in passes)
    # (1, 1): a pass while the room was still A's; (1, 0): B's room, A's ban; (2, 1): both bans.
    assert {(p["rooms"], p["rooms_checked"]) for p in passes} <= {(1, 1), (1, 0), (2, 1)}


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.mark.timing
def test_with_the_store_down_at_the_rejoin_removed_within_two_intervals_after_it_is_back(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, redis_srv: RedisServer
) -> None:
    emu = livekit_emulator
    host = reconciling(hosts, LIVEKIT_MODERATION_BAN_STORE=redis_srv.url)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    assert host.ban("r", "troll", token=TOKEN_A).status_code == 201
    os.kill(redis_srv.process.pid, signal.SIGSTOP)  # Redis hangs: every call times out
    try:
        emu.join("r", "troll", tracks=[])
        time.sleep(10 * INTERVAL)
        assert emu.participant("r", "troll") is not None  # nobody can know: nothing removed on a guess
        failed = [p for p in host.signalled("bans_reconciled") if p["outcome"] != "reconciled"]
        assert emu.call_names().count("RemoveParticipant") == 1 and not failed  # the store said nothing
    finally:
        os.kill(redis_srv.process.pid, signal.SIGCONT)
    back = time.monotonic()
    assert wait_until(lambda: emu.participant("r", "troll") is None, 10 * INTERVAL + 2)
    took = (removed_at(emu, "troll", back) or 0) - back
    assert took <= 2 * INTERVAL, took


def holder_of(hosts_: list[Host]) -> tuple[Host, Host]:
    """(the host whose reconciler holds the lease, the other)."""
    store = hosts_[0].moderation.bans
    with hosts_[0].served.app.app_context():
        holder = store.lease(LEASE, "the test, only asking", 0.001)
    for host in hosts_:
        reconciler = host.served.app.extensions["livekit_moderation"].reconciler
        if reconciler.holder == holder:
            return host, next(h for h in hosts_ if h is not host)
    raise AssertionError(f"the lease is held by {holder!r}, none of the apps")


@pytest.mark.timing
@pytest.mark.parametrize("how", ["stops", "dies"])
def test_two_apps_on_one_store_reconcile_one_at_a_time_and_take_over(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path, how: str
) -> None:
    emu = livekit_emulator
    shared = f"sqlite:///{tmp_path}/shared.sqlite3"
    apps = [reconciling(hosts, LIVEKIT_MODERATION_BAN_STORE=shared) for _ in range(2)]
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    apps[0].ban("r", "troll", token=TOKEN_A)
    time.sleep(2 * INTERVAL)  # both have looked: one holds the lease
    emu.clear_calls()
    time.sleep(10 * INTERVAL)
    lists = emu.call_names().count("ListParticipants")
    assert 5 <= lists <= 13, lists  # about one per interval: one reconciler, not two (about 20)

    holder, other = holder_of(apps)
    reconciler = holder.served.app.extensions["livekit_moderation"].reconciler
    reconciler.stop(release=how == "stops")  # "dies": the lease is left to expire
    stopped = time.monotonic()
    emu.clear_calls()
    assert wait_until(lambda: "ListParticipants" in emu.call_names(), 10 * INTERVAL)
    first = next(c.started for c in emu.calls if c.method == "ListParticipants")
    assert first - stopped <= 3 * INTERVAL, first - stopped
    assert holder_of(apps)[0] is other
    emu.join("r", "troll", tracks=[])
    assert wait_until(lambda: emu.participant("r", "troll") is None, 10 * INTERVAL)


def _flask(emu: LiveKitEmulator, tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "LIVEKIT_URL": emu.url,
        "LIVEKIT_API_KEY": emu.api_key,
        "LIVEKIT_API_SECRET": emu.api_secret,
        "BANS_INSTANCE_PATH": str(tmp_path / "instance"),
        **env,
    }
    command = [sys.executable, "-m", "flask", "--app", "benchmarks.bans:create_app", "livekit-moderation"]
    return subprocess.Popen(
        [*command, *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_reconciles_once_and_says_when_it_cannot(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    store = f"sqlite:///{tmp_path}/instance/livekit_moderation.sqlite3"  # the command's app's default
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=store, LIVEKIT_MODERATION_RECONCILE_INTERVAL=0)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.add_room("lobby")
    host.ban("r", "troll", token=TOKEN_A)
    emu.join("r", "troll", tracks=[])
    emu.join("r", "alice", tracks=[])
    emu.clear_calls()

    done = _flask(emu, tmp_path, "reconcile")
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert out.splitlines() == [
        "removed 'troll' from 'r' (owner 'tenant-a')",
        "livekit_moderation: 1 rooms with active bans, 1 checked, 1 banned participants removed",
    ]
    assert emu.participant("r", "troll") is None and emu.participant("r", "alice") is not None
    assert emu.call_names() == ["ListRooms", "ListParticipants", "ListRooms", "RemoveParticipant"]
    assert {c.revoke_token_ts for c in emu.calls if c.method == "RemoveParticipant"} != {None}

    again = _flask(emu, tmp_path, "reconcile")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and "0 banned participants removed" in out

    with emu.down():
        failed = _flask(emu, tmp_path, "reconcile")
        out, err = failed.communicate(timeout=60)
    assert failed.returncode == 1, (out, err)
    assert "error: livekit_moderation: LiveKit is unreachable" in err and "(LIVEKIT_UNAVAILABLE)" in err

    (tmp_path / "a-file").write_text("")
    broken = _flask(emu, tmp_path, "reconcile", BANS_STORE=f"sqlite:///{tmp_path}/a-file/x.sqlite3")
    out, err = broken.communicate(timeout=60)
    assert broken.returncode == 1, (out, err)
    assert "(BAN_STORE_UNAVAILABLE)" in err


def test_the_command_every_seconds_until_sigterm(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    store = f"sqlite:///{tmp_path}/instance/livekit_moderation.sqlite3"
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=store, LIVEKIT_MODERATION_RECONCILE_INTERVAL=0)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    host.ban("r", "troll", token=TOKEN_A)
    sidecar = _flask(emu, tmp_path, "reconcile", "--every", str(INTERVAL))
    try:
        for _ in range(2):
            rejoin(emu, "r", "troll", tracks=[])
            assert wait_until(lambda: emu.participant("r", "troll") is None, 30)
    finally:
        sidecar.send_signal(signal.SIGTERM)
        out, err = sidecar.communicate(timeout=30)
    assert sidecar.returncode == 0, err
    assert out.count("removed 'troll' from 'r' (owner 'tenant-a')") == 2
    with host.served.app.app_context():  # it gave its lease back
        assert host.moderation.bans.lease(LEASE, "next", 1) == "next"


def test_the_reconciler_starts_with_a_process_first_request_not_before(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    host = hosts(LIVEKIT_MODERATION_RECONCILE_INTERVAL=INTERVAL)
    reconciler = host.served.app.extensions["livekit_moderation"].reconciler
    assert reconciler._thread is None  # init_app started nothing (gunicorn may fork after it)
    host.request("GET", "/livekit/openapi.json")
    thread = reconciler._thread
    assert thread is not None and thread.is_alive() and thread.daemon
    assert reconciler.holder.startswith("app:") and f":{os.getpid()}:" in reconciler.holder
    host.request("GET", "/livekit/openapi.json")
    assert reconciler._thread is thread  # one per process
    host.moderation.close()
    thread.join(5)
    assert not thread.is_alive()
