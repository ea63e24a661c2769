"""LiveKit failing in every way we know: each route answers its documented error in time, never
performs half an action, and the next request after the fault clears succeeds.

The scenes here turn the circuit breaker off (each fault is one request's story);
``tests/test_outage.py`` covers the breaker and the bulkhead.

Faults come from the stand-in's fault injection (errors, garbage, dropped connections, hangs,
going down, per-method latency); two more are real sockets defined here: a proxy that cuts
LiveKit's answer in the middle, and a listener that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from flask_livekit_moderation import errors, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import TENANTS, TOKEN_A, ServedApp

#: LIVEKIT_MODERATION_TIMEOUT for these tests, seconds.
TIMEOUT = 0.5
#: How much later than the timeout an answer may come (2 cores, other jobs running).
MARGIN = 1.5
#: Longest a failing request may take: only one call fails, and it is bounded by the timeout.
DEADLINE = TIMEOUT + MARGIN

MUTATING = {"remove": "RemoveParticipant", "mute": "MutePublishedTrack", "list": None}

#: The LiveKit calls each route makes, per caller kind (issue 3 / issue 4 call tables).
CALLS = {
    ("tenant", "remove"): ["ListRooms", "RemoveParticipant"],
    ("tenant", "mute"): ["ListRooms", "GetParticipant", "MutePublishedTrack"],
    ("tenant", "list"): ["ListRooms", "ListParticipants"],
    ("anonymous", "remove"): ["RemoveParticipant"],
    ("anonymous", "mute"): ["GetParticipant", "MutePublishedTrack"],
    ("anonymous", "list"): ["ListParticipants"],
}

#: The code of "any other LiveKit refusal", per route.
REFUSAL_CODE = {"remove": "REMOVAL_FAILED", "mute": "MUTE_FAILED", "list": "LIST_FAILED"}

#: A wrong LiveKit API secret, long enough for HS256 so PyJWT signs without a warning.
WRONG_SECRET = "not-the-livekit-secret-0123456789abcdef"


# -- sockets that misbehave below HTTP --------------------------------------------------------


class CuttingProxy:
    """A TCP proxy in front of the stand-in that can cut chosen answers in the middle.

    ``cut_next(method)``: the next answer to that RoomService method is forwarded only up
    to half its body (or all but its last byte when the body is empty), then both
    connections are closed. Everything else is relayed untouched.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next(self, method: str) -> None:
        with self._lock:
            self._pending[method] = self._pending.get(method, 0) + 1

    def _take(self, request_head: bytes) -> bool:
        with self._lock:
            for method, count in self._pending.items():
                if count and f"/livekit.RoomService/{method} ".encode() in request_head:
                    self._pending[method] = count - 1
                    return True
        return False

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in list(self._sockets):
            _hang_up(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            cut = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, cut), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        try:
            while chunk := client.recv(65536):
                if chunk.startswith(b"POST ") and self._take(chunk.split(b"\r\n", 1)[0] + b" "):
                    cut.set()
                upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            _hang_up(upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        buffer = b""
        try:
            while chunk := upstream.recv(65536):
                if not cut.is_set():
                    client.sendall(chunk)
                    continue
                buffer += chunk
                head, sep, body = buffer.partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                if len(body) < length:
                    continue
                keep = len(head) + len(sep) + length // 2 if length else len(head) + len(sep) - 1
                client.sendall(buffer[:keep])
                break
        except OSError:
            pass
        finally:
            _hang_up(client)
            _hang_up(upstream)


def _hang_up(sock: socket.socket) -> None:
    # shutdown() sends the FIN at once; close() alone would wait for the other relay
    # thread's blocking recv() on the same socket to return.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxy(livekit_emulator: LiveKitEmulator) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(livekit_emulator.port)
    try:
        yield cutting
    finally:
        cutting.close()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A URL whose server accepts TCP connections (the kernel completes the handshake) and
    never reads or answers: LiveKit wedged below HTTP."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


# -- the rooms and the two callers ------------------------------------------------------------


@dataclass
class Scene:
    """The app for one kind of caller, the stand-in it talks to, and alice's audio track."""

    served: ServedApp
    emulator: LiveKitEmulator
    token: str | None
    track_sid: str = ""

    def seed(self) -> None:
        self.emulator.clear()
        self.emulator.clear_faults()
        self.emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
        self.emulator.add_participants("room-a", ["alice", "bob"])
        alice = self.emulator.participant("room-a", "alice")
        assert alice is not None
        self.track_sid = alice.tracks[0].sid
        self.emulator.clear_calls()

    def act(self, route: str, identity: str = "alice") -> requests.Response:
        if route == "remove":
            return self.served.remove("room-a", identity, self.token)
        if route == "mute":
            return self.served.mute("room-a", identity, self.track_sid, True, self.token)
        return self.served.participants("room-a", self.token)

    def timed(self, route: str) -> tuple[requests.Response, float]:
        started = time.monotonic()
        answer = self.act(route)
        return answer, time.monotonic() - started

    def unchanged(self, what: str) -> None:
        """No half action: alice is still there and nothing is muted."""
        alice = self.emulator.participant("room-a", "alice")
        assert alice is not None, f"{what}: alice was removed"
        assert not any(track.muted for track in alice.tracks), f"{what}: a track was muted"

    def succeeds(self, route: str, what: str) -> None:
        """The request after a fault works, and did what it says."""
        answer = self.act(route)
        assert answer.status_code == 200, f"{what}: next request {answer.status_code} {answer.text}"
        if route == "remove":
            assert self.emulator.participant("room-a", "alice") is None, what
        elif route == "mute":
            alice = self.emulator.participant("room-a", "alice")
            assert alice is not None and alice.tracks[0].muted, what
        else:
            assert sorted(p["identity"] for p in answer.json()["participants"]) == ["alice", "bob"], what


def _scene(
    make_served: Callable[..., ServedApp], emulator: LiveKitEmulator, caller: str, **config: object
) -> Scene:
    config = {"LIVEKIT_MODERATION_TIMEOUT": TIMEOUT, "LIVEKIT_MODERATION_BREAKER_FAILURES": 0, **config}
    if caller == "tenant":
        served = make_served(
            emulator, LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS, **config
        )
        return Scene(served, emulator, TOKEN_A)
    return Scene(make_served(emulator, **config), emulator, None)


def _assert_error(answer: requests.Response, code: str, what: str) -> None:
    status = errors.BY_CODE[code].status
    assert answer.status_code == status, f"{what}: {answer.status_code} {answer.text}"
    assert answer.headers["Content-Type"] == "application/json", what
    if status == 503:
        assert answer.headers["Retry-After"] == "1", what  # the breaker is off: retry soon
    body = answer.json()
    assert body["code"] == code, f"{what}: {body}"
    assert isinstance(body["error"], str) and body["error"], what
    assert "alice" not in answer.text and "bob" not in answer.text, f"{what}: participants leaked"


# -- one fault on one call, for every call of every route -------------------------------------

#: Faults after which a write was sent with no answer: on the mutating call itself they answer
#: LIVEKIT_OUTCOME_UNKNOWN (LiveKit may have acted), on any other call LIVEKIT_UNAVAILABLE.
NO_ANSWER = frozenset({"connection-dropped", "hang-past-timeout"})

#: fault name -> (how to inject it on a method, the code a route answers).
FAULTS: dict[str, tuple[Callable[[LiveKitEmulator, str], None], str | None]] = {
    "500-internal": (lambda e, m: e.fail_next(m, code="internal"), "LIVEKIT_UNAVAILABLE"),
    "503-unavailable": (lambda e, m: e.fail_next(m, code="unavailable"), "LIVEKIT_UNAVAILABLE"),
    "502-bad-gateway": (lambda e, m: e.fail_next(m, code="unavailable", status=502), "LIVEKIT_UNAVAILABLE"),
    "garbage-200": (lambda e, m: e.garbage_next(m), "LIVEKIT_UNAVAILABLE"),
    # Dropped twice: once on the pooled connection, once more on the fresh one it retries on.
    "connection-dropped": (lambda e, m: e.drop_next(m, 2), "LIVEKIT_UNAVAILABLE"),
    "hang-past-timeout": (lambda e, m: e.hang_next(m, seconds=None), "LIVEKIT_UNAVAILABLE"),
    "401-unauthenticated": (lambda e, m: e.fail_next(m, code="unauthenticated"), "LIVEKIT_AUTH_FAILED"),
    "403-permission-denied": (lambda e, m: e.fail_next(m, code="permission_denied"), None),
    "429-resource-exhausted": (lambda e, m: e.fail_next(m, code="resource_exhausted"), None),
}


@pytest.mark.parametrize("caller", ["tenant", "anonymous"])
def test_a_fault_on_any_call_is_the_documented_error_and_the_next_request_works(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator, caller: str
) -> None:
    scene = _scene(make_served, livekit_emulator, caller)
    for fault, (inject, code) in FAULTS.items():
        for route in ("remove", "mute", "list"):
            for method in CALLS[(caller, route)]:
                what = f"{caller} {route}, {fault} on {method}"
                scene.seed()
                inject(livekit_emulator, method)

                answer, elapsed = scene.timed(route)

                expected = code or REFUSAL_CODE[route]
                if fault in NO_ANSWER and method == MUTATING[route]:
                    expected = "LIVEKIT_OUTCOME_UNKNOWN"
                _assert_error(answer, expected, what)
                assert elapsed < DEADLINE, f"{what}: answered after {elapsed:.2f}s"
                if fault == "hang-past-timeout":
                    assert elapsed >= TIMEOUT, f"{what}: answered before the timeout ({elapsed:.2f}s)"
                assert livekit_emulator.faults.pending() == {}, f"{what}: the fault was never met"
                made = livekit_emulator.call_names()
                # A hung call is recorded only once it ends (when the stand-in stops).
                assert fault == "hang-past-timeout" or method in made, what
                mutating = MUTATING[route]
                if mutating is not None and method != mutating:
                    assert mutating not in made, f"{what}: the action ran after a failed pre-check"
                scene.unchanged(what)

                scene.succeeds(route, what)


# -- LiveKit unreachable ----------------------------------------------------------------------

CALLERS = ("tenant", "anonymous")
ROUTES = ("remove", "mute", "list")


def test_livekit_down_then_back_up(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    for caller in CALLERS:
        scene = _scene(make_served, livekit_emulator, caller)
        for route in ROUTES:
            what = f"{caller} {route} while down"
            scene.seed()
            scene.succeeds("list", f"{what}: warm-up")  # a pooled keep-alive connection now exists
            livekit_emulator.go_down()
            try:
                first = scene.timed(route)  # on the pooled connection the server just closed
                second = scene.timed(route)  # a new connection: refused
            finally:
                livekit_emulator.come_up()
            for answer, elapsed in (first, second):
                _assert_error(answer, "LIVEKIT_UNAVAILABLE", what)
                assert elapsed < DEADLINE, what
            scene.unchanged(what)
            scene.succeeds(route, f"{caller} {route} after coming back up")


def test_nothing_listening_at_the_livekit_url(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed_port = placeholder.getsockname()[1]
    for caller in CALLERS:
        scene = _scene(make_served, livekit_emulator, caller, LIVEKIT_URL=f"http://127.0.0.1:{closed_port}")
        scene.seed()
        for route in ROUTES:
            answer, elapsed = scene.timed(route)
            _assert_error(answer, "LIVEKIT_UNAVAILABLE", f"{caller} {route}")
            assert elapsed < DEADLINE
        assert livekit_emulator.calls == []


def test_livekit_accepting_connections_but_never_answering(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator, silent_listener: str
) -> None:
    """Every route, both callers, all at once: each answers in time, none waits for another."""
    scenes = {
        caller: _scene(make_served, livekit_emulator, caller, LIVEKIT_URL=silent_listener)
        for caller in CALLERS
    }
    scenes["tenant"].seed()
    scenes["anonymous"].track_sid = scenes["tenant"].track_sid
    results: dict[str, tuple[requests.Response, float]] = {}

    def run(caller: str, route: str) -> None:
        results[f"{caller} {route}"] = scenes[caller].timed(route)

    threads = [threading.Thread(target=run, args=(c, r)) for c in CALLERS for r in ROUTES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == len(CALLERS) * len(ROUTES)
    for what, (answer, elapsed) in results.items():
        # Only an anonymous removal sends its write first (no room check): it may have been done.
        unknown = what == "anonymous remove"
        _assert_error(answer, "LIVEKIT_OUTCOME_UNKNOWN" if unknown else "LIVEKIT_UNAVAILABLE", what)
        assert TIMEOUT <= elapsed < DEADLINE, f"{what}: {elapsed:.2f}s"
    scenes["tenant"].unchanged("silent LiveKit")


# -- an answer cut in the middle --------------------------------------------------------------


def test_answer_cut_mid_way_is_unavailable_or_outcome_unknown_and_the_pool_recovers(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator, proxy: CuttingProxy
) -> None:
    for caller in CALLERS:
        scene = _scene(make_served, livekit_emulator, caller, LIVEKIT_URL=proxy.url)
        for route in ROUTES:
            for method in CALLS[(caller, route)]:
                what = f"{caller} {route}, {method} answer cut"
                scene.seed()
                proxy.cut_next(method)

                answer, elapsed = scene.timed(route)

                # A cut answer to the action: it was sent, and LiveKit did act.
                unknown = method == MUTATING[route]
                _assert_error(answer, "LIVEKIT_OUTCOME_UNKNOWN" if unknown else "LIVEKIT_UNAVAILABLE", what)
                assert elapsed < DEADLINE, what
                assert method in livekit_emulator.call_names(), what
                mutating = MUTATING[route]
                if mutating is not None and method != mutating:
                    assert mutating not in livekit_emulator.call_names(), what
                    scene.unchanged(what)
                # After a cut answer to the action itself LiveKit did act; the caller never heard.
                scene.seed()
                scene.succeeds(route, what)


# -- LiveKit rejecting our key ----------------------------------------------------------------


def test_livekit_rejecting_the_configured_credentials(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    wrong = {
        "secret": ({"LIVEKIT_API_SECRET": WRONG_SECRET}, "invalid authorization token"),
        "key": ({"LIVEKIT_API_KEY": "APInot-the-key"}, "invalid API key"),
    }
    for caller in CALLERS:
        for name, (config, livekit_says) in wrong.items():
            scene = _scene(make_served, livekit_emulator, caller, **config)
            scene.seed()
            for route in ROUTES:
                what = f"{caller} {route} with a wrong {name}"
                livekit_emulator.clear_calls()
                answer, elapsed = scene.timed(route)
                _assert_error(answer, "LIVEKIT_AUTH_FAILED", what)
                assert elapsed < DEADLINE, what
                assert WRONG_SECRET not in answer.text
                calls = livekit_emulator.calls
                assert calls and all(call.status == 401 and call.grants is None for call in calls), what
                # LiveKit's own 401 is plain text, as a real server answers an unverifiable token.
                assert all(call.message.startswith(livekit_says) for call in calls), [
                    c.message for c in calls
                ]
            scene.unchanged(f"{caller} with a wrong {name}")


# -- LiveKit slow for one method only ---------------------------------------------------------


def test_one_slow_method_within_the_timeout(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    """Slow but in time: the route succeeds, only the slow call took long, and the action
    starts only once every pre-check has answered."""
    latency = 0.3
    scene = _scene(make_served, livekit_emulator, "tenant", LIVEKIT_MODERATION_TIMEOUT=5)
    for route in ROUTES:
        for slow in CALLS[("tenant", route)]:
            what = f"{slow} slow, {route}"
            scene.seed()
            livekit_emulator.set_latency(latency, method=slow)

            answer, elapsed = scene.timed(route)

            assert answer.status_code == 200, f"{what}: {answer.text}"
            assert elapsed >= latency, what
            calls = {call.method: call for call in livekit_emulator.calls}
            assert sorted(calls) == sorted(CALLS[("tenant", route)]), what
            assert calls[slow].duration >= latency, what
            for method, call in calls.items():
                if method != slow:
                    assert call.duration < latency, f"{what}: {method} took {call.duration:.2f}s"
            action = MUTATING[route]
            if action is not None:
                prechecks = [call for method, call in calls.items() if method != action]
                assert calls[action].started >= max(call.finished for call in prechecks), what


def test_listrooms_slow_past_the_timeout_fails_tenants_but_not_anonymous_callers(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    slow = TIMEOUT + MARGIN  # ListRooms answers only after the tenant's request gave up
    for caller in CALLERS:
        scene = _scene(make_served, livekit_emulator, caller)
        for route in ROUTES:
            what = f"{caller} {route}, ListRooms slow"
            scene.seed()
            livekit_emulator.set_latency(slow, method="ListRooms")

            answer, elapsed = scene.timed(route)

            if caller == "tenant":
                _assert_error(answer, "LIVEKIT_UNAVAILABLE", what)
                assert TIMEOUT <= elapsed < DEADLINE, f"{what}: {elapsed:.2f}s"
                action = MUTATING[route]
                assert action is None or action not in livekit_emulator.call_names(), what
                scene.unchanged(what)
            else:
                # Anonymous callers make no ListRooms call, so its slowness cannot reach them.
                assert answer.status_code == 200, f"{what}: {answer.text}"
                assert "ListRooms" not in livekit_emulator.call_names(), what
                assert elapsed < slow, what


def test_the_action_slow_past_the_timeout_after_fast_prechecks(
    make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    """The pre-checks answer at once, the action outlives the timeout: 503
    LIVEKIT_OUTCOME_UNKNOWN in time.

    LiveKit still performs the late action: a timeout does not mean nothing happened, and
    retrying a removal without an Idempotency-Key then answers the masked 404 (with the same
    key it answers 200: tests/test_idempotency.py).
    """
    late = TIMEOUT + 0.3
    scene = _scene(make_served, livekit_emulator, "tenant")
    for slow, route in (("RemoveParticipant", "remove"), ("MutePublishedTrack", "mute")):
        what = f"{slow} slow"
        scene.seed()
        livekit_emulator.set_latency(late, method=slow)

        answer, elapsed = scene.timed(route)

        _assert_error(answer, "LIVEKIT_OUTCOME_UNKNOWN", what)
        assert TIMEOUT <= elapsed < DEADLINE, f"{what}: {elapsed:.2f}s"
        prechecks = [call for call in livekit_emulator.calls if call.method != slow]
        assert prechecks and all(call.duration < TIMEOUT for call in prechecks), what

        give_up = time.monotonic() + late + 5
        while slow not in [c.method for c in livekit_emulator.calls if c.status == 200]:
            assert time.monotonic() < give_up, f"{what}: the late action never completed at LiveKit"
            time.sleep(0.02)
        livekit_emulator.clear_faults()
        retry = scene.act(route)
        if route == "remove":
            assert retry.status_code == 404 and retry.json()["code"] == "PARTICIPANT_NOT_FOUND", what
        else:
            assert retry.status_code == 200 and retry.json()["muted"] is True, what
