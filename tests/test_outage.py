"""A LiveKit that is slow, down or misbehaving never takes the host down (issue 10).

One deadline per request, the bulkhead, the circuit breaker, 503 with Retry-After, and the
transport holes: redirects, answers that are not protobuf, stale pooled connections, the
timing of the masked 404, ``api_key`` redaction past a raw quote, the API token's lifetime
and secret matching whatever the number of secrets. Everything over real HTTP against the
stand-in; the host-under-outage scenario runs real gunicorn (``tests/test_outage_gunicorn.py``).
"""

from __future__ import annotations

import http.client
import logging
import random
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import jwt
import pytest
from flask import Flask
from livekit.api import VideoGrants

from benchmarks.processes import StandIn
from flask_livekit_moderation import ConfigurationError, LiveKitModeration, room_metadata, signals
from flask_livekit_moderation.client import TOKEN_TTL, TokenCachingRoomService
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import TENANTS, TOKEN_A, HttpServedApp, ServedApp, host_app, livekit_config, serve

pytestmark = pytest.mark.timing


@pytest.fixture
def room(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", [f"p{i}" for i in range(40)])
    return livekit_emulator


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LIVEKIT_MODERATION_TIMEOUT", float("inf")),
        ("LIVEKIT_MODERATION_TIMEOUT", float("nan")),
        ("LIVEKIT_MODERATION_TIMEOUT", 1e12),
        ("LIVEKIT_MODERATION_TIMEOUT", 301),
        ("LIVEKIT_MODERATION_TIMEOUT", 0),
        ("LIVEKIT_MODERATION_TIMEOUT", True),
        ("LIVEKIT_MODERATION_BREAKER_COOLDOWN", float("inf")),
        ("LIVEKIT_MODERATION_BREAKER_COOLDOWN", -1),
        ("LIVEKIT_MODERATION_MAX_CONCURRENCY", -1),
        ("LIVEKIT_MODERATION_MAX_CONCURRENCY", 2.5),
        ("LIVEKIT_MODERATION_MAX_CONCURRENCY", "many"),
        ("LIVEKIT_MODERATION_BREAKER_FAILURES", None),
    ],
)
def test_absurd_limits_fail_at_init_app(livekit_emulator, key, value):
    app = Flask("host")
    app.config.update(livekit_config(livekit_emulator), **{key: value})
    with pytest.raises(ConfigurationError, match=key):
        LiveKitModeration(app)


def test_limits_may_come_as_strings_from_the_environment(livekit_emulator):
    app = Flask("host")
    app.config.update(
        livekit_config(livekit_emulator),
        LIVEKIT_MODERATION_AUTH_REQUIRED=False,
        LIVEKIT_MODERATION_TIMEOUT="2.5",
        LIVEKIT_MODERATION_MAX_CONCURRENCY="8",
        LIVEKIT_MODERATION_BREAKER_FAILURES="0",
    )
    LiveKitModeration(app)
    settings = app.extensions["livekit_moderation"].settings
    assert (settings.timeout, settings.max_concurrency, settings.breaker_failures) == (2.5, 8, 0)


# -- one deadline per request -------------------------------------------------------------------


def test_the_deadline_bounds_all_calls_of_a_request_together(room):
    # Each call alone fits in the deadline; the two together do not.
    room.set_latency(0.3, method="ListRooms")
    room.set_latency(0.3, method="RemoveParticipant")
    room.set_room_metadata("room-1", room_metadata("tenant-a"))
    app = host_app(
        room,
        LIVEKIT_MODERATION_TIMEOUT=0.45,
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=TENANTS,
    )
    with serve(app) as served:
        started = time.monotonic()
        answer = served.remove("room-1", "p1", TOKEN_A)
        elapsed = time.monotonic() - started
    # The deadline passed with the RemoveParticipant sent and unanswered: it may have been done.
    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_OUTCOME_UNKNOWN")
    assert 0.45 <= elapsed < 0.45 + 0.5
    assert room.call_names()[0] == "ListRooms"


# -- the admission lane --------------------------------------------------------------------------


