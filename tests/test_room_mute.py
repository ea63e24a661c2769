"""POST /livekit/room/mute: every published track of some sources in a room, in two round trips
(issue 12): the listing beside the room check, then every MutePublishedTrack at once, bounded."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from flask_livekit_moderation import errors, room_metadata, signals
from flask_livekit_moderation.participants.operations import ROOM_MUTE_CONCURRENCY
from flask_livekit_moderation.participants.schemas import MAX_EXCEPT_IDENTITIES
from flask_livekit_moderation.schemas import MAX_NAME_LENGTH
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import MASKED_ROOM_404, TOKEN_A, ServedApp

PATH = "/livekit/room/mute"


def mute_room(
    served: ServedApp, room: str, muted: bool, token: str | None = None, **fields: Any
) -> requests.Response:
    return served.request("POST", PATH, token, json={"room_name": room, "muted": muted, **fields})


def _seed(emu: LiveKitEmulator, room: str, count: int, owner: str | None = "tenant-a") -> list[str]:
    emu.add_room(room, metadata=None if owner is None else room_metadata(owner))
    identities = [f"p{i:03d}" for i in range(count)]
    emu.add_participants(room, identities)  # each publishes a microphone and a camera
    return identities


def _tracks(emu: LiveKitEmulator, room: str, source: int) -> dict[str, tuple[str, bool]]:
    """identity -> (SID, muted) of its track of ``source`` (2 microphone, 1 camera)."""
    return {
        p.identity: next((t.sid, t.muted) for t in p.tracks if t.source == source)
        for p in emu.participants(room)
    }


MIC, CAMERA = 2, 1


def _overlap_peak(records: list[Any]) -> int:
    """Most calls in flight at once, from the stand-in's arrival and answer times."""
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


# -- what it does -------------------------------------------------------------------------------


def test_a_50_participant_room_has_all_50_microphones_muted(tenants, livekit_emulator):
    identities = _seed(livekit_emulator, "room-a", 50)
    mics = _tracks(livekit_emulator, "room-a", MIC)
    cameras = _tracks(livekit_emulator, "room-a", CAMERA)

    answer = mute_room(tenants, "room-a", True, TOKEN_A)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "room_name": "room-a",
        "muted": True,
        "tracks": [
            {"participant_identity": i, "track_sid": mics[i][0], "source": "microphone", "muted": True}
            for i in identities
        ],
        "failed": [],
    }
    assert all(muted for _, muted in _tracks(livekit_emulator, "room-a", MIC).values())
    assert _tracks(livekit_emulator, "room-a", CAMERA) == cameras  # untouched
    names = livekit_emulator.call_names()
    assert sorted(names[:2]) == ["ListParticipants", "ListRooms"]
    assert names[2:] == ["MutePublishedTrack"] * 50
    sent = {(c.request.identity, c.request.track_sid) for c in livekit_emulator.calls[2:]}
    assert sent == {(i, mics[i][0]) for i in identities}
    for call in livekit_emulator.calls[2:]:
        assert call.request.room == "room-a" and call.request.muted is True and call.status == 200
        assert call.grants.room_admin and call.grants.room == "room-a"


def test_except_identities_are_left_alone(tenants, livekit_emulator):
    identities = _seed(livekit_emulator, "room-a", 10)
    spared = {"p003", "p007", "somebody-not-here"}

    answer = mute_room(tenants, "room-a", True, TOKEN_A, except_identities=sorted(spared))

    assert answer.status_code == 200
    muted = [t["participant_identity"] for t in answer.json()["tracks"]]
    assert muted == [i for i in identities if i not in spared]
    state = _tracks(livekit_emulator, "room-a", MIC)
    assert not state["p003"][1] and not state["p007"][1]
    assert all(state[i][1] for i in muted)
    mutes = [c for c in livekit_emulator.calls if c.method == "MutePublishedTrack"]
    assert len(mutes) == 8 and not {c.request.identity for c in mutes} & spared


