"""Scoped credentials: a request outside its credential's scopes is 403 INSUFFICIENT_SCOPE, decided
before LiveKit and whatever the room; unknown scope names fail at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_livekit_moderation import AuthContext, LiveKitModeration, room_metadata
from flask_livekit_moderation.config import ConfigurationError
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import MASKED_404, InProcessApp, host_app, in_process, livekit_config

MUTER = "muter-secret-0123456789"
ADMIN = "admin-secret-0123456789"
OTHER = "other-secret-0123456789"
SECRETS = [
    {"id": "tenant-a", "secret": MUTER, "scopes": ["mute"], "actor": "support-agent"},
    {"id": "tenant-a", "secret": ADMIN, "actor": "alice"},
    {"id": "tenant-b", "secret": OTHER},
]
#: Rooms: the caller's own, another tenant's, and one that does not exist.
ROOMS = ("room-a", "room-b", "no-such-room")


@pytest.fixture
def served(livekit_emulator: LiveKitEmulator) -> InProcessApp:
    emu = livekit_emulator
    emu.add_room("room-a", metadata=room_metadata("tenant-a"))
    emu.add_room("room-b", metadata=room_metadata("tenant-b"))
    for room in ("room-a", "room-b"):
        emu.add_participant(room, "troll")
    return in_process(
        host_app(
            emu,
            LIVEKIT_MODERATION_AUTH_REQUIRED=True,
            LIVEKIT_MODERATION_API_SECRETS=SECRETS,
            LIVEKIT_MODERATION_BAN_STORE="memory://",
        )
    )


def _track(emu: LiveKitEmulator, room: str) -> str:
    participant = emu.participant(room, "troll")
    assert participant is not None
    return participant.tracks[0].sid


def test_a_mute_only_credential_mutes(served: InProcessApp, livekit_emulator: LiveKitEmulator) -> None:
    answer = served.mute("room-a", "troll", _track(livekit_emulator, "room-a"), True, MUTER)
    assert answer.status_code == 200, answer.text
    assert answer.json()["muted"] is True
    assert "MutePublishedTrack" in livekit_emulator.call_names()


WRITES_OUTSIDE_MUTE: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "remove": ("DELETE", "/livekit/participant", {}, "remove"),
    "ban": ("POST", "/livekit/bans", {"duration_seconds": 60}, "ban"),
    "lift": ("DELETE", "/livekit/bans", {}, "ban"),
    "permissions": ("POST", "/livekit/participant/permissions", {"can_publish": False}, "permissions"),
    "lock": ("POST", "/livekit/room/lock", {"locked": True}, "lobby"),
    "admit": ("POST", "/livekit/lobby/admit", {"participant_identities": ["troll"]}, "lobby"),
    "deny": ("POST", "/livekit/lobby/deny", {"participant_identities": ["troll"]}, "lobby"),
}


@pytest.mark.parametrize("room", ROOMS)
@pytest.mark.parametrize("route", sorted(WRITES_OUTSIDE_MUTE))
def test_outside_its_scopes_the_answer_is_403_with_no_livekit_call_whatever_the_room(
    served: InProcessApp, livekit_emulator: LiveKitEmulator, route: str, room: str
) -> None:
    method, path, extra, scope = WRITES_OUTSIDE_MUTE[route]
    livekit_emulator.clear_calls()
    body = {"room_name": room, "participant_identity": "troll", **extra}
    answer = served.request(method, path, MUTER, json=body)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": f"This credential lacks the '{scope}' scope this route needs.",
        "code": "INSUFFICIENT_SCOPE",
    }
    assert answer.headers["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{scope}"'
    assert livekit_emulator.call_names() == []
    assert livekit_emulator.participant(room, "troll") is not None or room == "no-such-room"


def test_the_refusal_is_byte_identical_for_every_room(served: InProcessApp) -> None:
    bodies = {served.remove(room, "troll", MUTER).content for room in ROOMS}
    assert len(bodies) == 1


def test_reads_need_read_and_the_audit_log_needs_audit(
    served: InProcessApp, livekit_emulator: LiveKitEmulator
) -> None:
    livekit_emulator.clear_calls()
    assert served.participants("room-a", MUTER).json()["code"] == "INSUFFICIENT_SCOPE"
    listed = served.request("GET", "/livekit/bans", MUTER, params={"room_name": "room-a"})
    assert (listed.status_code, listed.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    lobby = served.request("GET", "/livekit/lobby", MUTER, params={"room_name": "room-a"})
    assert (lobby.status_code, lobby.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert "'read'" in lobby.json()["error"]
    audit = served.request("GET", "/livekit/audit", MUTER)
    assert (audit.status_code, audit.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert "'audit'" in audit.json()["error"]
    assert livekit_emulator.call_names() == []


def test_within_its_scopes_another_tenants_room_is_the_masked_404(
    served: InProcessApp, livekit_emulator: LiveKitEmulator
) -> None:
    answer = served.mute("room-b", "troll", _track(livekit_emulator, "room-b"), True, MUTER)
    assert (answer.status_code, answer.json()) == (404, MASKED_404)
    assert "MutePublishedTrack" not in livekit_emulator.call_names()
    missing = served.mute("no-such-room", "troll", "TR_x", True, MUTER)
    assert (missing.status_code, missing.json()) == (404, MASKED_404)


def test_a_credential_without_scopes_may_do_everything(served: InProcessApp) -> None:
    assert served.remove("room-a", "troll", ADMIN).status_code == 200


@pytest.mark.parametrize(
    "entry, named",
    [
        ({"scopes": ["mute", "kick", "superuser"]}, "'kick', 'superuser'"),
        ({"scopes": "mute"}, "must be a list"),
        ({"scopes": [1]}, "as strings"),
        ({"actor": "  "}, "['actor'] must be a non-blank string"),
    ],
)
def test_unknown_scope_names_and_bad_actors_fail_at_start_up(
    app: Flask, entry: dict[str, Any], named: str
) -> None:
    app.config.update(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=[{"id": "t", "secret": "s-0123456789", **entry}],
    )
    with pytest.raises(ConfigurationError) as raised:
        LiveKitModeration(app)
    assert named in str(raised.value)
    assert "s-0123456789" not in str(raised.value)


def _resolver_app(emu: LiveKitEmulator, resolved: AuthContext, **config: Any) -> Flask:
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(emu), LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    app.config.update(LIVEKIT_MODERATION_BAN_STORE="memory://", **config)
    LiveKitModeration(app, auth_resolver=lambda token: resolved)
    return app


def test_a_resolver_returns_scopes_and_an_actor(livekit_emulator: LiveKitEmulator) -> None:
    emu = livekit_emulator
    emu.add_room("room-a", metadata=room_metadata("tenant-a"))
    emu.add_participant("room-a", "troll")
    served = in_process(
        _resolver_app(emu, AuthContext("tenant-a", scopes=frozenset({"read", "audit"}), actor="bot"))
    )
    assert served.participants("room-a", "any-token").status_code == 200
    emu.clear_calls()
    refused = served.remove("room-a", "troll", "any-token")
    assert (refused.status_code, refused.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert emu.call_names() == []
    (entry,) = served.request("GET", "/livekit/audit", "any-token").json()["entries"]
    assert (entry["actor"], entry["action"], entry["outcome"], entry["status"]) == (
        "bot",
        "remove",
        "INSUFFICIENT_SCOPE",
        403,
    )


def test_a_resolver_naming_an_unknown_scope_is_a_bug_not_a_grant(livekit_emulator: LiveKitEmulator) -> None:
    app = _resolver_app(livekit_emulator, AuthContext("tenant-a", scopes=frozenset({"everything"})))
    with pytest.raises(TypeError, match="unknown scopes: everything"):
        app.test_client().get("/livekit/participants?room_name=r", headers={"Authorization": "Bearer t"})
    app.config["TESTING"] = False
    answer = app.test_client().get("/livekit/participants?room_name=r", headers={"Authorization": "Bearer t"})
    assert (answer.status_code, answer.get_json()["code"]) == (500, "INTERNAL_ERROR")


def test_every_route_with_a_caller_declares_one_known_scope() -> None:
    from flask_livekit_moderation.config import SCOPES
    from flask_livekit_moderation.routes import ROUTES

    scopes = {route.endpoint: route.scope for route in ROUTES if route.caller}
    assert scopes == {
        "remove_participant": "remove",
        "mute_track": "mute",
        "list_participants": "read",
        "update_permissions": "permissions",
        "mute_room": "mute",
        "ban_participant": "ban",
        "list_bans": "read",
        "lift_ban": "ban",
        "list_audit": "audit",
        "lock_room": "lobby",
        "list_lobby": "read",
        "admit": "lobby",
        "deny": "lobby",
    }
    assert set(scopes.values()) <= set(SCOPES)


def test_the_openapi_document_shows_each_routes_scope(anon: InProcessApp) -> None:
    document = anon.request("GET", "/livekit/openapi.json").json()
    remove = document["paths"]["/livekit/participant"]["delete"]
    assert remove["x-required-scope"] == "remove"
    assert "`remove`" in remove["description"]
    assert document["paths"]["/livekit/audit"]["get"]["x-required-scope"] == "audit"
    assert "x-required-scope" not in document["paths"]["/livekit/webhook"]["post"]
