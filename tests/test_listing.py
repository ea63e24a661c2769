"""GET /livekit/participants: answer shape, access table, LiveKit call counts, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from livekit.protocol.models import ParticipantPermission, TrackSource

from flask_livekit_moderation import room_metadata
from tests.helpers import MASKED_404, MASKED_ROOM_404, TOKEN_A

MASKED_BODY = json.dumps(MASKED_ROOM_404).encode()
#: What a route about one participant answers for the same room: worded for the participant.
MASKED_PARTICIPANT_BODY = json.dumps(MASKED_404).encode()


def _expected(participant) -> dict[str, Any]:
    """What the route must answer for one emulator ParticipantInfo, built independently."""
    return {
        "identity": participant.identity,
        "name": participant.name,
        "sid": participant.sid,
        "state": "active",
        "joined_at": participant.joined_at,
        "is_publisher": bool(participant.tracks),
        "tracks": [
            {"sid": t.sid, "type": kind, "source": source, "muted": t.muted, "name": t.name}
            for t, (kind, source) in zip(participant.tracks, _KINDS[participant.identity], strict=False)
        ],
        "permission": _PERMISSIONS[participant.identity],
    }


def _permission(**given: Any) -> dict[str, Any]:
    """A permission as the route spells it: every field, false unless given."""
    return {
        "can_subscribe": False,
        "can_publish": False,
        "can_publish_data": False,
        "can_publish_sources": [],
        "can_update_metadata": False,
        "hidden": False,
        "can_subscribe_metrics": False,
        "can_manage_agent_session": False,
        **given,
    }


# What each seeded participant may do: a plain join token's grant, or a viewer's.
_JOIN_TOKEN = _permission(can_subscribe=True, can_publish=True, can_publish_data=True)
_PERMISSIONS = {
    "alice": _JOIN_TOKEN,
    "bob": _JOIN_TOKEN,
    "carol": _permission(can_subscribe=True, hidden=True),
}


# What each seeded participant publishes, in order, as the route must spell it.
_KINDS = {
    "alice": [("audio", "microphone"), ("video", "camera")],
    "bob": [("video", "screen_share"), ("audio", "screen_share_audio"), ("data", "unknown")],
    "carol": [],
}


def _seed(emulator, room: str, metadata: str = "") -> list[Any]:
    emulator.add_room(room, metadata=metadata)
    return [
        emulator.add_participant(room, "alice", name="Alice"),
        emulator.add_participant(
            room,
            "bob",
            name="Bob",
            tracks=[
                ("video", "screen_share", "slides", True),
                ("audio", "screen_share_audio"),
                ("data", "unknown"),
            ],
        ),
        emulator.add_participant(
            room, "carol", tracks=[], permission=ParticipantPermission(can_subscribe=True, hidden=True)
        ),
    ]


def test_anonymous_listing_has_the_documented_shape(anon, livekit_emulator):
    seeded = _seed(livekit_emulator, "room-1")

    answer = anon.participants("room-1")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["room_name"] == "room-1"
    assert sorted(body["participants"], key=lambda p: p["identity"]) == [_expected(p) for p in seeded]
    bob = next(p for p in body["participants"] if p["identity"] == "bob")
    assert bob["tracks"][0]["muted"] is True and bob["tracks"][0]["name"] == "slides"
    assert isinstance(bob["joined_at"], int) and bob["joined_at"] > 1_600_000_000


def test_the_listing_shows_a_changed_permission(anon, livekit_emulator):
    # A console shows a locked microphone from the listing: it must follow every change.
    _seed(livekit_emulator, "room-1")
    locked = ParticipantPermission(
        can_subscribe=True, can_publish=True, can_publish_data=True, can_publish_sources=[TrackSource.CAMERA]
    )
    livekit_emulator.add_participant("room-1", "dave", tracks=[("video", "camera")], permission=locked)

    people = {p["identity"]: p for p in anon.participants("room-1").json()["participants"]}

    assert people["dave"]["permission"] == {**_JOIN_TOKEN, "can_publish_sources": ["camera"]}
    assert people["alice"]["permission"]["can_publish_sources"] == []  # empty: every source


def test_anonymous_listing_makes_exactly_one_call(anon, livekit_emulator):
    _seed(livekit_emulator, "room-1")

    anon.participants("room-1")

    (call,) = livekit_emulator.calls
    assert call.method == "ListParticipants" and call.request.room == "room-1"
    assert call.grants.room_admin is True and call.grants.room == "room-1"


def test_anonymous_unknown_room_is_an_empty_list(anon, livekit_emulator):
    answer = anon.participants("no-such-room")

    assert answer.status_code == 200
    assert answer.json() == {"room_name": "no-such-room", "participants": []}
    assert livekit_emulator.call_names() == ["ListParticipants"]


def test_tenant_lists_its_own_room(tenants, livekit_emulator):
    seeded = _seed(livekit_emulator, "room-a", room_metadata("tenant-a"))

    answer = tenants.participants("room-a", TOKEN_A)

    assert answer.status_code == 200
    body = answer.json()
    assert sorted(body["participants"], key=lambda p: p["identity"]) == [_expected(p) for p in seeded]


def test_tenant_token_in_the_query_string_is_not_a_room_parameter(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-a", room_metadata("tenant-a"))

    answer = tenants.request(
        "GET", "/livekit/participants", params={"room_name": "room-a", "api_key": TOKEN_A}
    )

    assert answer.status_code == 200
    assert answer.json()["room_name"] == "room-a" and len(answer.json()["participants"]) == 3


def test_tenant_calls_list_rooms_and_list_participants_at_once(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-a", room_metadata("tenant-a"))
    livekit_emulator.clear_calls()
    livekit_emulator.set_latency(0.3)

    answer = tenants.participants("room-a", TOKEN_A)

    assert answer.status_code == 200
    calls = {call.method: call for call in livekit_emulator.calls}
    assert sorted(livekit_emulator.call_names()) == ["ListParticipants", "ListRooms"]
    rooms, listing = calls["ListRooms"], calls["ListParticipants"]
    # Each started before the other finished: they were in flight together.
    assert rooms.started < listing.finished and listing.started < rooms.finished
    assert list(rooms.request.names) == ["room-a"] and rooms.grants.room_list is True
    assert listing.grants.room_admin is True and listing.grants.room == "room-a"


@pytest.mark.parametrize(
    "metadata",
    [None, room_metadata("tenant-b"), "", '{"topic": "no owner"}', "not json", room_metadata("Tenant-A")],
    ids=["unknown", "foreign", "orphan-empty", "orphan-no-auth-id", "orphan-not-json", "case-differs"],
)
def test_tenant_refusals_are_the_same_masked_404(tenants, livekit_emulator, metadata):
    if metadata is not None:
        _seed(livekit_emulator, "room-x", metadata)

    answer = tenants.participants("room-x", TOKEN_A)
    # A room that does not exist, for comparison: not just the same JSON, the same bytes.
    missing = tenants.participants("no-such-room", TOKEN_A)
    # A route about one participant words the same refusal for the participant.
    removal = tenants.remove("room-x", "nobody", TOKEN_A)

    assert answer.status_code == missing.status_code == removal.status_code == 404
    assert answer.content == MASKED_BODY == missing.content
    assert {k: v for k, v in answer.headers.items() if k != "Date"} == {
        k: v for k, v in missing.headers.items() if k != "Date"
    }
    assert removal.content == MASKED_PARTICIPANT_BODY
    assert answer.headers["Content-Type"] == removal.headers["Content-Type"]


def test_a_foreign_room_stays_masked_when_listing_fails(tenants, livekit_emulator):
    _seed(livekit_emulator, "room-b", room_metadata("tenant-b"))
    livekit_emulator.fail_next("ListParticipants", code="unavailable")

    answer = tenants.participants("room-b", TOKEN_A)

    assert answer.status_code == 404 and answer.content == MASKED_BODY


def test_list_failures_are_500_or_503(anon, livekit_emulator):
    livekit_emulator.fail_next("ListParticipants", code="permission_denied")
    refused = anon.participants("room-1")
    assert (refused.status_code, refused.json()["code"]) == (500, "LIST_FAILED")
    livekit_emulator.fail_next("ListParticipants", code="unavailable")
    down = anon.participants("room-1")
    assert (down.status_code, down.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert down.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    "params",
    [{}, {"room_name": ""}, {"room_name": "   "}, {"room_name": "r" * 257}, {"room": "room-1"}],
    ids=["missing", "empty", "blank", "too-long", "wrong-name"],
)
def test_bad_room_names_are_400_without_calling_livekit(tenants, livekit_emulator, params):
    answer = tenants.request("GET", "/livekit/participants", TOKEN_A, params=params)

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "INVALID_REQUEST" and list(body["details"]) == ["room_name"]
    assert livekit_emulator.calls == []


def test_the_longest_room_name_is_accepted(anon, livekit_emulator):
    answer = anon.participants("r" * 256)

    assert answer.status_code == 200 and answer.json()["participants"] == []