def test_sources_choose_the_tracks(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1", 3, owner=None)
    livekit_emulator.publish_track("room-1", "p001", "video", "screen_share", sid="TR_screen")

    both = mute_room(anon, "room-1", True, sources=["camera", "microphone"])
    screen = mute_room(anon, "room-1", True, sources=["screen_share"])
    nothing = mute_room(anon, "room-1", True, sources=["screen_share_audio"])

    assert both.status_code == 200
    assert [(t["participant_identity"], t["source"]) for t in both.json()["tracks"]] == [
        (p, s) for p in ("p000", "p001", "p002") for s in ("camera", "microphone")
    ]
    assert screen.json()["tracks"] == [
        {"participant_identity": "p001", "track_sid": "TR_screen", "source": "screen_share", "muted": True}
    ]
    assert nothing.status_code == 200 and nothing.json()["tracks"] == [] and nothing.json()["failed"] == []
    assert livekit_emulator.call_names()[-1] == "ListParticipants"  # nothing to mute: no mute call


def test_the_mutes_go_out_at_once_up_to_the_bound(tenants, livekit_emulator):
    # More microphones than the bound: one full batch, then the rest as slots free up.
    size = ROOM_MUTE_CONCURRENCY + ROOM_MUTE_CONCURRENCY // 2
    _seed(livekit_emulator, "room-a", size)
    latency = 0.1
    livekit_emulator.set_latency(latency)

    started = time.monotonic()
    answer = mute_room(tenants, "room-a", True, TOKEN_A)
    elapsed = time.monotonic() - started

    assert answer.status_code == 200 and len(answer.json()["tracks"]) == size
    listing = livekit_emulator.calls[:2]
    mutes = livekit_emulator.calls[2:]
    assert len(mutes) == size
    assert {c.method for c in listing} == {"ListRooms", "ListParticipants"}
    assert _overlap_peak(listing) == 2, "the room check and the listing were not beside each other"
    assert min(c.started for c in mutes) >= max(c.finished for c in listing)
    # Every slot in use, never more.
    assert _overlap_peak(mutes) == ROOM_MUTE_CONCURRENCY
    # One round trip for the listing, two batches of mutes: 3 x latency (what the benchmark
    # measures), where a loop of the single-track route would take 2 x size x latency.
    assert elapsed < latency * size / 4, elapsed


def test_a_room_within_the_bound_costs_two_round_trips(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-a", 50)
    # Long enough that a loaded CI machine sends all 50 mutes before the first is answered
    # (at 0.15 s the floors' run once saw 48 in flight).
    latency = 0.5
    livekit_emulator.set_latency(latency)

    started = time.monotonic()
    answer = mute_room(tenants, "room-a", True, TOKEN_A)
    elapsed = time.monotonic() - started

    assert answer.status_code == 200 and len(answer.json()["tracks"]) == 50
    # Two round trips on the stand-in's clock: the check and the listing side by side, then
    # all 50 mutes in flight at once.
    listing, mutes = livekit_emulator.calls[:2], livekit_emulator.calls[2:]
    assert _overlap_peak(listing) == 2 and _overlap_peak(mutes) == 50
    assert min(c.started for c in mutes) >= max(c.finished for c in listing)
    assert elapsed >= latency * 2, elapsed


def test_a_track_unpublished_during_the_request_is_reported_in_failed(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-a", 50)
    gone = _tracks(livekit_emulator, "room-a", MIC)["p007"][0]
    livekit_emulator.set_latency(0.4, method="MutePublishedTrack")
    answers: list[requests.Response] = []
    sender = threading.Thread(target=lambda: answers.append(mute_room(tenants, "room-a", True, TOKEN_A)))

    sender.start()
    deadline = time.monotonic() + 5
    while "ListParticipants" not in livekit_emulator.call_names() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert livekit_emulator.unpublish_track("room-a", "p007", gone)  # the mutes are on their way
    sender.join(10)

    (answer,) = answers
    assert answer.status_code == 200
    assert answer.json()["failed"] == [
        {"participant_identity": "p007", "track_sid": gone, "source": "microphone", "code": "TRACK_NOT_FOUND"}
    ]
    assert len(answer.json()["tracks"]) == 49 and "p007" not in {
        t["participant_identity"] for t in answer.json()["tracks"]
    }
    # LiveKit was asked and answered 200 with no track, as it does for an unknown track.
    (call,) = [
        c for c in livekit_emulator.calls if c.method == "MutePublishedTrack" and c.request.track_sid == gone
    ]
    assert call.status == 200


def test_unmuting_needs_remote_unmute(make_served):
    with LiveKitEmulator(enable_remote_unmute=True) as emu:
        served = make_served(emulator=emu)
        _seed(emu, "room-1", 5, owner=None)
        assert mute_room(served, "room-1", True).status_code == 200

        answer = mute_room(served, "room-1", False)

        assert answer.status_code == 200 and answer.json()["muted"] is False
        assert [t["muted"] for t in answer.json()["tracks"]] == [False] * 5
        assert not any(muted for _, muted in _tracks(emu, "room-1", MIC).values())


def test_unmuting_while_remote_unmute_is_off_is_one_error_not_a_list(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1", 5, owner=None)
    assert mute_room(anon, "room-1", True).status_code == 200

    answer = mute_room(anon, "room-1", False)

    assert answer.status_code == 500
    assert (
        answer.json()["code"] == "REMOTE_UNMUTE_DISABLED" and "enable_remote_unmute" in answer.json()["error"]
    )
    unmutes = [c for c in livekit_emulator.calls if c.method == "MutePublishedTrack" and not c.request.muted]
    assert [c.status for c in unmutes] == [412] * 5
    assert all(muted for _, muted in _tracks(livekit_emulator, "room-1", MIC).values())


def test_an_empty_room_mutes_nothing(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")

    answer = mute_room(anon, "room-1", True)

    assert answer.status_code == 200
    assert answer.json() == {"room_name": "room-1", "muted": True, "tracks": [], "failed": []}


def test_an_unknown_room_is_an_empty_answer_for_anonymous_callers(anon, livekit_emulator):
    answer = mute_room(anon, "no-such-room", True)

    # As the listing answers: LiveKit lists an unknown room as empty.
    assert answer.status_code == 200 and answer.json()["tracks"] == []
    assert livekit_emulator.call_names() == ["ListParticipants"]


# -- the masked 404 -----------------------------------------------------------------------------


def test_foreign_and_unknown_rooms_are_the_same_404_and_nothing_is_muted(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-b", 20, owner="tenant-b")
    _seed(livekit_emulator, "room-x", 3, owner=None)  # owned by nobody: anonymous callers only

    foreign = mute_room(tenants, "room-b", True, TOKEN_A)
    ownerless = mute_room(tenants, "room-x", True, TOKEN_A)
    unknown = mute_room(tenants, "no-such-room", True, TOKEN_A)

    assert foreign.status_code == ownerless.status_code == unknown.status_code == 404
    assert foreign.json() == MASKED_ROOM_404
    assert foreign.content == ownerless.content == unknown.content
    assert "MutePublishedTrack" not in livekit_emulator.call_names()
    assert not any(muted for _, muted in _tracks(livekit_emulator, "room-b", MIC).values())


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        ("invalid_argument", "MUTE_FAILED"),
        ("permission_denied", "MUTE_FAILED"),
        ("not_found", "PARTICIPANT_NOT_FOUND"),
        ("unavailable", "LIVEKIT_UNAVAILABLE"),
        ("internal", "LIVEKIT_UNAVAILABLE"),
    ],
)
def test_one_failing_track_is_reported_and_the_others_are_muted(anon, livekit_emulator, code, failure):
    _seed(livekit_emulator, "room-1", 6, owner=None)
    livekit_emulator.fail_next("MutePublishedTrack", code=code)

    answer = mute_room(anon, "room-1", True)

    assert answer.status_code == 200
    (failed,) = answer.json()["failed"]
    assert failed["code"] == failure and failed["source"] == "microphone"
    (call,) = [c for c in livekit_emulator.calls if c.code == code]
    assert call.fault == "fail"
    assert len(answer.json()["tracks"]) == 5
    state = _tracks(livekit_emulator, "room-1", MIC)
    assert [i for i, (_, muted) in sorted(state.items()) if not muted] == [failed["participant_identity"]]


def test_a_participant_who_left_is_reported_after_livekits_rpc_wait(make_served):
    with LiveKitEmulator(mute_unknown_delay=0.3) as emu:
        served = make_served(emulator=emu)
        _seed(emu, "room-1", 4, owner=None)
        emu.set_latency(0.3, method="MutePublishedTrack")
        answers: list[requests.Response] = []
        sender = threading.Thread(target=lambda: answers.append(mute_room(served, "room-1", True)))

        sender.start()
        deadline = time.monotonic() + 5
        while "ListParticipants" not in emu.call_names() and time.monotonic() < deadline:
            time.sleep(0.005)
        emu.leave("room-1", "p002")
        sender.join(10)

        (answer,) = answers
        # LiveKit routes a mute for someone gone to a topic nobody serves: 503 after its wait.
        assert answer.status_code == 200
        assert [(f["participant_identity"], f["code"]) for f in answer.json()["failed"]] == [
            ("p002", "LIVEKIT_UNAVAILABLE")
        ]
        assert len(answer.json()["tracks"]) == 3


def test_livekit_unavailable_for_every_mute_is_503(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1", 4, owner=None)
    livekit_emulator.fail_next("MutePublishedTrack", n=4, code="unavailable")

    answer = mute_room(anon, "room-1", True)

    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert int(answer.headers["Retry-After"]) >= 1
    assert livekit_emulator.call_names().count("MutePublishedTrack") == 4


@pytest.mark.parametrize(
    ("method", "code", "expected"),
    [
        ("ListParticipants", "unavailable", "LIVEKIT_UNAVAILABLE"),
        ("ListParticipants", "permission_denied", "ROOM_MUTE_FAILED"),
        ("ListRooms", "unavailable", "LIVEKIT_UNAVAILABLE"),
    ],
)
def test_a_failed_listing_mutes_nothing(tenants, livekit_emulator, method, code, expected):
    _seed(livekit_emulator, "room-a", 4)
    livekit_emulator.fail_next(method, code=code)

    answer = mute_room(tenants, "room-a", True, TOKEN_A)

    assert (answer.status_code, answer.json()["code"]) == (errors.BY_CODE[expected].status, expected)
    assert "MutePublishedTrack" not in livekit_emulator.call_names()


def test_livekit_rejecting_the_api_key_fails_the_whole_request(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1", 4, owner=None)
    livekit_emulator.fail_next("MutePublishedTrack", code="unauthenticated")

    answer = mute_room(anon, "room-1", True)

    assert (answer.status_code, answer.json()["code"]) == (500, "LIVEKIT_AUTH_FAILED")


@pytest.mark.timing
def test_the_deadline_bounds_the_whole_room_mute(make_served_over_http, livekit_emulator):
    served = make_served_over_http(LIVEKIT_MODERATION_TIMEOUT=0.5)
    _seed(livekit_emulator, "room-1", 4, owner=None)
    livekit_emulator.hang_next("MutePublishedTrack", seconds=3)

    started = time.monotonic()
    answer = mute_room(served, "room-1", True)
    elapsed = time.monotonic() - started

    # A mute was sent and never answered: some tracks may have been muted.
    assert (answer.status_code, answer.json()["code"]) == (503, "LIVEKIT_OUTCOME_UNKNOWN")
    assert 0.5 <= elapsed < 1.2


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("muted", "true"),
        ("muted", 1),
        ("muted", None),
        ("sources", []),
        ("sources", ["microphone", "microphone"]),
        ("sources", ["unknown"]),
        ("sources", ["Microphone"]),
        ("sources", "microphone"),
        ("sources", [2]),
        ("sources", None),
        ("except_identities", "p001"),
        ("except_identities", [" "]),
        ("except_identities", [""]),
        ("except_identities", [1]),
        ("except_identities", ["x" * (MAX_NAME_LENGTH + 1)]),
        ("except_identities", ["\ud800"]),
        ("except_identities", [f"p{i}" for i in range(MAX_EXCEPT_IDENTITIES + 1)]),
        ("except_identities", None),
    ],
)
def test_invalid_fields_are_400_without_calling_livekit(anon, livekit_emulator, field, value):
    body = {"room_name": "room-1", "muted": True, field: value}

    answer = anon.request("POST", PATH, json=body)

    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST" and list(answer.json()["details"]) == [field]
    assert livekit_emulator.calls == []
    (messages,) = answer.json()["details"].values()
    assert isinstance(messages, list) and all(isinstance(m, str) for m in messages)  # flat, item errors too


@pytest.mark.parametrize("missing", ["room_name", "muted"])
def test_room_name_and_muted_are_required(anon, livekit_emulator, missing):
    body = {"room_name": "room-1", "muted": True}
    del body[missing]

    answer = anon.request("POST", PATH, json=body)

    assert answer.status_code == 400 and list(answer.json()["details"]) == [missing]


def test_a_thousand_exceptions_are_accepted(anon, livekit_emulator):
    identities = _seed(livekit_emulator, "room-1", 3, owner=None)
    spared = [f"guest-{i:04d}" for i in range(MAX_EXCEPT_IDENTITIES - 1)] + [identities[0]]

    answer = mute_room(anon, "room-1", True, except_identities=spared)

    assert answer.status_code == 200
    assert [t["participant_identity"] for t in answer.json()["tracks"]] == identities[1:]


# -- signals and audit --------------------------------------------------------------------------


def test_room_mute_finished_and_moderation_finished(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-a", 3)
    gone = _tracks(livekit_emulator, "room-a", MIC)["p001"][0]
    livekit_emulator.fail_next("MutePublishedTrack", code="invalid_argument")
    received: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Any:
        return lambda sender, **data: received.append((name, data))

    on_room, on_finished = receiver("room_mute_finished"), receiver("moderation_finished")
    with (
        signals.room_mute_finished.connected_to(on_room, tenants.app),
        signals.moderation_finished.connected_to(on_finished, tenants.app),
    ):
        answer = mute_room(tenants, "room-a", True, TOKEN_A, except_identities=["p002"])

    assert answer.status_code == 200
    (room_event,) = [data for name, data in received if name == "room_mute_finished"]
    assert room_event == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",
        "room_name": "room-a",
        "muted": True,
        "sources": ["microphone"],
        "except_identities": ["p002"],
        "tracks": answer.json()["tracks"],
        "failed": answer.json()["failed"],
        "outcome": "muted",
    }
    assert len(room_event["tracks"]) + len(room_event["failed"]) == 2
    assert gone in {t["track_sid"] for t in room_event["tracks"] + room_event["failed"]}
    (finished,) = [data for name, data in received if name == "moderation_finished"]
    assert finished["action"] == "room_mute" and finished["outcome"] == "muted" and finished["status"] == 200
    assert finished["room_name"] == "room-a" and finished["participant_identity"] is None
    assert sorted(finished["livekit_calls"]) == ["ListParticipants", "ListRooms"] + ["MutePublishedTrack"] * 2


def test_a_receiver_that_changes_its_data_does_not_change_the_answer(anon, livekit_emulator, caplog):
    _seed(livekit_emulator, "room-1", 3, owner=None)

    def vandal(sender: Any, **data: Any) -> None:
        data["tracks"].clear()
        data["failed"].append({"code": "MADE_UP"})
        raise RuntimeError("receiver bug")

    with signals.room_mute_finished.connected_to(vandal, anon.app):
        answer = mute_room(anon, "room-1", True)

    assert answer.status_code == 200
    assert len(answer.json()["tracks"]) == 3 and answer.json()["failed"] == []
    assert "receiver of livekit-moderation.room-mute-finished raised" in caplog.text


def test_no_room_mute_signal_when_the_request_fails(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1", 2, owner=None)
    received: list[dict[str, Any]] = []

    with signals.room_mute_finished.connected_to(lambda sender, **data: received.append(data), anon.app):
        assert mute_room(anon, "room-1", False).status_code == 500  # remote unmute is off

    assert received == []


def test_a_foreign_room_sends_moderation_refused(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-b", 2, owner="tenant-b")
    refused: list[dict[str, Any]] = []

    with signals.moderation_refused.connected_to(lambda sender, **data: refused.append(data), tenants.app):
        assert mute_room(tenants, "room-b", True, TOKEN_A).status_code == 404

    (data,) = refused
    assert (data["action"], data["room_name"], data["muted"], data["outcome"]) == (
        "room_mute",
        "room-b",
        True,
        "ROOM_NOT_FOUND",
    )
