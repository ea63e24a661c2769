"""The pooled LiveKit client: timeouts, recovery, threads, fork and clean exit."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from example_app import create_app
from tests.helpers import livekit_config, serve


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "livekit-moderation-loop"]


@pytest.mark.timing
def test_a_hung_livekit_is_a_503_within_the_deadline_and_the_next_request_works(
    make_served_over_http, livekit_emulator
):
    served = make_served_over_http(LIVEKIT_MODERATION_TIMEOUT=0.5)
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["alice", "bob"])
    livekit_emulator.hang_next("RemoveParticipant", seconds=5)

    started = time.monotonic()
    answer = served.remove("room-1", "alice")
    elapsed = time.monotonic() - started

    # The removal was sent and never answered: it may have been done.
    assert answer.status_code == 503 and answer.json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN"
    assert answer.headers["Retry-After"] == "1"
    assert 0.5 <= elapsed < 1.5
    assert served.remove("room-1", "bob").status_code == 200
    assert livekit_emulator.participant("room-1", "bob") is None


def test_a_down_livekit_is_a_503_and_recovery_is_immediate(make_served, livekit_emulator):
    served = make_served()
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["alice", "bob"])
    assert served.remove("room-1", "alice").status_code == 200  # a pooled connection now exists

    livekit_emulator.go_down()
    down = served.remove("room-1", "bob")
    livekit_emulator.come_up()
    up = served.remove("room-1", "bob")

    assert down.status_code == 503 and down.json()["code"] == "LIVEKIT_UNAVAILABLE"
    assert up.status_code == 200
    assert livekit_emulator.participants("room-1") == []


def test_concurrent_requests_share_one_client_and_each_removal_happens_once(
    make_served_over_http, livekit_emulator
):
    # 16 clients at once on a real threaded server, each request in its own server thread.
    served = make_served_over_http(LIVEKIT_MODERATION_MAX_CONCURRENCY=16)
    identities = [f"user-{i}" for i in range(160)]
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", identities)
    livekit_emulator.set_latency(0.01)
    loops_before = len(_loop_threads())

    def remove(identity: str) -> int:
        import requests

        return requests.delete(
            served.url + "/livekit/participant",
            json={"room_name": "room-1", "participant_identity": identity},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(remove, identities))

    assert statuses == [200] * len(identities)
    assert livekit_emulator.participants("room-1") == []
    removed = [c.request.identity for c in livekit_emulator.calls if c.method == "RemoveParticipant"]
    assert sorted(removed) == sorted(identities)
    assert len(_loop_threads()) == max(loops_before, 1)
    # Requests overlapped on the shared loop rather than queueing behind one another.
    calls = livekit_emulator.calls
    overlapping = sum(1 for a, b in zip(calls, calls[1:], strict=False) if b.started < a.finished)
    assert overlapping > 0


def _child_removes(url: str, key: str, secret: str, result) -> None:
    # Runs in a forked child: the parent's loop thread does not exist here.
    # The store in memory: the removal's audit entry must not go to the repository's instance folder.
    app = create_app(
        {
            "LIVEKIT_URL": url,
            "LIVEKIT_API_KEY": key,
            "LIVEKIT_API_SECRET": secret,
            "LIVEKIT_MODERATION_BAN_STORE": "memory://",
        }
    )
    with serve(app) as served:
        result.put(served.remove("room-1", "child").status_code)


def test_the_client_works_in_a_forked_child_and_in_the_parent_after(make_served, livekit_emulator):
    served = make_served()
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["parent-1", "child", "parent-2"])
    assert served.remove("room-1", "parent-1").status_code == 200

    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(
        target=_child_removes,
        args=(livekit_emulator.url, livekit_emulator.api_key, livekit_emulator.api_secret, result),
    )
    child.start()
    child.join(30)

    assert child.exitcode == 0
    assert result.get(timeout=5) == 200
    assert served.remove("room-1", "parent-2").status_code == 200
    assert livekit_emulator.participants("room-1") == []


def test_the_process_exits_cleanly_after_using_the_client(livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    config = livekit_config(livekit_emulator)
    script = textwrap.dedent(
        f"""
        from example_app import create_app
        app = create_app({config!r})
        answer = app.test_client().delete(
            "/livekit/participant", json={{"room_name": "room-1", "participant_identity": "alice"}}
        )
        print(answer.status_code)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"
    assert "Unclosed" not in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def signed_tokens(monkeypatch):
    """Every API token livekit-api signs in this test (the real signer, observed)."""
    from livekit.api import AccessToken

    signed: list[str] = []
    original = AccessToken.to_jwt

    def observed_to_jwt(self):
        token = original(self)
        signed.append(token)
        return token

    monkeypatch.setattr(AccessToken, "to_jwt", observed_to_jwt)
    return signed


def _two_tenant_rooms(emulator):
    for room in ("room-1", "room-2"):
        emulator.add_room(room, metadata='{"auth_id": "tenant-a"}')
        emulator.add_participants(room, ["u1", "u2"])


TENANT_A_ONLY = {
    "LIVEKIT_MODERATION_AUTH_REQUIRED": True,
    "LIVEKIT_MODERATION_API_SECRETS": [{"id": "tenant-a", "secret": "s-a"}],
}


def test_api_tokens_are_signed_once_per_grant_set_and_reused(make_served, livekit_emulator, signed_tokens):
    served = make_served(**TENANT_A_ONLY)
    _two_tenant_rooms(livekit_emulator)

    for identity in ("u1", "u2"):
        for room in ("room-1", "room-2"):
            assert served.remove(room, identity, "s-a").status_code == 200

    # roomList once, roomAdmin for each room once: 3 signatures for 8 calls, and the
    # stand-in accepted every reused token with the grants of its own room.
    assert len(signed_tokens) == 3
    assert [c.status for c in livekit_emulator.calls] == [200] * 8
    assert {c.grants.room for c in livekit_emulator.calls if c.method == "RemoveParticipant"} == {
        "room-1",
        "room-2",
    }


def test_expired_cached_tokens_are_signed_again(make_served, livekit_emulator, signed_tokens, monkeypatch):
    import flask_livekit_moderation.client as client_module

    monkeypatch.setattr(client_module, "TOKEN_REUSE_SECONDS", 0.0)
    served = make_served(**TENANT_A_ONLY)
    _two_tenant_rooms(livekit_emulator)

    assert served.remove("room-1", "u1", "s-a").status_code == 200
    assert served.remove("room-1", "u2", "s-a").status_code == 200
    assert len(signed_tokens) == 4