def test_requests_over_the_limit_are_503_busy_at_once_when_those_ahead_are_late(room):
    # A fresh app has learned nothing of LiveKit's speed: a call unanswered after 0.05 s is late.
    room.set_latency(0.6)
    app = host_app(room, LIVEKIT_MODERATION_MAX_CONCURRENCY=2, LIVEKIT_MODERATION_CALLER_SHARE=1)
    with serve(app) as served:

        def remove(identity: str) -> tuple[int, str, float, str | None]:
            started = time.monotonic()
            answer = HttpServedApp(app=app, url=served.url).remove("room-1", identity)
            code = None if answer.status_code == 200 else answer.json()["code"]
            return (
                answer.status_code,
                code or "",
                time.monotonic() - started,
                answer.headers.get("Retry-After"),
            )

        with ThreadPoolExecutor(6) as pool:
            first = [pool.submit(remove, f"p{i}") for i in range(2)]
            time.sleep(0.2)  # both hold their slot now
            late = [pool.submit(remove, f"p{i}") for i in range(2, 6)]
            busy = [f.result() for f in late]
            done = [f.result() for f in first]
    assert [d[0] for d in done] == [200, 200]
    for status, code, elapsed, retry_after in busy:
        assert (status, code, retry_after) == (503, "LIVEKIT_BUSY", "1")
        assert elapsed < 0.25
    removed = [c.request.identity for c in room.calls if c.method == "RemoveParticipant"]
    assert sorted(removed) == ["p0", "p1"]  # the refused requests never reached LiveKit


# -- the circuit breaker ------------------------------------------------------------------------


@pytest.fixture
def breaker_app(room) -> Iterator[tuple[ServedApp, list[dict[str, object]]]]:
    app = host_app(
        room,
        LIVEKIT_MODERATION_BREAKER_FAILURES=3,
        LIVEKIT_MODERATION_BREAKER_COOLDOWN=1,
        LIVEKIT_MODERATION_TIMEOUT=0.5,
    )
    changes: list[dict[str, object]] = []

    @signals.livekit_breaker_changed.connect_via(app)
    def changed(sender, **data):
        changes.append(data)

    with serve(app) as served:
        yield served, changes


def test_the_breaker_opens_answers_at_once_then_probes_and_closes(breaker_app, room, caplog):
    served, changes = breaker_app
    room.fail_next("ListParticipants", code="unavailable", n=3)
    with caplog.at_level(logging.INFO, "flask_livekit_moderation"):
        failures = [served.participants("room-1") for _ in range(3)]
        assert [f.headers["Retry-After"] for f in failures] == ["1", "1", "1"]
        assert room.call_counts()["ListParticipants"] == 3

        started = time.monotonic()
        refused = [served.participants("room-1") for _ in range(10)]
        per_request = (time.monotonic() - started) / 10
        assert {(r.status_code, r.json()["code"]) for r in refused} == {(503, "LIVEKIT_UNAVAILABLE")}
        assert {r.headers["Retry-After"] for r in refused} == {"1"}
        assert room.call_counts()["ListParticipants"] == 3  # open: no LiveKit call at all
        assert per_request < 0.05

        time.sleep(1.05)  # the cooldown passes; LiveKit is healthy again
        probe = served.participants("room-1")
        assert probe.status_code == 200
        assert served.participants("room-1").status_code == 200
    assert [c["state"] for c in changes] == ["open", "half_open", "closed"]
    assert changes[0]["failures"] == 3 and changes[0]["retry_after"] == 1
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if "breaker" in r.getMessage()]
    assert messages[0][0] == "WARNING" and "open" in messages[0][1]
    assert messages[-1][0] == "INFO" and "closed" in messages[-1][1]


def test_a_failed_probe_opens_the_breaker_again(breaker_app, room):
    served, changes = breaker_app
    room.fail_next("ListParticipants", code="internal", n=4)
    for _ in range(3):
        assert served.participants("room-1").status_code == 503
    time.sleep(1.05)
    probe = served.participants("room-1")  # the fourth failure: the probe
    assert probe.status_code == 503 and probe.headers["Retry-After"] == "1"
    assert room.call_counts()["ListParticipants"] == 4
    assert served.participants("room-1").json()["code"] == "LIVEKIT_UNAVAILABLE"
    assert room.call_counts()["ListParticipants"] == 4
    assert [c["state"] for c in changes] == ["open", "half_open", "open"]


def test_answers_that_prove_livekit_is_up_never_open_it(breaker_app, room):
    served, changes = breaker_app
    room.fail_next("RemoveParticipant", code="unavailable", n=2)
    assert served.remove("room-1", "p1").status_code == 503
    assert served.remove("room-1", "p1").status_code == 503
    # A not_found is an answer: LiveKit is up, and the count of failures starts again.
    assert served.remove("room-1", "nobody").status_code == 404
    room.fail_next("RemoveParticipant", code="unavailable", n=2)
    assert served.remove("room-1", "p1").status_code == 503
    assert served.remove("room-1", "p1").status_code == 503
    assert served.remove("room-1", "p1").status_code == 200
    assert changes == []


def test_only_one_probe_is_let_through_while_half_open(breaker_app, room):
    served, changes = breaker_app
    room.fail_next("ListParticipants", code="unavailable", n=3)
    for _ in range(3):
        served.participants("room-1")
    time.sleep(1.05)
    room.set_latency(0.4, method="ListParticipants")  # the probe takes a while
    with ThreadPoolExecutor(1) as pool:
        probe = pool.submit(served.participants, "room-1")
        time.sleep(0.15)
        during = HttpServedApp(app=served.app, url=served.url).participants("room-1")
        assert probe.result().status_code == 200
    assert (during.status_code, during.headers["Retry-After"]) == (503, "1")
    assert room.call_counts()["ListParticipants"] == 4


