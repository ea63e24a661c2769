"""``room_metadata``: merging an owner into room metadata, and refusing a takeover."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from livekit.protocol.models import Room

import flask_livekit_moderation
from flask_livekit_moderation import RoomMetadataError, may_access, room_metadata, room_owner
from tests.helpers import TOKEN_A, TOKEN_B


def test_it_is_exported_with_its_error():
    assert "room_metadata" in flask_livekit_moderation.__all__
    assert "RoomMetadataError" in flask_livekit_moderation.__all__
    assert issubclass(RoomMetadataError, ValueError)


@pytest.mark.parametrize("existing", ["", "   ", "{}"])
def test_empty_metadata_becomes_an_object_with_the_owner(existing):
    assert json.loads(room_metadata("tenant-a", existing)) == {"auth_id": "tenant-a"}


def test_the_default_existing_is_empty():
    assert json.loads(room_metadata("tenant-a")) == {"auth_id": "tenant-a"}


def test_other_keys_are_kept_in_order():
    existing = json.dumps({"topic": "Stand-up", "limits": {"max": 5}, "tags": ["a", None]})

    merged = json.loads(room_metadata("tenant-a", existing))

    assert merged == {"topic": "Stand-up", "limits": {"max": 5}, "tags": ["a", None], "auth_id": "tenant-a"}
    assert list(merged) == ["topic", "limits", "tags", "auth_id"]


def test_the_same_owner_again_is_accepted_unchanged():
    once = room_metadata("tenant-a", '{"topic": "x"}')

    assert room_metadata("tenant-a", once) == once
    assert json.loads(once) == {"topic": "x", "auth_id": "tenant-a"}


def test_non_ascii_owners_round_trip():
    metadata = room_metadata("équipe-β")

    assert room_owner(metadata) == "équipe-β"


@pytest.mark.parametrize(
    "existing",
    ["not json", "{", "[1, 2]", '"a string"', "42", "true", "null", "[]"],
)
def test_metadata_that_is_not_a_json_object_is_refused(existing):
    with pytest.raises(RoomMetadataError, match="JSON object"):
        room_metadata("tenant-a", existing)


@pytest.mark.parametrize(
    "existing",
    [
        '{"auth_id": "tenant-b"}',
        '{"auth_id": "Tenant-A"}',
        '{"auth_id": "tenant-a "}',
        '{"x": 1, "auth_id": ""}',
    ],
)
def test_a_different_owner_is_a_takeover_and_refused(existing):
    with pytest.raises(RoomMetadataError, match="different auth_id") as raised:
        room_metadata("tenant-a", existing)
    # The message does not reveal who owns the room.
    assert "tenant-b" not in str(raised.value) and "Tenant-A" not in str(raised.value)


@pytest.mark.parametrize("existing", ['{"auth_id": null}', '{"auth_id": 7}', '{"auth_id": ["tenant-a"]}'])
def test_an_auth_id_that_is_not_a_string_is_refused(existing):
    with pytest.raises(RoomMetadataError, match="not a string"):
        room_metadata("tenant-a", existing)


@pytest.mark.parametrize("auth_id", ["", " ", "\t\n", None, 7])
def test_a_blank_or_non_string_auth_id_is_refused(auth_id):
    with pytest.raises(RoomMetadataError, match="auth_id"):
        room_metadata(auth_id)


def test_existing_must_be_a_string():
    with pytest.raises(RoomMetadataError, match="str"):
        room_metadata("tenant-a", {"topic": "x"})  # type: ignore[arg-type]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(
    auth_id=st.text(min_size=1, max_size=20).filter(str.strip),
    others=st.dictionaries(st.text(max_size=8).filter(lambda k: k != "auth_id"), _json_values, max_size=4),
)
def test_merging_keeps_everything_and_names_the_owner(auth_id, others):
    merged = room_metadata(auth_id, json.dumps(others))

    assert json.loads(merged) == {**others, "auth_id": auth_id}
    assert room_owner(merged) == auth_id
    assert may_access(auth_id, Room(name="r", metadata=merged))
    assert room_metadata(auth_id, merged) == merged


def test_a_room_created_with_it_is_moderatable_by_its_tenant_only(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a", '{"topic": "Stand-up"}'))
    livekit_emulator.add_participant("room-a", "alice")

    assert tenants.participants("room-a", TOKEN_B).status_code == 404
    assert tenants.participants("room-a", TOKEN_A).status_code == 200
    assert tenants.remove("room-a", "alice", TOKEN_A).status_code == 200
    assert livekit_emulator.participant("room-a", "alice") is None
