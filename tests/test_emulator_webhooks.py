"""Webhooks and joins of the stand-in: LiveKit-format, signed events that
livekit-api's WebhookReceiver accepts, delivered asynchronously with retries."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol import room as rp
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation.testing import LiveKitEmulator
from tests.test_emulator import control, remove_req, room_call


@dataclass
class Receiver:
    """A real HTTP endpoint that records each POST and answers ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    hits: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.hits.append((dict(self.headers), body))
            time.sleep(rec.delay)
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/livekit/webhook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def received(emu: LiveKitEmulator, rec: Receiver) -> list[WebhookEvent]:
    """Every event the receiver got, verified exactly as an app verifies them."""
    assert emu.wait_webhooks(5)
    verifier = WebhookReceiver(TokenVerifier(emu.api_key, emu.api_secret))
    events = []
    for headers, body in rec.hits:
        assert headers["Content-Type"] == "application/webhook+json"
        assert not headers["Authorization"].startswith("Bearer ")
        events.append(verifier.receive(body.decode(), headers["Authorization"]))
    return events


def names(events: list[WebhookEvent]) -> list[tuple[str, str]]:
    return [(e.event, e.participant.identity) for e in events]


def test_events_are_signed_as_livekit_signs_them(receiver: Receiver) -> None:
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emu:
        emu.add_room("r", metadata='{"auth_id": "t"}')
        emu.join("r", "alice", tracks=[("audio", "microphone", "mic", False, "TR_mic")])
        events = received(emu, receiver)
    assert names(events) == [
        ("room_started", ""),
        ("participant_joined", "alice"),
        ("track_published", "alice"),
    ]
    started, joined, published = events
    assert (
        started.room.metadata == '{"auth_id": "t"}'
        and started.id.startswith("EV_")
        and started.created_at > 0
    )
    # The room's counts are its cached proto, first refreshed 5 s after its creation
    # (pkg/rtc/room.go roomUpdateInterval): alice is not counted yet.
    assert joined.room.metadata == '{"auth_id": "t"}' and joined.room.num_participants == 0
    assert joined.participant.sid.startswith("PA_") and joined.participant.state == joined.participant.ACTIVE
    assert (published.track.sid, published.track.name) == ("TR_mic", "mic")
    # Track events carry only the room's sid and name and the participant's sid and identity.
    assert published.room.metadata == "" and published.room.sid == started.room.sid
    assert published.participant.sid == joined.participant.sid and published.participant.name == ""
    headers, body = receiver.hits[1]
    doc = json.loads(body)
    assert set(doc) == {"event", "room", "participant", "id", "createdAt"}  # lowerCamelCase protojson
    claims = jwt.decode(
        headers["Authorization"], emu.api_secret, algorithms=["HS256"], options={"verify_aud": False}
    )
    assert claims["iss"] == emu.api_key and 295 <= claims["exp"] - claims["nbf"] <= 305
    assert headers["User-Agent"] == "LiveKit"


def test_a_tampered_body_is_rejected_by_the_receiver(receiver: Receiver) -> None:
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emu:
        emu.add_room("r")
        assert emu.wait_webhooks(5)
    headers, body = receiver.hits[0]
    verifier = WebhookReceiver(TokenVerifier(emu.api_key, emu.api_secret))
    with pytest.raises(Exception, match="hash mismatch"):
        verifier.receive(body.decode().replace("r", "x"), headers["Authorization"])


def test_leave_remove_delete_and_timeouts_send_their_events(receiver: Receiver) -> None:
    with LiveKitEmulator(webhook_urls=[receiver.url], departure_timeout=0.1) as emu:
        emu.add_room("r")
        emu.add_participants("r", ["alice", "bob", "carol"], tracks=[])
        emu.leave("r", "alice")
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "bob")))
        room_call(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="r")))
        emu.add_room("s")
        emu.join("s", "dave", tracks=[])
        emu.leave("s", "dave")
        deadline = time.monotonic() + 3
        while emu.room("s") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        events = received(emu, receiver)
    # One queue per room (livekit/protocol webhook/notifier.go): in order within a room only.
    in_r = [e for e in events if e.room.name == "r"]
    assert names(in_r) == [
        ("room_started", ""),
        ("participant_joined", "alice"),
        ("participant_joined", "bob"),
        ("participant_joined", "carol"),
        ("participant_left", "alice"),
        ("participant_left", "bob"),
        ("participant_left", "carol"),
        ("room_finished", ""),
    ]
    assert names([e for e in events if e.room.name == "s"]) == [
        ("room_started", ""),
        ("participant_joined", "dave"),
        ("participant_left", "dave"),
        ("room_finished", ""),
    ]
    left = in_r[4]
    # Counts are the room's cached proto, not refreshed within 5 s of its creation.
    assert left.participant.state == left.participant.DISCONNECTED and left.room.num_participants == 0


