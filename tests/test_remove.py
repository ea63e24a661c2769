"""DELETE /livekit/participant: access table, call counts, validation and LiveKit errors."""

from __future__ import annotations

import json
import logging

import pytest

from flask_livekit_moderation import errors, room_metadata
from tests.helpers import JSON, MASKED_404, TOKEN_A, TOKEN_B


def test_anonymous_remove_makes_one_call(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    answer = anon.remove("room-1", "alice")

    assert answer.status_code == 200
    assert answer.json() == {"status": "removed", "room_name": "room-1", "participant_identity": "alice"}
    assert livekit_emulator.participant("room-1", "alice") is None
    (call,) = livekit_emulator.calls
    assert call.method == "RemoveParticipant"
    assert call.status == 200
    assert call.grants.room_admin is True and call.grants.room == "room-1"


def test_tenant_remove_checks_the_room_then_removes(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_participant("room-a", "alice")

    answer = tenants.remove("room-a", "alice", TOKEN_A)

    assert answer.status_code == 200
    assert livekit_emulator.participant("room-a", "alice") is None
    list_rooms, remove = livekit_emulator.calls
    assert list_rooms.method == "ListRooms" and list_rooms.grants.room_list is True
    assert list(list_rooms.request.names) == ["room-a"]
    assert remove.method == "RemoveParticipant" and remove.started >= list_rooms.finished


@pytest.mark.parametrize(
    "metadata",
    [
        "",
        "not json",
        "[1, 2]",
        '"tenant-a"',
        '{"other": "tenant-a"}',
        '{"auth_id": 7}',
        '{"auth_id": null}',
        '{"auth_id": ["tenant-a"]}',
        room_metadata("tenant-b"),
        room_metadata("TENANT-A"),
        room_metadata(" tenant-a"),
    ],
    ids=[
        "empty",
        "not-json",
        "json-array",
        "json-string",
        "no-auth-id",
        "auth-id-number",
        "auth-id-null",
        "auth-id-list",
        "other-tenant",
        "case-differs",
        "whitespace-differs",
    ],
)
def test_refused_rooms_are_masked_and_never_mutated(tenants, livekit_emulator, metadata):
    livekit_emulator.add_room("room-x", metadata=metadata)
    livekit_emulator.add_participant("room-x", "alice")

    answer = tenants.remove("room-x", "alice", TOKEN_A)

    assert answer.status_code == 404
    assert answer.json() == MASKED_404
    assert livekit_emulator.call_names() == ["ListRooms"]
    assert livekit_emulator.participant("room-x", "alice") is not None


def test_every_refusal_has_the_same_body_bytes(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    livekit_emulator.add_participant("room-b", "bob")

    missing_room = tenants.remove("no-such-room", "bob", TOKEN_A)
    foreign_room = tenants.remove("room-b", "bob", TOKEN_A)
    missing_participant = tenants.remove("room-a", "nobody", TOKEN_A)

    bodies = {r.content for r in (missing_room, foreign_room, missing_participant)}
    assert [r.status_code for r in (missing_room, foreign_room, missing_participant)] == [404] * 3
    assert len(bodies) == 1
    assert json.loads(bodies.pop()) == MASKED_404
    for header in ("Content-Type", "Content-Length", "WWW-Authenticate"):
        assert missing_room.headers.get(header) == foreign_room.headers.get(header)
    assert livekit_emulator.call_names() == ["ListRooms", "ListRooms", "ListRooms", "RemoveParticipant"]
    assert livekit_emulator.participant("room-b", "bob") is not None


def test_missing_participant_comes_from_remove_participant(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))

    answer = tenants.remove("room-a", "ghost", TOKEN_A)

    assert answer.status_code == 404 and answer.json() == MASKED_404
    assert livekit_emulator.call_names() == ["ListRooms", "RemoveParticipant"]
    assert livekit_emulator.calls[1].code == "not_found"


def test_anonymous_callers_may_act_on_any_room(anon, livekit_emulator):
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    livekit_emulator.add_participant("room-b", "bob")
    livekit_emulator.add_room("orphan", metadata="not json")
    livekit_emulator.add_participant("orphan", "carol")

    assert anon.remove("room-b", "bob").status_code == 200
    assert anon.remove("orphan", "carol").status_code == 200
    assert anon.remove("orphan", "carol").json() == MASKED_404
    assert livekit_emulator.call_names() == ["RemoveParticipant"] * 3


def test_tenants_only_reach_their_own_rooms(tenants, livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    livekit_emulator.add_participant("room-a", "alice")
    livekit_emulator.add_participant("room-b", "bob")

    assert tenants.remove("room-a", "alice", TOKEN_B).status_code == 404
    assert tenants.remove("room-b", "bob", TOKEN_B).status_code == 200
    assert tenants.remove("room-a", "alice", TOKEN_A).status_code == 200


def test_names_are_used_exactly_as_given(anon, livekit_emulator):
    livekit_emulator.add_room(" Room A ")
    livekit_emulator.add_room("Room A")
    livekit_emulator.add_participant(" Room A ", " Alice")
    livekit_emulator.add_participant("Room A", "Alice")

    answer = anon.remove(" Room A ", " Alice")

    assert answer.status_code == 200
    assert answer.json()["room_name"] == " Room A " and answer.json()["participant_identity"] == " Alice"
    assert livekit_emulator.participant(" Room A ", " Alice") is None
    assert livekit_emulator.participant("Room A", "Alice") is not None
    assert livekit_emulator.calls[0].request.room == " Room A "


VALID = {"room_name": "room-1", "participant_identity": "alice"}


@pytest.mark.parametrize(
    "body, bad_field",
    [
        ({"participant_identity": "alice"}, "room_name"),
        ({"room_name": "room-1"}, "participant_identity"),
        ({**VALID, "room_name": ""}, "room_name"),
        ({**VALID, "room_name": "   \t"}, "room_name"),
        ({**VALID, "participant_identity": None}, "participant_identity"),
        ({**VALID, "participant_identity": 42}, "participant_identity"),
        ({**VALID, "room_name": ["room-1"]}, "room_name"),
        ({**VALID, "room_name": "r" * 257}, "room_name"),
    ],
)
def test_invalid_fields_are_400_with_details(anon, livekit_emulator, body, bad_field):
    answer = anon.request("DELETE", "/livekit/participant", json=body)

    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST"
    assert list(answer.json()["details"]) == [bad_field]
    assert livekit_emulator.calls == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1]", b'"x"', b"null", b"\xff\xfe{", b"[" * 60000],
    ids=["empty", "text", "array", "string", "null", "bad-utf8", "deeply-nested"],
)
def test_bodies_that_are_not_json_objects_are_400(anon, livekit_emulator, raw):
    answer = anon.request("DELETE", "/livekit/participant", data=raw, headers=JSON)

    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST"
    assert livekit_emulator.calls == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/vnd.acme+json"]
)
def test_json_bodies_are_read_and_extra_fields_are_ignored(anon, livekit_emulator, content_type):
    livekit_emulator.add_room("r" * 256)
    livekit_emulator.add_participant("r" * 256, "alice")
    body = json.dumps({"room_name": "r" * 256, "participant_identity": "alice", "reason": "spam"})

    answer = anon.request("DELETE", "/livekit/participant", data=body, headers={"Content-Type": content_type})

    assert answer.status_code == 200
    assert livekit_emulator.participant("r" * 256, "alice") is None


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"],
)
def test_bodies_not_sent_as_json_are_415_before_anything_else(tenants, livekit_emulator, content_type):
    # What a cross-site <form enctype="text/plain"> can send without a CORS preflight.
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    body = json.dumps({"room_name": "room-1", "participant_identity": "alice"}) + "="
    headers = {} if content_type is None else {"Content-Type": content_type}

    for token in (None, "wrong-token", TOKEN_A):
        answer = tenants.request("DELETE", "/livekit/participant", token, data=body, headers=headers)
        assert answer.status_code == 415
        assert answer.json() == {
            "error": "Send the request body as JSON with 'Content-Type: application/json'.",
            "code": "UNSUPPORTED_MEDIA_TYPE",
        }
    assert livekit_emulator.calls == []
    assert livekit_emulator.participant("room-1", "alice") is not None


def test_bodies_over_64_kib_are_413(anon, livekit_emulator):
    padding = "x" * (64 * 1024)
    answer = anon.request("DELETE", "/livekit/participant", json={**VALID, "padding": padding})

    assert answer.status_code == 413
    assert answer.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert livekit_emulator.calls == []


def test_chunked_bodies_over_64_kib_are_413(make_served_over_http, livekit_emulator):
    anon = make_served_over_http()  # chunked framing is decoded by a real server
    chunks = (b"x" * 8192 for _ in range(10))

    answer = anon.request("DELETE", "/livekit/participant", data=chunks, headers=JSON)

    assert answer.status_code == 413
    assert answer.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "code, expected",
    [
        ("unavailable", "LIVEKIT_UNAVAILABLE"),
        ("internal", "LIVEKIT_UNAVAILABLE"),
        ("invalid_argument", "REMOVAL_FAILED"),
        ("permission_denied", "REMOVAL_FAILED"),
        ("unauthenticated", "LIVEKIT_AUTH_FAILED"),
    ],
)
def test_livekit_refusals_answer_their_code(anon, livekit_emulator, code, expected):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    livekit_emulator.fail_next("RemoveParticipant", code=code)

    answer = anon.remove("room-1", "alice")

    assert answer.status_code == errors.BY_CODE[expected].status
    assert answer.json()["code"] == expected
    assert livekit_emulator.participant("room-1", "alice") is not None


def test_a_wrong_livekit_secret_is_reported_as_such(make_served, livekit_emulator):
    served = make_served(LIVEKIT_API_SECRET="not-the-secret-" + "x" * 20)
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    answer = served.remove("room-1", "alice")

    assert answer.status_code == 500
    assert answer.json()["code"] == "LIVEKIT_AUTH_FAILED"
    assert livekit_emulator.calls[0].status == 401
    assert livekit_emulator.participant("room-1", "alice") is not None


def test_each_action_logs_one_line_without_secrets(tenants, livekit_emulator, caplog):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_participant("room-a", "alice")
    caplog.set_level(logging.DEBUG)

    tenants.remove("room-a", "alice", TOKEN_A)

    lines = [r.getMessage() for r in caplog.records if r.name == "flask_livekit_moderation"]
    assert len(lines) == 1
    assert "action=remove" in lines[0] and "auth_id='tenant-a'" in lines[0]
    assert "room='room-a'" in lines[0] and "identity='alice'" in lines[0]
    assert "outcome=removed" in lines[0] and "livekit_calls=ListRooms,RemoveParticipant" in lines[0]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN_A not in everything and livekit_emulator.api_secret not in everything
