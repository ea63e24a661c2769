"""POST /livekit/participant/mute: pre-checks, concurrency, LiveKit's awkward answers."""

from __future__ import annotations

import time

import pytest

from flask_livekit_moderation import errors, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import MASKED_404, TOKEN_A


def _mic(participant):
    return next(t.sid for t in participant.tracks if t.type == 0)


def test_anonymous_mute_gets_the_participant_then_mutes(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    alice = livekit_emulator.add_participant("room-1", "alice")
    mic = _mic(alice)

    answer = anon.mute("room-1", "alice", mic, True)

    assert answer.status_code == 200
    assert answer.json() == {
        "room_name": "room-1",
        "participant_identity": "alice",
        "track_sid": mic,
        "muted": True,
    }
    assert livekit_emulator.call_names() == ["GetParticipant", "MutePublishedTrack"]
    mute = livekit_emulator.calls[1]
    assert mute.request.track_sid == mic and mute.request.muted is True
    assert mute.grants.room_admin is True and mute.grants.room == "room-1"
    track = next(t for t in livekit_emulator.participant("room-1", "alice").tracks if t.sid == mic)
    assert track.muted is True


def test_tenant_prechecks_run_concurrently(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    mic = _mic(livekit_emulator.add_participant("room-a", "alice"))
    livekit_emulator.set_latency(0.3)

    answer = tenants.mute("room-a", "alice", mic, True, TOKEN_A)

    assert answer.status_code == 200 and answer.json()["muted"] is True
    # Two round trips, not three, read off the stand-in's clock rather than the test's: the
    # two pre-checks overlap, and the mute starts once both are answered.
    first, second, mute = livekit_emulator.calls
    assert {first.method, second.method} == {"ListRooms", "GetParticipant"}
    assert first.started < second.finished and second.started < first.finished, "pre-checks did not overlap"
    assert mute.method == "MutePublishedTrack" and mute.started >= max(first.finished, second.finished)


def test_unknown_participant_is_404_without_livekits_rpc_wait(make_served):
    with LiveKitEmulator(mute_unknown_delay=5.0) as emulator:
        served = make_served(emulator=emulator)
        emulator.add_room("room-1")

        started = time.monotonic()
        answer = served.mute("room-1", "ghost", "TR_nothing", True)
        elapsed = time.monotonic() - started

        assert answer.status_code == 404 and answer.json() == MASKED_404
        assert emulator.call_names() == ["GetParticipant"]
        assert elapsed < 2.0, f"took {elapsed:.2f}s: the 404 must not wait for LiveKit's RPC timeout"


def test_unknown_track_is_404_and_nothing_is_muted(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    answer = anon.mute("room-1", "alice", "TR_unknown", True)

    assert answer.status_code == 404
    assert answer.json() == {"error": "Track not found.", "code": "TRACK_NOT_FOUND"}
    assert livekit_emulator.call_names() == ["GetParticipant"]


def test_foreign_room_is_masked_and_nothing_is_muted(tenants, livekit_emulator):
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    mic = _mic(livekit_emulator.add_participant("room-b", "bob"))

    answer = tenants.mute("room-b", "bob", mic, True, TOKEN_A)

    assert answer.status_code == 404 and answer.json() == MASKED_404
    assert "MutePublishedTrack" not in livekit_emulator.call_names()
    assert all(not t.muted for t in livekit_emulator.participant("room-b", "bob").tracks)


def test_unmute_while_remote_unmute_is_off_says_how_to_enable_it(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    mic = _mic(livekit_emulator.add_participant("room-1", "alice"))
    assert anon.mute("room-1", "alice", mic, True).status_code == 200

    answer = anon.mute("room-1", "alice", mic, False)

    assert answer.status_code == 500
    assert answer.json()["code"] == "REMOTE_UNMUTE_DISABLED"
    assert "enable_remote_unmute" in answer.json()["error"]
    assert livekit_emulator.calls[-1].status == 412


def test_unmute_reports_livekits_state_when_enabled(make_served):
    with LiveKitEmulator(enable_remote_unmute=True) as emulator:
        served = make_served(emulator=emulator)
        emulator.add_room("room-1")
        mic = _mic(emulator.add_participant("room-1", "alice"))

        assert served.mute("room-1", "alice", mic, True).json()["muted"] is True
        answer = served.mute("room-1", "alice", mic, False)

        assert answer.status_code == 200 and answer.json()["muted"] is False
        alice = emulator.participant("room-1", "alice")
        assert alice is not None
        track = next(t for t in alice.tracks if t.sid == mic)
        assert track.muted is False


@pytest.mark.parametrize("muted", ["true", 1, 0, None, "false", [], {}])
def test_muted_must_be_a_json_boolean(anon, livekit_emulator, muted):
    body = {"room_name": "room-1", "participant_identity": "alice", "track_sid": "TR_x", "muted": muted}

    answer = anon.request("POST", "/livekit/participant/mute", json=body)

    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST"
    assert list(answer.json()["details"]) == ["muted"]
    assert livekit_emulator.calls == []


@pytest.mark.parametrize("missing", ["room_name", "participant_identity", "track_sid", "muted"])
def test_every_mute_field_is_required(anon, livekit_emulator, missing):
    body = {"room_name": "room-1", "participant_identity": "alice", "track_sid": "TR_x", "muted": True}
    del body[missing]

    answer = anon.request("POST", "/livekit/participant/mute", json=body)

    assert answer.status_code == 400 and list(answer.json()["details"]) == [missing]


@pytest.mark.parametrize(
    "code, expected",
    [
        ("invalid_argument", "MUTE_FAILED"),
        ("unavailable", "LIVEKIT_UNAVAILABLE"),
        ("unauthenticated", "LIVEKIT_AUTH_FAILED"),
    ],
)
def test_mute_refusals_answer_their_code(anon, livekit_emulator, code, expected):
    livekit_emulator.add_room("room-1")
    mic = _mic(livekit_emulator.add_participant("room-1", "alice"))
    livekit_emulator.fail_next("MutePublishedTrack", code=code)

    answer = anon.mute("room-1", "alice", mic, True)

    assert (answer.status_code, answer.json()["code"]) == (errors.BY_CODE[expected].status, expected)
    assert all(not t.muted for t in livekit_emulator.participant("room-1", "alice").tracks)


def test_a_failed_precheck_never_mutes(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    mic = _mic(livekit_emulator.add_participant("room-a", "alice"))
    livekit_emulator.fail_next("ListRooms", code="unavailable")

    answer = tenants.mute("room-a", "alice", mic, True, TOKEN_A)

    assert answer.status_code == 503 and answer.json()["code"] == "LIVEKIT_UNAVAILABLE"
    assert "MutePublishedTrack" not in livekit_emulator.call_names()