# -- transport holes ----------------------------------------------------------------------------


def test_a_redirect_is_never_followed(room, caplog):
    app = host_app(room, LIVEKIT_MODERATION_BREAKER_FAILURES=1)
    removed, changes = [], []
    signals.participant_removed.connect(lambda sender, **data: removed.append(data), app, weak=False)
    signals.livekit_breaker_changed.connect(lambda sender, **data: changes.append(data), app, weak=False)
    room.redirect_next("RemoveParticipant", location="http://127.0.0.1:9/elsewhere")
    with caplog.at_level(logging.WARNING, "flask_livekit_moderation"), serve(app) as served:
        answer = served.remove("room-1", "p1")
    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert room.participant("room-1", "p1") is not None
    assert removed == []
    assert [c["state"] for c in changes] == ["open"]  # it counts for the breaker
    assert any("http://127.0.0.1:9/elsewhere" in r.getMessage() for r in caplog.records)
    assert room.call_counts() == {"RemoveParticipant": 1}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "text/plain"),
        (b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        (b"", "application/json"),
        (b"\xff\xff\xff\xff", "application/protobuf"),
    ],
    ids=["empty-text", "html", "empty-json", "garbage-protobuf"],
)
@pytest.mark.parametrize("method", ["RemoveParticipant", "MutePublishedTrack", "GetParticipant"])
def test_a_200_that_is_no_protobuf_answer_is_never_a_confirmation(room, method, body, content_type, caplog):
    app = host_app(room)
    sent: list[str] = []
    for signal in (signals.participant_removed, signals.track_mute_changed):
        signal.connect(lambda sender, name=signal.name, **data: sent.append(name), app, weak=False)
    mic = room.participant("room-1", "p1").tracks[0].sid
    room.answer_next(method, body=body, content_type=content_type)
    with caplog.at_level(logging.WARNING, "flask_livekit_moderation"), serve(app) as served:
        answer = (
            served.remove("room-1", "p1")
            if method == "RemoveParticipant"
            else served.mute("room-1", "p1", mic, True)
        )
    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert sent == []
    assert room.participant("room-1", "p1") is not None
    assert not any(t.muted for t in room.participant("room-1", "p1").tracks)
    assert any(f"LiveKit unavailable: {method}" in r.getMessage() for r in caplog.records)


def test_a_connection_dropped_before_any_answer_is_sent_again_once(room):
    app = host_app(room)
    with serve(app) as served:
        assert served.participants("room-1").status_code == 200  # a pooled connection exists
        room.clear_calls()
        room.drop_next("RemoveParticipant")
        answer = served.remove("room-1", "p1")
        assert answer.status_code == 200
        assert [(c.method, c.status) for c in room.calls] == [
            ("RemoveParticipant", None),
            ("RemoveParticipant", 200),
        ]
        room.drop_next("RemoveParticipant", 2)
        # Sent twice, never answered: from here no one can tell whether LiveKit acted.
        assert served.remove("room-1", "p2").json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN"
    assert room.participant("room-1", "p2") is not None


def test_a_livekit_with_a_short_keep_alive_never_fails_a_request(livekit_emulator):
    """A real server closes idle keep-alive connections; a request sent as it does so must
    not fail. 120 listings spaced around the keep-alive timeout, all answered 200."""
    with LiveKitEmulator(keepalive_timeout=0.03) as emulator:
        emulator.add_room("room-1")
        emulator.add_participants("room-1", ["p1"])
        app = host_app(emulator)
        statuses = []
        rng = random.Random(7)
        with serve(app) as served:
            for _ in range(120):
                statuses.append(served.participants("room-1").status_code)
                time.sleep(rng.uniform(0.020, 0.040))
        calls = emulator.call_counts()["ListParticipants"]
    assert statuses == [200] * 120
    assert calls >= 120


