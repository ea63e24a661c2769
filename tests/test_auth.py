"""The auth hook: token transports, precedence, secrets, resolvers, the 401s."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, jsonify

from flask_livekit_moderation import ALL_ROOMS, LiveKitModeration, current_auth, room_metadata
from tests.helpers import TENANTS, TOKEN_A, TOKEN_B, in_process, livekit_config


@pytest.fixture
def rooms(livekit_emulator):
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    for room in ("room-a", "room-b"):
        livekit_emulator.add_participants(room, ["p1", "p2", "p3", "p4"])
    return livekit_emulator


def test_no_token_is_401_missing_token(tenants, rooms):
    answer = tenants.remove("room-a", "p1")

    assert answer.status_code == 401
    assert answer.json()["code"] == "MISSING_TOKEN"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert rooms.calls == []


@pytest.mark.parametrize("token", ["wrong", TOKEN_A[:-1], TOKEN_A + "x", TOKEN_A[:-1] + "X", "secret-a"])
def test_unknown_tokens_are_401_unauthorized(tenants, rooms, token):
    answer = tenants.remove("room-a", "p1", token)

    assert answer.status_code == 401
    assert answer.json()["code"] == "UNAUTHORIZED"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert token not in answer.text
    assert rooms.calls == []


def test_bearer_header_and_query_transports(tenants, rooms):
    assert tenants.remove("room-a", "p1", TOKEN_A).status_code == 200
    via_query = tenants.request(
        "DELETE",
        "/livekit/participant",
        params={"api_key": TOKEN_A},
        json={"room_name": "room-a", "participant_identity": "p2"},
    )
    assert via_query.status_code == 200
    assert rooms.participants("room-a")[0].identity == "p3"


def test_the_header_wins_over_the_query(tenants, rooms):
    # Header says tenant-b, query says tenant-a: the room of tenant-a must be refused.
    answer = tenants.request(
        "DELETE",
        "/livekit/participant",
        token=TOKEN_B,
        params={"api_key": TOKEN_A},
        json={"room_name": "room-a", "participant_identity": "p1"},
    )
    assert answer.status_code == 404
    assert rooms.participant("room-a", "p1") is not None


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token " + TOKEN_B, TOKEN_B]
)
def test_query_is_used_when_the_header_is_not_a_bearer_token(tenants, rooms, header):
    answer = tenants.request(
        "DELETE",
        "/livekit/participant",
        headers={"Authorization": header},
        params={"api_key": TOKEN_A},
        json={"room_name": "room-a", "participant_identity": "p1"},
    )
    assert answer.status_code == 200


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer ", "Token " + TOKEN_A])
def test_a_non_bearer_header_alone_is_a_missing_token(tenants, rooms, header):
    answer = tenants.request(
        "DELETE",
        "/livekit/participant",
        headers={"Authorization": header},
        json={"room_name": "room-a", "participant_identity": "p1"},
    )
    assert answer.status_code == 401 and answer.json()["code"] == "MISSING_TOKEN"


def test_an_empty_api_key_is_a_missing_token(tenants, rooms):
    answer = tenants.request(
        "DELETE",
        "/livekit/participant",
        params={"api_key": ""},
        json={"room_name": "room-a", "participant_identity": "p1"},
    )
    assert answer.status_code == 401 and answer.json()["code"] == "MISSING_TOKEN"


def test_the_bearer_scheme_is_case_insensitive(tenants, rooms):
    answer = tenants.request(
        "DELETE",
        "/livekit/participant",
        headers={"Authorization": "bearer " + TOKEN_A},
        json={"room_name": "room-a", "participant_identity": "p1"},
    )
    assert answer.status_code == 200


def test_several_secrets_map_to_their_own_ids(tenants, rooms):
    assert tenants.remove("room-b", "p1", TOKEN_A).status_code == 404
    assert tenants.remove("room-b", "p1", TOKEN_B).status_code == 200
    assert tenants.remove("room-a", "p1", TOKEN_B).status_code == 404
    assert tenants.remove("room-a", "p1", TOKEN_A).status_code == 200


def test_secrets_may_be_given_as_a_json_string(make_served, rooms):
    import json

    served = make_served(
        LIVEKIT_MODERATION_AUTH_REQUIRED="true", LIVEKIT_MODERATION_API_SECRETS=json.dumps(TENANTS)
    )
    assert served.remove("room-b", "p1", TOKEN_B).status_code == 200


def test_auth_off_ignores_tokens(anon, rooms):
    assert anon.remove("room-a", "p1", "garbage-token").status_code == 200
    assert anon.remove("room-b", "p1", TOKEN_A).status_code == 200
    assert rooms.call_names() == ["RemoveParticipant", "RemoveParticipant"]


def _resolver_app(emulator, resolver, secrets=()):
    app = Flask("resolver-host")
    app.config.update(
        livekit_config(emulator),
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=list(secrets),
    )
    moderation = LiveKitModeration()
    moderation.auth_resolver(resolver)
    moderation.init_app(app)

    @app.get("/whoami")
    def whoami():
        return jsonify(auth_id=current_auth().auth_id)

    return app


def test_sync_resolver(rooms):
    seen = []

    def resolve(token):
        seen.append(token)
        return {"tok-a": "tenant-a", "tok-b": "tenant-b"}.get(token)

    with in_process(_resolver_app(rooms, resolve)) as served:
        assert served.remove("room-a", "p1", "tok-b").status_code == 404
        assert served.remove("room-a", "p1", "tok-a").status_code == 200
        assert served.remove("room-a", "p2", "tok-x").json()["code"] == "UNAUTHORIZED"
    assert seen == ["tok-b", "tok-a", "tok-x"]


def test_async_resolver(rooms):
    async def resolve(token):
        return "tenant-b" if token == "async-b" else None

    with in_process(_resolver_app(rooms, resolve)) as served:
        assert served.remove("room-b", "p1", "async-b").status_code == 200
        assert served.remove("room-b", "p2", "nope").status_code == 401


def test_resolver_is_asked_only_when_no_secret_matches(rooms):
    seen = []

    def resolve(token):
        seen.append(token)
        return None

    with in_process(_resolver_app(rooms, resolve, secrets=TENANTS)) as served:
        assert served.remove("room-a", "p1", TOKEN_A).status_code == 200
        assert served.remove("room-a", "p2", "other").status_code == 401
    assert seen == ["other"]


@pytest.mark.parametrize("resolved", ["", "   ", "\t\n"])
def test_a_blank_auth_id_is_401_never_anonymous(rooms, resolved):
    # A half-provisioned tenant row must not become a key to every tenant's rooms.
    with in_process(_resolver_app(rooms, lambda token: resolved)) as served:
        listing = served.request("GET", "/livekit/participants", "t", params={"room_name": "room-b"})
        assert (listing.status_code, listing.json()["code"]) == (401, "UNAUTHORIZED")
        removal = served.remove("room-b", "p1", "t")
        assert (removal.status_code, removal.json()["code"]) == (401, "UNAUTHORIZED")
    assert rooms.calls == []


def test_all_rooms_from_a_resolver_is_anonymous_access(rooms):
    with in_process(_resolver_app(rooms, lambda token: ALL_ROOMS if token == "admin" else None)) as served:
        assert served.request("GET", "/livekit/participants", "admin", params={"room_name": "room-b"}).ok
        assert served.remove("room-a", "p1", "admin").status_code == 200
        assert served.remove("room-a", "p2", "other").status_code == 401
    # Anonymous callers skip the room check: no ListRooms.
    assert rooms.call_names() == ["ListParticipants", "RemoveParticipant"]


def test_current_auth_is_on_g_for_the_request(rooms):
    app = _resolver_app(rooms, lambda token: "tenant-a")
    seen = []

    from flask_livekit_moderation import signals

    @signals.participant_removed.connect_via(app)
    def record(sender, **data):
        seen.append(current_auth().auth_id)

    with in_process(app) as served:
        assert served.remove("room-a", "p1", "t").status_code == 200
    assert seen == ["tenant-a"]


def test_api_key_values_are_redacted_from_access_logs(make_served_over_http, rooms, caplog):
    # The access log is written by the real server (werkzeug's request handler).
    tenants = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS
    )
    caplog.set_level(logging.INFO, logger="werkzeug")

    tenants.request("GET", "/livekit/participants", params={"room_name": "room-a", "api_key": TOKEN_A})
    tenants.request("GET", "/livekit/participants?room_name=room-a&api%5Fkey=" + TOKEN_B)

    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 2
    assert all("=[REDACTED]" in line for line in lines)
    assert TOKEN_A not in caplog.text and TOKEN_B not in caplog.text


def test_options_needs_no_token_and_acts_on_nothing(tenants, rooms):
    answer = tenants.request("OPTIONS", "/livekit/participant")

    assert answer.status_code == 200
    assert "DELETE" in answer.headers["Allow"]
    assert rooms.calls == []
