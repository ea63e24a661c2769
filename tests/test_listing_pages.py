"""GET /livekit/participants in pages (``limit``/``cursor``) and without tracks (``tracks=false``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.schemas import cursor
from tests.helpers import MASKED_ROOM_404, TOKEN_A

IDENTITIES = [f"user-{n:03d}" for n in range(250)]


def _page(served, token: str | None = None, **params: Any):
    return served.request("GET", "/livekit/participants", token, params={"room_name": "big", **params})


def _all_pages(served, token: str | None, limit: int) -> list[dict[str, Any]]:
    pages, after = [], None
    while True:
        answer = _page(served, token, limit=limit, **({} if after is None else {"cursor": after}))
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        after = answer.json()["next_cursor"]
        if after is None:
            return pages


@pytest.fixture
def big_room(livekit_emulator):
    livekit_emulator.add_room("big", metadata=room_metadata("tenant-a"))
    # Joined in reverse: identity order is not the order LiveKit holds them in.
    livekit_emulator.add_participants("big", list(reversed(IDENTITIES)))
    livekit_emulator.clear_calls()
    return livekit_emulator


def test_pages_list_everyone_once_in_identity_order(tenants, big_room):
    pages = _all_pages(tenants, TOKEN_A, 100)

    assert [len(page["participants"]) for page in pages] == [100, 100, 50]
    listed = [p["identity"] for page in pages for p in page["participants"]]
    assert listed == IDENTITIES
    assert all(page["room_name"] == "big" for page in pages)
    # Each page is one room check and one listing, as the whole room is.
    assert sorted(big_room.call_names()) == ["ListParticipants"] * 3 + ["ListRooms"] * 3


def test_a_page_holds_what_the_whole_listing_says_of_each_participant(tenants, big_room):
    whole = {p["identity"]: p for p in _page(tenants, TOKEN_A).json()["participants"]}

    (page,) = _all_pages(tenants, TOKEN_A, 1000)

    assert page["participants"] == [whole[identity] for identity in IDENTITIES]
    assert page["next_cursor"] is None


def test_an_exact_last_page_has_no_next_cursor(tenants, big_room):
    pages = _all_pages(tenants, TOKEN_A, 125)

    assert [len(page["participants"]) for page in pages] == [125, 125]


def test_joins_and_leaves_between_pages_come_at_most_once(tenants, big_room):
    first = _page(tenants, TOKEN_A, limit=100).json()
    big_room.leave("big", "user-050")  # already listed
    big_room.leave("big", "user-150")  # not yet listed: gone before its page
    big_room.add_participant("big", "user-000a")  # sorts before the cursor: not in later pages
    big_room.add_participant("big", "user-199a")  # sorts after it: comes in its page

    rest = _all_pages_from(tenants, first["next_cursor"])

    later = [p["identity"] for page in rest for p in page["participants"]]
    assert later == [i for i in IDENTITIES[100:] if i != "user-150"][:99] + ["user-199a"] + IDENTITIES[200:]
    everyone = [p["identity"] for p in first["participants"]] + later
    assert len(everyone) == len(set(everyone))


def _all_pages_from(served, after: str) -> list[dict[str, Any]]:
    pages = []
    while after is not None:
        answer = _page(served, TOKEN_A, limit=100, cursor=after)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        after = answer.json()["next_cursor"]
    return pages


def test_without_tracks_each_participant_is_the_whole_listing_less_its_tracks(tenants, big_room):
    big_room.add_participant("big", "speaker", tracks=[("audio", "microphone"), ("video", "camera")])
    whole = {p["identity"]: p for p in _page(tenants, TOKEN_A).json()["participants"]}

    answer = _page(tenants, TOKEN_A, tracks="false")

    assert answer.status_code == 200
    people = answer.json()["participants"]
    assert len(people) == len(whole) == 251
    for person in people:
        expected = dict(whole[person["identity"]])
        del expected["tracks"]
        assert person == expected
    assert len(whole["speaker"]["tracks"]) == 2
    assert "next_cursor" not in answer.json()


def test_tracks_true_is_the_default(tenants, big_room):
    def by_identity(answer):
        # Without limit the answer is in LiveKit's order, which is no order (the shuffled runs).
        return sorted(answer.json()["participants"], key=lambda p: p["identity"])

    with_tracks = _page(tenants, TOKEN_A, tracks="true")
    assert by_identity(with_tracks) == by_identity(_page(tenants, TOKEN_A))
    assert set(with_tracks.json()) == {"room_name", "participants"}


def test_pages_without_tracks(tenants, big_room):
    answer = _page(tenants, TOKEN_A, limit=10, tracks="false")

    people = answer.json()["participants"]
    assert [p["identity"] for p in people] == IDENTITIES[:10]
    assert all("tracks" not in p for p in people)


def test_a_foreign_room_is_the_masked_404_with_pages_too(tenants, livekit_emulator):
    livekit_emulator.add_room("big", metadata=room_metadata("tenant-b"))
    livekit_emulator.add_participants("big", IDENTITIES[:5])
    missing = tenants.participants("no-such-room", TOKEN_A)  # a room about which nothing is known

    for params in ({"limit": 2}, {"limit": 2, "cursor": cursor("big", "user-000")}, {"tracks": "false"}):
        answer = _page(tenants, TOKEN_A, **params)
        assert answer.status_code == 404
        assert answer.content == json.dumps(MASKED_ROOM_404).encode() == missing.content


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "10", "cursor": "not a cursor"}, "cursor"),
        ({"limit": "10", "cursor": cursor("another-room", "user-000")}, "cursor"),
        ({"limit": "10", "cursor": cursor("big", "user-000", "tenant-a")}, "cursor"),
        ({"limit": "10", "cursor": "x" * 8193}, "cursor"),
        ({"cursor": cursor("big", "user-000")}, "cursor"),
        ({"tracks": "no"}, "tracks"),
        ({"tracks": "1"}, "tracks"),
        ({"tracks": ""}, "tracks"),
    ],
    ids=[
        "limit-0",
        "limit-too-big",
        "limit-word",
        "limit-fraction",
        "cursor-garbage",
        "cursor-other-room",
        "cursor-a-ban-cursor",
        "cursor-too-long",
        "cursor-without-limit",
        "tracks-no",
        "tracks-1",
        "tracks-empty",
    ],
)
def test_bad_page_parameters_are_400_without_calling_livekit(tenants, big_room, params, field):
    answer = _page(tenants, TOKEN_A, **params)

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "INVALID_REQUEST" and list(body["details"]) == [field]
    assert big_room.calls == []
