"""Audit signals: each sent once, with the app as sender, only after LiveKit confirmed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from flask_livekit_moderation import errors, room_metadata, signals
from tests.helpers import TENANTS, TOKEN_A

SIGNALS = {
    "participant_removed": signals.participant_removed,
    "track_mute_changed": signals.track_mute_changed,
    "moderation_refused": signals.moderation_refused,
}


@dataclass
class Received:
    """What one receiver saw: the signal, its sender and data, and a probe's result."""

    name: str
    sender: Any
    data: dict[str, Any]
    probe: Any = None


@dataclass
class Recorder:
    """Receivers connected with ``connect_via(app)`` for the three signals."""

    received: list[Received] = field(default_factory=list)
    #: Called inside the receiver (while the request is still being answered).
    probe: Callable[[], Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    receivers: list[Any] = field(default_factory=list)

    def named(self, name: str) -> list[Received]:
        return [r for r in self.received if r.name == name]

    def names(self) -> list[str]:
        return [r.name for r in self.received]


@pytest.fixture
def record() -> Any:
    recorders: list[tuple[Recorder, Any]] = []

    def connect(app: Any) -> Recorder:
        recorder = Recorder()
        for name, signal in SIGNALS.items():

            def receiver(sender: Any, _name: str = name, **data: Any) -> None:
                probe = recorder.probe() if recorder.probe else None
                with recorder.lock:
                    recorder.received.append(Received(_name, sender, data, probe))

            recorder.receivers.append(receiver)  # blinker holds receivers weakly
            signal.connect_via(app)(receiver)
        recorders.append((recorder, app))
        return recorder

    yield connect
    for recorder, app in recorders:
        for signal, receiver in zip(SIGNALS.values(), recorder.receivers, strict=False):
            signal.disconnect(receiver, sender=app)


def _room(emulator, name: str = "room-a", owner: str = "tenant-a") -> str:
    emulator.add_room(name, metadata=room_metadata(owner))
    info = emulator.add_participant(name, "alice")
    return next(t.sid for t in info.tracks if t.type == 0)  # the microphone


def test_participant_removed_is_sent_once_after_livekit_removed(tenants, livekit_emulator, record):
    _room(livekit_emulator)
    recorder = record(tenants.app)
    recorder.probe = lambda: (
        livekit_emulator.participant("room-a", "alice"),
        [(c.method, c.status) for c in livekit_emulator.calls],
    )

    assert tenants.remove("room-a", "alice", TOKEN_A).status_code == 200

    (event,) = recorder.received
    assert event.name == "participant_removed" and event.sender is tenants.app
    assert event.data == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",  # no actor configured: the auth id acts
        "room_name": "room-a",
        "participant_identity": "alice",
        "outcome": "removed",
    }
    still_there, calls = event.probe
    assert still_there is None and ("RemoveParticipant", 200) in calls


def test_no_removal_signal_when_livekit_fails_to_remove(tenants, livekit_emulator, record):
    _room(livekit_emulator)
    recorder = record(tenants.app)
    livekit_emulator.fail_next("RemoveParticipant", code="internal")

    answer = tenants.remove("room-a", "alice", TOKEN_A)

    assert answer.status_code == 503
    assert recorder.received == []
    assert livekit_emulator.participant("room-a", "alice") is not None


def test_no_removal_signal_when_livekit_does_not_answer(make_served, livekit_emulator, record):
    served = make_served(LIVEKIT_MODERATION_TIMEOUT=0.3)
    _room(livekit_emulator)
    recorder = record(served.app)
    livekit_emulator.hang_next("RemoveParticipant", seconds=2)

    # Sent, never answered: LiveKit may have removed alice, but no signal says it did.
    assert served.remove("room-a", "alice").json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN"
    assert recorder.received == []


@pytest.mark.parametrize("muted", [True, False])
def test_track_mute_changed_is_sent_once_after_livekit_changed_the_track(
    tenants, livekit_emulator, record, muted
):
    livekit_emulator.enable_remote_unmute = True
    track_sid = _room(livekit_emulator)
    if not muted:
        tenants.mute("room-a", "alice", track_sid, True, TOKEN_A)
    recorder = record(tenants.app)

    def track_state() -> bool:
        participant = livekit_emulator.participant("room-a", "alice")
        return next(t.muted for t in participant.tracks if t.sid == track_sid)

    recorder.probe = track_state

    assert tenants.mute("room-a", "alice", track_sid, muted, TOKEN_A).status_code == 200

    (event,) = recorder.received
    assert event.name == "track_mute_changed" and event.sender is tenants.app
    assert event.data == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",  # no actor configured: the auth id acts
        "room_name": "room-a",
        "participant_identity": "alice",
        "track_sid": track_sid,
        "muted": muted,
        "outcome": "muted" if muted else "unmuted",
    }
    assert event.probe is muted


@pytest.mark.parametrize(
    "fault, muted, code",
    [
        (None, False, "REMOTE_UNMUTE_DISABLED"),
        (("MutePublishedTrack", "internal"), True, "LIVEKIT_UNAVAILABLE"),
        (("MutePublishedTrack", "permission_denied"), True, "MUTE_FAILED"),
        (("GetParticipant", "unavailable"), True, "LIVEKIT_UNAVAILABLE"),
    ],
    ids=["unmute-disabled", "mute-internal", "mute-refused", "lookup-down"],
)
def test_no_mute_signal_when_livekit_did_not_change_the_track(
    anon, livekit_emulator, record, fault, muted, code
):
    track_sid = _room(livekit_emulator)
    recorder = record(anon.app)
    if fault is not None:
        livekit_emulator.fail_next(fault[0], code=fault[1])

    answer = anon.mute("room-a", "alice", track_sid, muted)

    assert (answer.status_code, answer.json()["code"]) == (errors.BY_CODE[code].status, code)
    assert recorder.received == []