def test_the_banned_participant_rejoins(receiver: Receiver) -> None:
    # Self-hosted LiveKit: the removed participant's token still joins (LiveKit Cloud's
    # revocation is tested in test_emulator_issue26.py).
    with LiveKitEmulator(webhook_urls=[receiver.url], cloud=False) as emu:
        emu.add_room("r")
        emu.join("r", "troll", tracks=[])
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "troll")))
        emu.join("r", "troll", tracks=[])
        events = received(emu, receiver)
    assert names(events)[1:] == [
        ("participant_joined", "troll"),
        ("participant_left", "troll"),
        ("participant_joined", "troll"),
    ]
    assert events[1].participant.sid != events[3].participant.sid  # a new session


def test_a_webhook_delay_leaves_the_joined_participant_listed_until_the_event_is_sent(
    receiver: Receiver,
) -> None:
    with LiveKitEmulator(webhook_urls=[receiver.url], webhook_delay=0.3) as emu:
        emu.add_room("r")
        started = time.monotonic()
        emu.join("r", "troll", tracks=[])
        assert emu.participant("r", "troll") is not None and receiver.hits == []
        assert not emu.wait_webhooks(0.1)  # still held back
        assert emu.wait_webhooks(5)
        assert time.monotonic() - started >= 0.3
        emu.webhook_delay = 0
        emu.leave("r", "troll")
        assert emu.wait_webhooks(0.2)
        events = received(emu, receiver)
    assert names(events) == [
        ("room_started", ""),
        ("participant_joined", "troll"),
        ("participant_left", "troll"),
    ]
    with pytest.raises(ValueError):
        emu.webhook_delay = -1


def test_delivery_retries_and_gives_up(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    with LiveKitEmulator(webhook_urls=[receiver.url], webhook_time_scale=0.01) as emu:
        emu.add_room("r")
        assert emu.wait_webhooks(5)
        (ok,) = emu.webhook_deliveries()
        assert (ok.event, ok.status, ok.attempts, ok.delivered) == ("room_started", 200, 3, True)
        assert len(receiver.hits) == 3  # the same event, more than once
        receiver.statuses = [403]
        emu.add_room("s")
        assert emu.wait_webhooks(5)
        refused = emu.webhook_deliveries()[-1]
        # go-retryablehttp does not retry a 4xx other than 429.
        assert (refused.status, refused.attempts, refused.delivered) == (403, 1, False)
        emu.webhook_urls = ["http://127.0.0.1:9/nobody"]
        emu.add_room("t")
        assert emu.wait_webhooks(5)
        dead = emu.webhook_deliveries()[-1]
        assert (dead.status, dead.attempts, dead.delivered) == (None, 5, False) and dead.error


@pytest.mark.timing
def test_delivery_never_blocks_a_call(receiver: Receiver) -> None:
    # Longer than the 0.5 s the join and the removal may take: a delivery made inside either
    # would fail the test on its own (the events are delivered one after another).
    receiver.delay = 0.6
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emu:
        emu.add_room("r")
        started = time.monotonic()
        emu.join("r", "alice")
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
        # Events are on their way to a receiver that takes 0.6 s for each.
        assert time.monotonic() - started < 0.5
        assert not emu.wait_webhooks(0.1)  # still being delivered
        assert emu.wait_webhooks(10)
    assert names(received(emu, receiver))[-1] == ("participant_left", "alice")


def test_no_urls_no_deliveries() -> None:
    with LiveKitEmulator() as emu:
        emu.add_room("r")
        emu.join("r", "alice")
        assert emu.wait_webhooks(0.1) and emu.webhook_deliveries() == []
    with pytest.raises(ValueError):
        LiveKitEmulator(webhook_urls=["ftp://x/"])


def test_webhook_control_routes(receiver: Receiver) -> None:
    with LiveKitEmulator() as emu:
        url, secret = emu.url, emu.api_secret
        status, now = control(url, secret, "POST", "settings", {"webhook_urls": [receiver.url]})
        assert status == 200 and now["webhook_urls"] == [receiver.url]
        control(url, secret, "POST", "rooms", {"name": "r"})
        control(url, secret, "POST", "participants", {"room": "r", "identities": ["alice"], "tracks": []})
        control(url, secret, "POST", "leave", {"room": "r", "identity": "alice"})
        status, answer = control(url, secret, "GET", "webhooks?wait=5")
        assert status == 200
        assert [(d["event"], d["status"], d["attempts"]) for d in answer["deliveries"]] == [
            ("room_started", 200, 1),
            ("participant_joined", 200, 1),
            ("participant_left", 200, 1),
        ]
        status, answer = control(url, secret, "POST", "settings", {"webhook_urls": ["nope"]})
        assert status == 400 and answer["error"].startswith("webhook_urls:")
    assert len(received(emu, receiver)) == 3


def test_cli_webhook_flag(receiver: Receiver) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask_livekit_moderation.testing",
            "--webhook",
            receiver.url,
            "--webhook",
            receiver.url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert control(info["url"], info["api_secret"], "POST", "rooms", {"name": "r"})[0] == 200
        answer = control(info["url"], info["api_secret"], "GET", "webhooks?wait=5")[1]
        assert [(d["event"], d["delivered"]) for d in answer["deliveries"]] == [("room_started", True)] * 2
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    verifier = WebhookReceiver(TokenVerifier(info["api_key"], info["api_secret"]))
    assert [verifier.receive(b.decode(), h["Authorization"]).event for h, b in receiver.hits] == [
        "room_started"
    ] * 2
