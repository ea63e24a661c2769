"""The OpenAPI document of the permissions and room-mute routes (issue 12) says exactly what
they answer: every documented status and code is provoked over HTTP, nothing else comes back,
and every answer validates against the schema documented for its status."""

from __future__ import annotations

from typing import Any

import requests

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.config import MAX_BODY_BYTES
from tests.helpers import JSON, TEXT, TOKEN_A, TOKEN_NO_SCOPE, ServedApp
from tests.openapi_checks import documented, observed, openapi_document, retried, validate_answer, while_busy
from tests.test_openapi import (  # noqa: F401 - apps is a fixture
    Apps,
    apps,
)

PERMISSIONS = ("/livekit/participant/permissions", "post")
ROOM_MUTE = ("/livekit/room/mute", "post")


def _provoke_permissions(on: Apps, emu: Any) -> list[requests.Response]:
    path = PERMISSIONS[0]

    def update(served: ServedApp, identity: str = "bob", token: str | None = None) -> requests.Response:
        body = {"room_name": "room-1", "participant_identity": identity, "can_publish_sources": ["camera"]}
        return served.request("POST", path, token, json=body)

    answers = [
        on.anon.request("POST", path, json={"room_name": "room-1", "participant_identity": "bob"}),
        on.anon.request("POST", path, json={}),
        # An item error: still {field: [messages]}, as the ErrorResponse schema says.
        on.anon.request(
            "POST", path, json={"room_name": "r", "participant_identity": "a", "can_publish_sources": [None]}
        ),
        on.anon.request("POST", path, data=b" " * (MAX_BODY_BYTES + 1), headers=JSON),
        on.anon.request("POST", path, data=b"{}", headers=TEXT),
        update(on.tenants),
        update(on.tenants, token="wrong-token"),
        update(on.tenants, token=TOKEN_NO_SCOPE),
        update(on.anon, identity="nobody"),
        update(on.tenants, token=TOKEN_A),  # room-1 is not tenant-a's: masked
        update(on.unconfigured),
        update(on.wrong_secret),
        update(on.failing_resolver, token="x"),
        update(on.failing_resolver, token="forbidden"),
        while_busy(emu, lambda: update(on.one_slot)),
    ]
    for method, code in (
        ("GetParticipant", "permission_denied"),
        ("UpdateParticipant", "invalid_argument"),
        ("UpdateParticipant", "unavailable"),
    ):
        emu.fail_next(method, code=code)
        answers.append(update(on.anon))
    answers.append(update(on.anon))
    body = {"room_name": "room-1", "participant_identity": "bob", "can_publish_sources": ["camera"]}
    bodies = (body, {**body, "can_publish_sources": ["microphone"]})
    answers += retried(on.keyed, on.broken_store, emu, "POST", path, bodies, "UpdateParticipant")
    return answers


def _provoke_room_mute(on: Apps, emu: Any) -> list[requests.Response]:
    path = ROOM_MUTE[0]

    def mute(
        served: ServedApp, muted: bool = True, room: str = "room-1", token: str | None = None
    ) -> requests.Response:
        return served.request("POST", path, token, json={"room_name": room, "muted": muted})

    answers = [
        on.anon.request("POST", path, json={"room_name": "room-1", "muted": True, "sources": []}),
        on.anon.request("POST", path, json=[]),
        on.anon.request("POST", path, json={"room_name": "r", "muted": True, "except_identities": [1, " "]}),
        on.anon.request("POST", path, data=b"[" * (MAX_BODY_BYTES + 1), headers=JSON),
        on.anon.request("POST", path, data=b"{}", headers=TEXT),
        mute(on.tenants),
        mute(on.tenants, token="wrong-token"),
        mute(on.tenants, token=TOKEN_NO_SCOPE),
        mute(on.tenants, token=TOKEN_A),  # room-1 is not tenant-a's: masked
        mute(on.unconfigured),
        mute(on.wrong_secret),
        mute(on.failing_resolver, token="x"),
        mute(on.failing_resolver, token="forbidden"),
        mute(on.anon, muted=False),  # remote unmute is off: LiveKit's default
        while_busy(emu, lambda: mute(on.one_slot)),
    ]
    for method, code in (("ListParticipants", "permission_denied"), ("ListParticipants", "unavailable")):
        emu.fail_next(method, code=code)
        answers.append(mute(on.anon))
    emu.fail_next("MutePublishedTrack", code="invalid_argument")
    with_failure = mute(on.anon)
    assert with_failure.status_code == 200 and with_failure.json()["failed"], with_failure.text
    answers += [with_failure, mute(on.tenants, room="room-a", token=TOKEN_A)]
    bodies = (
        {"room_name": "room-1", "muted": True},
        {"room_name": "room-1", "muted": True, "sources": ["camera"]},
    )
    answers += retried(on.keyed, on.broken_store, emu, "POST", path, bodies, "MutePublishedTrack")
    return answers


def test_both_routes_document_exactly_the_answers_they_give(apps, livekit_emulator):  # noqa: F811
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_participants("room-1", ["alice", "bob"])
    livekit_emulator.add_participants("room-a", ["carol"])
    document = openapi_document(apps.anon)

    provoked = {
        PERMISSIONS: _provoke_permissions(apps, livekit_emulator),
        ROOM_MUTE: _provoke_room_mute(apps, livekit_emulator),
    }

    for (path, method), answers in provoked.items():
        assert observed(answers) == documented(document, path, method), f"{method.upper()} {path}"
        for answer in answers:
            validate_answer(document, path, method, answer)
    bob = livekit_emulator.participant("room-1", "bob")
    assert bob is not None and list(bob.permission.can_publish_sources) == [1]  # camera: the last update


def test_the_request_schemas_say_what_is_required(anon):
    document = openapi_document(anon)
    schemas = document["components"]["schemas"]

    permissions = schemas["LiveKitModerationUpdatePermissionsRequest"]
    assert sorted(permissions["required"]) == ["participant_identity", "room_name"]
    assert permissions["anyOf"] == [
        {"required": [name]}
        for name in ("can_publish", "can_publish_sources", "can_subscribe", "can_publish_data")
    ]
    sources = permissions["properties"]["can_publish_sources"]
    assert sources["items"]["enum"] == ["camera", "microphone", "screen_share", "screen_share_audio"]
    room_mute = schemas["LiveKitModerationRoomMuteRequest"]
    assert sorted(room_mute["required"]) == ["muted", "room_name"]
    assert room_mute["properties"]["sources"]["minItems"] == 1
    assert room_mute["properties"]["except_identities"]["maxItems"] == 1000
    failure_codes = schemas["LiveKitModerationRoomMuteFailure"]["properties"]["code"]["enum"]
    assert set(failure_codes) == {
        "TRACK_NOT_FOUND",
        "PARTICIPANT_NOT_FOUND",
        "REMOTE_UNMUTE_DISABLED",
        "LIVEKIT_UNAVAILABLE",
        "MUTE_FAILED",
    }
    for path, method in (PERMISSIONS, ROOM_MUTE):
        answer = anon.request(method.upper(), path, json={})
        ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        required = schemas[ref.rsplit("/", 1)[1]]["required"]
        assert sorted(answer.json()["details"]) == sorted(required)
