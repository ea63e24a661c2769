"""Safe retries (issue 23, points 4 and 5): the ``Idempotency-Key`` header and truthful timeouts.

Route tests go through a real werkzeug server (``make_served_over_http``) to the LiveKit
stand-in over real HTTP; what the stand-in saw is checked beside every answer. The store's
semantics are checked on every kind of store (memory, SQLite, Redis, PostgreSQL: real servers),
and one test runs two gunicorn app processes sharing Redis, then a SQLite file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from benchmarks.bans import BansGunicorn
from benchmarks.processes import TENANT_ID, TENANT_TOKEN, WorkerSetup
from flask_livekit_moderation import errors, room_metadata
from flask_livekit_moderation.bans.stores import (
    BanStore,
    MemoryBanStore,
    PostgreSQLBanStore,
    RedisBanStore,
    SQLiteBanStore,
)
from flask_livekit_moderation.idempotency import Kept, records_for
from flask_livekit_moderation.idempotency.model import Verdict, fingerprint
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import MASKED_404, TENANTS, TOKEN_A, TOKEN_B, HttpServedApp
from tests.redis_server import free_port, redis_server

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
ROOM_A, ROOM_B = "room-a", "room-b"


def removals(emu: LiveKitEmulator) -> int:
    return emu.call_counts().get("RemoveParticipant", 0)


def track_of(emu: LiveKitEmulator, room: str, identity: str) -> str:
    participant = emu.participant(room, identity)
    assert participant is not None
    return participant.tracks[0].sid


def remove(served: HttpServedApp, identity: str, key: str | None, token: str = TOKEN_A, room: str = ROOM_A):
    headers = {} if key is None else {KEY: key}
    return served.remove(room, identity, token, headers=headers)


@pytest.fixture
def rooms(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room(ROOM_A, metadata=room_metadata(TENANTS[0]["id"]))
    livekit_emulator.add_room(ROOM_B, metadata=room_metadata(TENANTS[1]["id"]))
    livekit_emulator.add_participants(ROOM_A, ["alice", "bob", "carol"])
    livekit_emulator.add_participants(ROOM_B, ["alice", "dave"])
    livekit_emulator.clear_calls()
    return livekit_emulator


@pytest.fixture
def tenants_http(make_served_over_http: Callable[..., HttpServedApp], tmp_path: Path) -> HttpServedApp:
    """Auth with the two tenants, keys in a SQLite file (the default kind of store)."""
    return make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/store.sqlite3",
    )


# -- replays ------------------------------------------------------------------------------------


def test_the_same_key_and_body_twice_removes_once_and_replays_the_answer(rooms, tenants_http):
    first = remove(tenants_http, "alice", "remove-alice-1")
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "removed", "room_name": ROOM_A, "participant_identity": "alice"}
    assert REPLAYED not in first.headers
    assert rooms.participant(ROOM_A, "alice") is None

    second = remove(tenants_http, "alice", "remove-alice-1")
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers[REPLAYED] == "true"
    assert second.headers["Content-Type"] == "application/json"
    # One RemoveParticipant (after the room check's ListRooms): the replay reached no LiveKit.
    assert rooms.call_names() == ["ListRooms", "RemoveParticipant"]


def test_a_4xx_is_kept_and_replayed_a_5xx_is_not(rooms, tenants_http):
    missing = remove(tenants_http, "zoe", "remove-zoe")
    assert (missing.status_code, missing.json()) == (404, MASKED_404)
    rooms.add_participants(ROOM_A, ["zoe"])
    again = remove(tenants_http, "zoe", "remove-zoe")
    assert (again.status_code, again.json(), again.headers[REPLAYED]) == (404, MASKED_404, "true")
    assert rooms.participant(ROOM_A, "zoe") is not None  # the kept answer, nothing done

    rooms.fail_next("RemoveParticipant", code="unavailable")
    failed = remove(tenants_http, "bob", "remove-bob")
    assert (failed.status_code, failed.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert rooms.participant(ROOM_A, "bob") is not None
    retried = remove(tenants_http, "bob", "remove-bob")
    assert (retried.status_code, retried.json()["status"]) == (200, "removed")
    assert REPLAYED not in retried.headers  # it ran again
    assert rooms.participant(ROOM_A, "bob") is None
    assert removals(rooms) == 3


def test_the_same_key_with_another_body_or_route_is_422_and_does_nothing(rooms, tenants_http):
    assert remove(tenants_http, "alice", "k-1").status_code == 200
    rooms.clear_calls()
    other_body = remove(tenants_http, "bob", "k-1")
    assert other_body.status_code == 422
    assert other_body.json() == {
        "error": errors.IDEMPOTENCY_KEY_REUSED.message,
        "code": "IDEMPOTENCY_KEY_REUSED",
    }
    track = track_of(rooms, ROOM_A, "carol")
    other_route = tenants_http.mute(ROOM_A, "carol", track, True, TOKEN_A, headers={KEY: "k-1"})
    assert (other_route.status_code, other_route.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert rooms.call_names() == []
    assert rooms.participant(ROOM_A, "bob") is not None
    # Key order and spacing do not make another request.
    same = tenants_http.request(
        "DELETE",
        "/livekit/participant",
        TOKEN_A,
        data=b'{ "participant_identity": "alice",  "room_name": "room-a" }',
        headers={KEY: "k-1", "Content-Type": "application/json"},
    )
    assert (same.status_code, same.headers.get(REPLAYED)) == (200, "true")


def test_keys_of_one_owner_are_invisible_to_another(rooms, tenants_http):
    # The same key string, different owners: independent requests, no 422, no replay.
    a = remove(tenants_http, "alice", "shared-key", TOKEN_A, ROOM_A)
    b = remove(tenants_http, "alice", "shared-key", TOKEN_B, ROOM_B)
    assert (a.status_code, b.status_code) == (200, 200)
    assert REPLAYED not in b.headers
    assert rooms.participant(ROOM_B, "alice") is None
    # B repeating A's exact request runs it as B (the masked 404), never replays A's answer.
    b_as_a = remove(tenants_http, "alice", "shared-key-2", TOKEN_B, ROOM_A)
    a_first = remove(tenants_http, "bob", "shared-key-3", TOKEN_A, ROOM_A)
    b_same = remove(tenants_http, "bob", "shared-key-3", TOKEN_B, ROOM_A)
    assert (b_as_a.status_code, b_as_a.json()) == (404, MASKED_404)
    assert a_first.status_code == 200
    assert (b_same.status_code, b_same.json(), b_same.headers.get(REPLAYED)) == (404, MASKED_404, None)


def test_a_malformed_key_is_400_before_anything_and_reads_ignore_keys(rooms, tenants_http):
    for bad in ("x" * 256, "tab\there", "caf\u00e9"):
        answer = tenants_http.request(
            "DELETE",
            "/livekit/participant",
            TOKEN_A,
            data=json.dumps({"room_name": ROOM_A, "participant_identity": "alice"}).encode(),
            headers={KEY: bad.encode("latin-1"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == "INVALID_REQUEST"
        assert answer.json()["details"] == {
            KEY: ["Must be one header of 1 to 255 printable ASCII characters."]
        }
    assert remove(tenants_http, "alice", "k" * 255).status_code == 200
    listed = tenants_http.participants(ROOM_A, TOKEN_A, headers={KEY: "x" * 300})
    assert listed.status_code == 200 and REPLAYED not in listed.headers
    assert removals(rooms) == 1


def test_a_store_that_fails_answers_503_before_any_livekit_call(
    rooms: LiveKitEmulator, make_served_over_http: Callable[..., HttpServedApp]
):
    served = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        LIVEKIT_MODERATION_BAN_STORE=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
    )
    answer = remove(served, "alice", "k")
    assert (answer.status_code, answer.json()["code"]) == (503, "BAN_STORE_UNAVAILABLE")
    assert answer.headers["Retry-After"] == "1"
    assert rooms.call_names() == []
    assert remove(served, "alice", None).status_code == 200  # without a key, no store is asked


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.timing
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_concurrent_requests_with_one_key_never_remove_twice(
    rooms: LiveKitEmulator, make_served_over_http: Callable[..., HttpServedApp], tmp_path: Path, store: str
):
    tenants_http = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        LIVEKIT_MODERATION_BAN_STORE="memory://" if store == "memory" else f"sqlite:///{tmp_path}/s.sqlite3",
    )
    rooms.set_latency(0.6, method="RemoveParticipant")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: remove(tenants_http, "alice", "same-time"), range(4)))
    rooms.set_latency(0, method="RemoveParticipant")
    ran = [a for a in answers if a.status_code == 200 and REPLAYED not in a.headers]
    in_use = [a for a in answers if a.status_code == 409]
    replays = [a for a in answers if a.status_code == 200 and a.headers.get(REPLAYED) == "true"]
    assert len(ran) == 1, [(a.status_code, a.text) for a in answers]
    assert len(ran) + len(in_use) + len(replays) == 4
    assert in_use, "no request overlapped the first"  # 0.6 s of LiveKit latency: they all did
    for answer in in_use:
        assert answer.json() == {
            "error": errors.IDEMPOTENCY_KEY_IN_USE.message,
            "code": "IDEMPOTENCY_KEY_IN_USE",
        }
        assert answer.headers["Retry-After"] == "1"
    assert removals(rooms) == 1
    replay = remove(tenants_http, "alice", "same-time")
    assert (replay.status_code, replay.headers[REPLAYED]) == (200, "true")
    assert removals(rooms) == 1


# -- truthful timeouts --------------------------------------------------------------------------


def _wait_gone(emu: LiveKitEmulator, room: str, identity: str) -> None:
    deadline = time.monotonic() + 5
    while emu.participant(room, identity) is not None:
        assert time.monotonic() < deadline, "the stand-in never performed the late removal"
        time.sleep(0.02)


@pytest.mark.timing
def test_a_removal_past_the_deadline_is_outcome_unknown_and_its_retry_answers_removed(
    rooms: LiveKitEmulator, make_served_over_http: Callable[..., HttpServedApp], tmp_path: Path
):
    served = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/store.sqlite3",
        LIVEKIT_MODERATION_TIMEOUT=0.5,
    )
    rooms.set_latency(1.0, method="RemoveParticipant")  # LiveKit acts, then answers too late
    late = remove(served, "alice", "spike-1")
    rooms.set_latency(0, method="RemoveParticipant")
    assert late.status_code == 503
    assert late.json() == {"error": errors.LIVEKIT_OUTCOME_UNKNOWN.message, "code": "LIVEKIT_OUTCOME_UNKNOWN"}
    assert int(late.headers["Retry-After"]) >= 1
    _wait_gone(rooms, ROOM_A, "alice")  # the first attempt did remove alice

    # Another tenant cannot learn anything from the key: its own namespace, and the room check.
    other = remove(served, "alice", "spike-1", TOKEN_B, ROOM_A)
    assert (other.status_code, other.json()) == (404, MASKED_404)

    retried = remove(served, "alice", "spike-1")
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"status": "removed", "room_name": ROOM_A, "participant_identity": "alice"}
    assert REPLAYED not in retried.headers
    replayed = remove(served, "alice", "spike-1")
    assert (replayed.status_code, replayed.content, replayed.headers[REPLAYED]) == (
        200,
        retried.content,
        "true",
    )

    # Without a key the same retry cannot tell "done" from "not yours": the masked 404.
    rooms.set_latency(1.0, method="RemoveParticipant")
    assert remove(served, "bob", None).json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN"
    rooms.set_latency(0, method="RemoveParticipant")
    _wait_gone(rooms, ROOM_A, "bob")
    assert remove(served, "bob", None).status_code == 404
    # ... and a key whose attempt ended otherwise gets the 404 too (nothing to vouch for it).
    assert remove(served, "nobody", "never-unknown").status_code == 404


@pytest.mark.timing
def test_a_retry_after_an_unknown_outcome_still_checks_the_room_first(
    rooms: LiveKitEmulator, make_served_over_http: Callable[..., HttpServedApp], tmp_path: Path
):
    served = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/store.sqlite3",
        LIVEKIT_MODERATION_TIMEOUT=0.5,
    )
    rooms.set_latency(1.0, method="RemoveParticipant")
    late = remove(served, "alice", "spike-2")
    rooms.set_latency(0, method="RemoveParticipant")
    assert late.json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN"
    _wait_gone(rooms, ROOM_A, "alice")
    # The room closed and another tenant opened one of that name: it is not the caller's any more.
    rooms.set_room_metadata(ROOM_A, room_metadata(TENANTS[1]["id"]))
    rooms.clear_calls()
    retried = remove(served, "alice", "spike-2")
    assert (retried.status_code, retried.json()) == (404, MASKED_404)
    assert rooms.call_names() == ["ListRooms"]  # refused before any RemoveParticipant


@pytest.mark.timing
def test_outcome_unknown_is_only_for_a_write_sent_without_answer(
    rooms: LiveKitEmulator, make_served_over_http: Callable[..., HttpServedApp]
):
    served = make_served_over_http(LIVEKIT_MODERATION_BAN_STORE="memory://", LIVEKIT_MODERATION_TIMEOUT=0.5)
    track = track_of(rooms, ROOM_A, "carol")
    # A read past the deadline (the mute's GetParticipant): nothing was sent to change.
    rooms.set_latency(1.0, method="GetParticipant")
    read_late = served.mute(ROOM_A, "carol", track, True)
    rooms.set_latency(0, method="GetParticipant")
    assert (read_late.status_code, read_late.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert "MutePublishedTrack" not in rooms.call_counts()
    rooms.set_latency(1.0, method="ListParticipants")
    listing_late = served.participants(ROOM_A)
    rooms.set_latency(0, method="ListParticipants")
    assert (listing_late.status_code, listing_late.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    # The mute itself past the deadline: sent, no answer.
    rooms.set_latency(1.0, method="MutePublishedTrack")
    write_late = served.mute(ROOM_A, "carol", track, True)
    rooms.set_latency(0, method="MutePublishedTrack")
    assert (write_late.status_code, write_late.json()["code"]) == (503, "LIVEKIT_OUTCOME_UNKNOWN")
    # A slow room (the per-room latency: every call about it, ListRooms included for tenants).
    rooms.set_latency(1.0, room=ROOM_B)
    room_late = served.remove(ROOM_B, "dave")
    rooms.set_latency(0, room=ROOM_B)
    assert (room_late.status_code, room_late.json()["code"]) == (503, "LIVEKIT_OUTCOME_UNKNOWN")


def test_a_write_never_sent_is_livekit_unavailable(make_served_over_http: Callable[..., HttpServedApp]):
    # A connection refused: nothing reached LiveKit.
    served = make_served_over_http(
        LIVEKIT_URL=f"http://127.0.0.1:{free_port()}", LIVEKIT_MODERATION_BAN_STORE="memory://"
    )
    refused = served.remove(ROOM_A, "alice", headers={KEY: "refused"})
    assert (refused.status_code, refused.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert "Retry-After" in refused.headers


def test_a_connection_dropped_after_sending_a_removal_is_outcome_unknown(rooms, tenants_http):
    rooms.drop_next("RemoveParticipant", 2)  # the pooled connection, then the fresh one
    dropped = remove(tenants_http, "alice", "dropped")
    assert (dropped.status_code, dropped.json()["code"]) == (503, "LIVEKIT_OUTCOME_UNKNOWN")
    # The stand-in hung up without acting: the retry finds alice and removes her.
    retried = remove(tenants_http, "alice", "dropped")
    assert (retried.status_code, retried.json()["status"]) == (200, "removed")
    assert rooms.participant(ROOM_A, "alice") is None


# -- the stores ----------------------------------------------------------------------------------


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def clocked_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BanStore, Clock]]:
    clock = Clock()
    store: BanStore
    if request.param == "memory":
        store = MemoryBanStore(clock)
    elif request.param == "sqlite":
        store = SQLiteBanStore(str(tmp_path / "keys.sqlite3"), clock)
    else:
        url = request.getfixturevalue("redis_url" if request.param == "redis" else "postgres_url")
        store = (
            RedisBanStore.from_url(url, clock) if request.param == "redis" else PostgreSQLBanStore(url, clock)
        )
    yield store, clock
    store.close()


def test_every_store_decides_claims_replays_reuse_and_dead_claims_alike(clocked_store, request):
    store, clock = clocked_store
    records = records_for(store)
    assert records_for(store) is records
    scope, other = f"id:a-{request.node.name}", f"id:b-{request.node.name}"
    fp, fp2 = fingerprint("DELETE", "/x", {"a": 1}), fingerprint("DELETE", "/x", {"a": 2})

    claimed = records.begin(scope, "k", fp, "t1", 30)
    assert (claimed.verdict, claimed.after_unknown) == (Verdict.CLAIMED, False)
    assert records.begin(scope, "k", fp, "t2", 30).verdict is Verdict.RUNNING
    assert records.begin(scope, "k", fp2, "t2", 30).verdict is Verdict.REUSED
    assert records.begin(other, "k", fp2, "t3", 30).verdict is Verdict.CLAIMED  # another owner
    kept = Kept(200, '{"status":"removed"}', (("Content-Type", "application/json"),), "removed")
    records.finish(scope, "k", "not-the-holder", Kept(500, "{}", (), None), 3600)  # ignored
    records.finish(scope, "k", "t1", kept, 3600)
    replay = records.begin(scope, "k", fp, "t4", 30)
    assert (replay.verdict, replay.kept) == (Verdict.REPLAY, kept)
    assert records.begin(scope, "k", fp2, "t4", 30).verdict is Verdict.REUSED

    # A 5xx releases the key: the next request claims it afresh.
    assert records.begin(scope, "k2", fp, "t5", 30).verdict is Verdict.CLAIMED
    records.release(scope, "k2", "t5", unknown=False, seconds=3600)
    assert records.begin(scope, "k2", fp2, "t6", 30).verdict is Verdict.CLAIMED

    # An unknown outcome is remembered, through a later plain failure and a dead holder.
    assert records.begin(scope, "k3", fp, "t7", 30).verdict is Verdict.CLAIMED
    records.release(scope, "k3", "t7", unknown=True, seconds=3600)
    assert records.begin(scope, "k3", fp2, "t8", 30).verdict is Verdict.REUSED
    after = records.begin(scope, "k3", fp, "t8", 30)
    assert (after.verdict, after.after_unknown) == (Verdict.CLAIMED, True)
    assert records.begin(scope, "k3", fp, "t9", 30).verdict is Verdict.RUNNING
    clock.offset += 31  # t8's worker died: its claim ends, the mark stays
    again = records.begin(scope, "k3", fp, "t9", 30)
    assert (again.verdict, again.after_unknown) == (Verdict.CLAIMED, True)
    records.release(scope, "k3", "t9", unknown=True, seconds=3600)

    # A dead holder's claim of a fresh key ends too; kept answers expire after their time.
    assert records.begin(scope, "k4", fp, "t10", 30).verdict is Verdict.CLAIMED
    clock.offset += 31
    assert records.begin(scope, "k4", fp2, "t11", 30).verdict is Verdict.CLAIMED
    clock.offset += 3601
    assert records.begin(scope, "k", fp2, "t12", 30).verdict is Verdict.CLAIMED


def test_of_many_requests_racing_with_one_key_one_claims_it_on_every_store(clocked_store, request):
    store, _ = clocked_store
    records = records_for(store)
    scope, fp = f"id:race-{request.node.name}", fingerprint("POST", "/x", {})
    # Rounds enough for two transactions to read "no such key" at once (PostgreSQL then needs
    # its ON CONFLICT: without it, 75 of 240 racing requests failed in one measured run).
    for round_ in range(20):
        barrier = threading.Barrier(8)

        def race(n: int, key: str = f"raced-{round_}", start: threading.Barrier = barrier) -> Verdict:
            start.wait()
            return records.begin(scope, key, fp, f"t{n}", 30).verdict

        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(race, range(8)))
        assert sorted(v.value for v in verdicts) == ["claimed"] + ["running"] * 7, round_


# -- processes -----------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator() as emulator:
        emulator.add_room("shared", metadata=room_metadata(TENANT_ID))
        yield emulator


def _remove_through(app: BansGunicorn, identity: str, key: str) -> requests.Response:
    return requests.delete(
        app.url + "/livekit/participant",
        json={"room_name": "shared", "participant_identity": identity},
        headers={"Authorization": f"Bearer {TENANT_TOKEN}", KEY: key, "Connection": "close"},
        timeout=30,
    )


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_two_app_processes_sharing_a_store_replay_each_others_answers(
    emu: LiveKitEmulator, tmp_path: Path, kind: str
) -> None:
    def run(store: str) -> None:
        env = {"BANS_STORE": store, "BANS_INSTANCE_PATH": str(tmp_path)}
        one = WorkerSetup(workers=1, threads=4)
        with BansGunicorn(emu, one, env) as first, BansGunicorn(emu, one, env) as second:
            assert first.workers() != second.workers()
            emu.add_participants("shared", ["alice", "bob"])
            emu.clear_calls()
            done = _remove_through(first, "alice", "cross-process")
            assert done.status_code == 200, done.text
            replayed = _remove_through(second, "alice", "cross-process")
            assert (replayed.status_code, replayed.content) == (200, done.content)
            assert replayed.headers[REPLAYED] == "true"
            reused = _remove_through(second, "bob", "cross-process")
            assert (reused.status_code, reused.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
            assert emu.call_counts().get("RemoveParticipant") == 1
            assert emu.participant("shared", "bob") is not None

    if kind == "redis":
        with redis_server() as server:
            run(server.url)
    else:
        run(f"sqlite:///{tmp_path}/shared.sqlite3")
        assert (tmp_path / "shared.sqlite3").exists()


# -- the OpenAPI document -------------------------------------------------------------------------


def test_the_document_says_which_routes_take_a_key_from_the_route_table(anon) -> None:
    from flask_livekit_moderation.idempotency import applies
    from flask_livekit_moderation.state import app_states

    document = anon.request("GET", "/livekit/openapi.json").json()
    (state,) = app_states(anon.app)
    retryable = {(route.rule, route.method.lower()) for route in state.routes if applies(route)}
    assert retryable == {
        ("/participant", "delete"),
        ("/participant/mute", "post"),
        ("/participant/permissions", "post"),
        ("/room/mute", "post"),
        ("/bans", "post"),
        ("/bans", "delete"),
        ("/room/lock", "post"),
        ("/lobby/admit", "post"),
        ("/lobby/deny", "post"),
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            takes_key = (path.removeprefix("/livekit"), method) in retryable
            headers = [p for p in operation.get("parameters", []) if p.get("in") == "header"]
            assert [p["name"] for p in headers] == (["Idempotency-Key"] if takes_key else []), path
            responses = operation["responses"]
            assert ("409" in responses, "422" in responses) == (takes_key, takes_key), path
            for status, response in responses.items():
                replayed = "Idempotent-Replayed" in response.get("headers", {})
                assert replayed == (takes_key and int(status) < 500), (path, status)
            if takes_key:
                assert headers[0]["schema"] == {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[ -~]+$",
                }
                assert "IDEMPOTENCY_KEY_IN_USE" in responses["409"]["description"]
                assert "IDEMPOTENCY_KEY_REUSED" in responses["422"]["description"]
                assert "BAN_STORE_UNAVAILABLE" in responses["503"]["description"]