def test_track_not_found_and_invalid_requests_send_nothing(tenants, livekit_emulator, record):
    _room(livekit_emulator)
    recorder = record(tenants.app)

    assert tenants.mute("room-a", "alice", "TR_missing", True, TOKEN_A).json()["code"] == "TRACK_NOT_FOUND"
    assert tenants.request("DELETE", "/livekit/participant", TOKEN_A, json={}).status_code == 400
    assert tenants.participants("room-a", TOKEN_A).status_code == 200

    assert recorder.received == []


@pytest.mark.parametrize(
    "action",
    ["remove", "mute", "list"],
)
def test_moderation_refused_for_the_masked_404(tenants, livekit_emulator, record, action):
    track_sid = _room(livekit_emulator, "room-b", owner="tenant-b")
    recorder = record(tenants.app)

    if action == "remove":
        answer = tenants.remove("room-b", "alice", TOKEN_A)
    elif action == "mute":
        answer = tenants.mute("room-b", "alice", track_sid, True, TOKEN_A)
    else:
        answer = tenants.participants("room-b", TOKEN_A)

    assert answer.status_code == 404
    (event,) = recorder.received
    assert event.name == "moderation_refused" and event.sender is tenants.app
    assert event.data == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",  # no actor configured: the auth id acts
        "action": action,
        "room_name": "room-b",
        "participant_identity": None if action == "list" else "alice",
        "track_sid": track_sid if action == "mute" else None,
        "muted": True if action == "mute" else None,
        "status": 404,
        "outcome": "ROOM_NOT_FOUND" if action == "list" else "PARTICIPANT_NOT_FOUND",
    }
    assert livekit_emulator.participant("room-b", "alice") is not None
    assert not any(t.muted for t in livekit_emulator.participant("room-b", "alice").tracks)


def test_moderation_refused_for_an_unknown_participant(anon, livekit_emulator, record):
    _room(livekit_emulator)
    recorder = record(anon.app)

    assert anon.remove("room-a", "nobody").status_code == 404

    (event,) = recorder.received
    assert event.name == "moderation_refused"
    assert event.data["auth_id"] is None and event.data["participant_identity"] == "nobody"
    assert event.data["status"] == 404 and event.data["outcome"] == "PARTICIPANT_NOT_FOUND"


@pytest.mark.parametrize(
    "token, outcome",
    [(None, "MISSING_TOKEN"), ("not-a-known-secret", "UNAUTHORIZED")],
)
@pytest.mark.parametrize(
    "method, path, action",
    [
        ("DELETE", "/livekit/participant", "remove"),
        ("POST", "/livekit/participant/mute", "mute"),
        ("GET", "/livekit/participants?room_name=room-a", "list"),
    ],
)
def test_moderation_refused_for_a_401(
    tenants, livekit_emulator, record, token, outcome, method, path, action
):
    _room(livekit_emulator)
    recorder = record(tenants.app)
    body = {"room_name": "room-a", "participant_identity": "alice", "track_sid": "TR_x", "muted": True}

    answer = tenants.request(method, path, token, json=body if method != "GET" else None)

    assert answer.status_code == 401
    (event,) = recorder.received
    assert event.name == "moderation_refused" and event.sender is tenants.app
    # 401s are answered before the body is read: no target is known.
    assert event.data == {
        "auth_id": None,
        "actor": None,
        "action": action,
        "room_name": None,
        "participant_identity": None,
        "track_sid": None,
        "muted": None,
        "status": 401,
        "outcome": outcome,
    }
    assert livekit_emulator.calls == []


def test_the_openapi_document_sends_nothing(tenants, record):
    recorder = record(tenants.app)

    assert tenants.request("GET", "/livekit/openapi.json").status_code == 200

    assert recorder.received == []


def test_receivers_of_another_app_hear_nothing(make_served, livekit_emulator, record):
    _room(livekit_emulator)
    acting = make_served(LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS)
    other = make_served()
    acting_recorder, other_recorder = record(acting.app), record(other.app)

    assert acting.participants("room-a").status_code == 401
    assert acting.remove("room-a", "alice", TOKEN_A).status_code == 200

    assert acting_recorder.names() == ["moderation_refused", "participant_removed"]
    assert other_recorder.received == []


def test_a_raising_receiver_is_logged_and_does_not_undo_the_answer(
    make_served, livekit_emulator, record, caplog
):
    served = make_served()
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    def broken(sender: Any, **data: Any) -> None:
        raise RuntimeError("audit store is down")

    signals.participant_removed.connect(broken, sender=served.app, weak=False)
    try:
        recorder = record(served.app)
        answer = served.remove("room-1", "alice")
    finally:
        signals.participant_removed.disconnect(broken, sender=served.app)

    assert answer.status_code == 200 and answer.json()["status"] == "removed"
    assert livekit_emulator.participant("room-1", "alice") is None
    assert recorder.names() == ["participant_removed"]
    assert "receiver of livekit-moderation.participant-removed raised" in caplog.text