def test_a_foreign_room_is_refused_as_fast_as_a_missing_one():
    """The masked 404 must not tell a big foreign room from no room through timing.

    The listing runs beside the room check; when the check refuses, the answer goes out at
    once and the listing is cancelled, so LiveKit (here the stand-in, in its own process,
    like a real server) never builds the 3,000-participant answer. A 1 ms network, and 20 ms
    for LiveKit to start on a listing: the room check's answer arrives first, as with a real
    server that lists a big room (had the 404 waited for the listing, a foreign room would
    pay for building 3,000 participants and a missing one would not).
    """
    with StandIn(latency_ms=1.0) as stand_in:
        stand_in.control("POST", "latency", {"ms": 20.0, "method": "ListParticipants"})
        stand_in.control("POST", "rooms", {"name": "foreign", "metadata": room_metadata("tenant-b")})
        stand_in.control(
            "POST", "participants", {"room": "foreign", "identities": [f"u{i}" for i in range(3000)]}
        )
        app = Flask("host")
        app.config.update(
            LIVEKIT_URL=stand_in.url,
            LIVEKIT_API_KEY=stand_in.api_key,
            LIVEKIT_API_SECRET=stand_in.api_secret,
            LIVEKIT_MODERATION_AUTH_REQUIRED=True,
            LIVEKIT_MODERATION_API_SECRETS=TENANTS,
            LIVEKIT_MODERATION_RECONCILE_INTERVAL=0,
        )
        LiveKitModeration(app)
        with serve(app) as served:
            conn = http.client.HTTPConnection("127.0.0.1", urlsplit(served.url).port, timeout=10)
            headers = {"Authorization": f"Bearer {TOKEN_A}"}

            def timed(room_name: str) -> float:
                started = time.perf_counter()
                conn.request("GET", f"/livekit/participants?room_name={room_name}", headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                elapsed = time.perf_counter() - started
                assert answer.status == 404 and b"ROOM_NOT_FOUND" in body
                return elapsed

            for _ in range(20):  # warm up both paths
                timed("foreign")
                timed("missing")
            foreign, missing = [], []
            for _ in range(200):
                foreign.append(timed("foreign"))
                missing.append(timed("missing"))
            conn.close()
        listings = stand_in.control("GET", "calls?records=1")["calls"]
    # Had the 404 waited for the listing, both would take over 20 ms and the foreign room
    # about 4 ms more (measured once by breaking the cancellation); interleaved medians
    # cancel out the machine's load, so 2 ms separates the two cases with room to spare.
    difference_ms = abs(statistics.median(foreign) - statistics.median(missing)) * 1000
    assert difference_ms <= 2.0, (statistics.median(foreign), statistics.median(missing))
    # The listings were abandoned before LiveKit built them (all but a few, by scheduling luck).
    statuses = [c["status"] for c in listings if c["method"] == "ListParticipants"]
    assert statuses.count(None) >= 0.9 * len(statuses), statuses


def test_api_key_values_are_redacted_even_after_a_raw_quote(room, caplog):
    app = host_app(room, LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS)
    with caplog.at_level(logging.INFO), serve(app) as served:
        conn = http.client.HTTPConnection("127.0.0.1", urlsplit(served.url).port, timeout=10)
        conn.request("GET", f'/livekit/participants?room_name=room-1&x="&api_key={TOKEN_A}')
        answer = conn.getresponse()
        answer.read()
        conn.close()
    assert answer.status == 404  # authenticated as tenant-a: room-1 is not its room
    logged = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("api_key=[REDACTED]" in line for line in logged), logged
    assert not any(TOKEN_A in line for line in logged)


def test_api_tokens_are_valid_for_the_reuse_window_plus_a_margin_only():
    service = TokenCachingRoomService.__new__(TokenCachingRoomService)
    service.api_key, service.api_secret, service._headers = "APIkey", "s" * 32, {}
    header = service._auth_header(VideoGrants(room_admin=True, room="r"))
    claims = jwt.decode(header["authorization"].removeprefix("Bearer "), "s" * 32, algorithms=["HS256"])
    lifetime = claims["exp"] - claims["nbf"]
    assert 600 < lifetime <= TOKEN_TTL.total_seconds() == 900


def test_secrets_match_exactly_among_a_hundred_thousand(livekit_emulator):
    livekit_emulator.add_room("room-1", metadata=room_metadata("tenant-77777"))
    livekit_emulator.add_participants("room-1", ["p1"])
    secrets = [{"id": f"tenant-{i}", "secret": f"secret-{i:06d}-abcdef"} for i in range(100_000)]
    app = host_app(
        livekit_emulator, LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=secrets
    )
    with serve(app) as served:
        assert served.participants("room-1", "secret-077777-abcdef").status_code == 200
        assert served.participants("room-1", "secret-077776-abcdef").status_code == 404
        assert served.participants("room-1", "secret-077777-abcde").status_code == 401
        assert served.participants("room-1", "secret-077777-abcdefg").status_code == 401


def test_the_breaker_is_per_app(room):
    # One app's outage memory never refuses another app's requests.
    sick = host_app(room, LIVEKIT_MODERATION_BREAKER_FAILURES=1)
    healthy = host_app(room)
    room.fail_next("ListParticipants", code="unavailable")
    with serve(sick) as a, serve(healthy) as b:
        assert a.participants("room-1").status_code == 503
        assert a.participants("room-1").status_code == 503
        assert b.participants("room-1").status_code == 200
    assert room.call_counts()["ListParticipants"] == 2
