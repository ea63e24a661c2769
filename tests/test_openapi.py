"""GET /livekit/openapi.json: a valid OpenAPI 3.1 document that says what the routes do.

The central check provokes every status and error code each route can answer (through the
app's test client; LiveKit is the real-HTTP stand-in) and compares that set with the one the
document lists; every answer's body is also validated against the schema documented for its
status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.config import MAX_BODY_BYTES
from tests.helpers import JSON, SCOPED_TENANTS, TEXT, TOKEN_A, TOKEN_NO_SCOPE, ServedApp, in_process
from tests.openapi_checks import (
    KEYED,
    ONE_SLOT,
    documented,
    failing_resolver_app,
    observed,
    openapi_document,
    retried,
    validate_answer,
    while_busy,
)
from tests.redis_server import free_port

REMOVE = ("/livekit/participant", "delete")
MUTE = ("/livekit/participant/mute", "post")
LIST = ("/livekit/participants", "get")
OPENAPI = ("/livekit/openapi.json", "get")


@dataclass
class Apps:
    """One app per configuration needed to reach every answer."""

    anon: ServedApp
    tenants: ServedApp
    unconfigured: ServedApp
    wrong_secret: ServedApp
    failing_resolver: ServedApp
    one_slot: ServedApp
    #: Keys in memory, a short deadline (:func:`~tests.openapi_checks.retried`).
    keyed: ServedApp
    broken_store: ServedApp


@pytest.fixture
def apps(make_served: Callable[..., ServedApp], livekit_emulator: Any) -> Apps:
    return Apps(
        anon=make_served(),
        tenants=make_served(
            LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=SCOPED_TENANTS
        ),
        unconfigured=make_served(LIVEKIT_URL="", LIVEKIT_API_KEY="", LIVEKIT_API_SECRET=""),
        wrong_secret=make_served(LIVEKIT_API_SECRET="not-the-secret-0123456789abcdefghijklmn"),
        failing_resolver=in_process(failing_resolver_app(livekit_emulator)),
        one_slot=make_served(**ONE_SLOT),
        keyed=make_served(**KEYED),
        broken_store=make_served(LIVEKIT_MODERATION_BAN_STORE=f"redis://127.0.0.1:{free_port()}/0"),
    )


def _provoke_remove(apps: Apps, emu: Any) -> list[requests.Response]:
    def remove(served: ServedApp, identity: str = "alice", token: str | None = None) -> requests.Response:
        return served.remove("room-1", identity, token)

    answers = [apps.anon.request("DELETE", "/livekit/participant", json={})]
    answers.append(apps.anon.request("DELETE", "/livekit/participant", data=b"not json", headers=JSON))
    answers.append(
        apps.anon.request("DELETE", "/livekit/participant", data=b" " * (MAX_BODY_BYTES + 1), headers=JSON)
    )
    answers.append(apps.anon.request("DELETE", "/livekit/participant", data=b"{}", headers=TEXT))
    answers += [remove(apps.tenants), remove(apps.tenants, token="wrong-token")]
    answers.append(remove(apps.tenants, token=TOKEN_NO_SCOPE))
    answers.append(remove(apps.anon, "nobody"))
    answers.append(remove(apps.tenants, token=TOKEN_A))  # room-1 is not tenant-a's: masked
    answers += [
        remove(apps.unconfigured),
        remove(apps.wrong_secret),
        remove(apps.failing_resolver, token="x"),
        remove(apps.failing_resolver, token="forbidden"),
    ]
    for code in ("unavailable", "internal", "permission_denied", "invalid_argument"):
        emu.fail_next("RemoveParticipant", code=code)
        answers.append(remove(apps.anon))
    emu.drop_next("RemoveParticipant", 2)  # the pooled connection, then the fresh one
    answers.append(remove(apps.anon))
    answers.append(while_busy(emu, lambda: remove(apps.one_slot, "nobody")))
    answers.append(remove(apps.anon))  # finally succeeds
    bodies = ({"room_name": "room-1", "participant_identity": "nobody"}, {"room_name": "room-1"})
    bodies[1]["participant_identity"] = "somebody"
    answers += retried(apps.keyed, apps.broken_store, emu, "DELETE", REMOVE[0], bodies, "RemoveParticipant")
    return answers


def _provoke_mute(apps: Apps, emu: Any, track_sid: str) -> list[requests.Response]:
    def mute(
        served: ServedApp,
        muted: bool = True,
        sid: str = track_sid,
        token: str | None = None,
        identity: str = "bob",
    ) -> requests.Response:
        return served.mute("room-1", identity, sid, muted, token)

    answers = [apps.anon.request("POST", "/livekit/participant/mute", json={"room_name": "room-1"})]
    answers.append(apps.anon.request("POST", "/livekit/participant/mute", json=[1]))
    answers.append(
        apps.anon.request("POST", "/livekit/participant/mute", data=b"{" * (MAX_BODY_BYTES + 1), headers=JSON)
    )
    answers.append(apps.anon.request("POST", "/livekit/participant/mute", data=b"{}", headers=TEXT))
    answers += [mute(apps.tenants), mute(apps.tenants, token="wrong-token")]
    answers.append(mute(apps.tenants, token=TOKEN_NO_SCOPE))
    answers += [mute(apps.anon, identity="nobody"), mute(apps.anon, sid="TR_unknown")]
    answers += [mute(apps.unconfigured), mute(apps.wrong_secret), mute(apps.failing_resolver, token="x")]
    answers.append(mute(apps.failing_resolver, token="forbidden"))
    answers.append(mute(apps.anon, muted=False))  # remote unmute is off: LiveKit's default
    answers.append(while_busy(emu, lambda: mute(apps.one_slot)))
    for method, code in (
        ("GetParticipant", "unavailable"),
        ("GetParticipant", "permission_denied"),
        ("MutePublishedTrack", "permission_denied"),
        ("MutePublishedTrack", "internal"),
    ):
        emu.fail_next(method, code=code)
        answers.append(mute(apps.anon))
    answers.append(mute(apps.anon))
    body = {"room_name": "room-1", "participant_identity": "bob", "track_sid": track_sid, "muted": True}
    bodies = (body, {**body, "muted": False})
    answers += retried(apps.keyed, apps.broken_store, emu, "POST", MUTE[0], bodies, "MutePublishedTrack")
    return answers


def _provoke_list(apps: Apps, emu: Any) -> list[requests.Response]:
    def listing(served: ServedApp, room: str = "room-1", token: str | None = None) -> requests.Response:
        return served.participants(room, token)

    answers = [apps.anon.request("GET", "/livekit/participants"), listing(apps.anon, " ")]
    answers += [listing(apps.tenants), listing(apps.tenants, token="wrong-token")]
    answers.append(listing(apps.tenants, token=TOKEN_NO_SCOPE))
    answers += [listing(apps.tenants, "no-such-room", TOKEN_A), listing(apps.tenants, token=TOKEN_A)]
    answers += [
        listing(apps.unconfigured),
        listing(apps.wrong_secret),
        listing(apps.failing_resolver, token="x"),
        listing(apps.failing_resolver, token="forbidden"),
    ]
    for code in ("unavailable", "permission_denied"):
        emu.fail_next("ListParticipants", code=code)
        answers.append(listing(apps.anon))
    emu.garbage_next("ListParticipants")
    answers.append(listing(apps.anon))
    answers.append(while_busy(emu, lambda: listing(apps.one_slot)))
    answers += [
        listing(apps.anon),
        listing(apps.anon, "no-such-room"),
        listing(apps.tenants, "room-a", TOKEN_A),
    ]
    # The listing reads no body, so a huge one is no 413.
    answers.append(
        apps.anon.request("GET", "/livekit/participants", params={"room_name": "room-1"}, data=b" " * 70_000)
    )
    return answers


def test_each_route_documents_exactly_the_answers_it_gives(apps, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_participants("room-1", ["alice", "bob"])
    bob = livekit_emulator.participant("room-1", "bob")
    track_sid = bob.tracks[0].sid
    document = openapi_document(apps.anon)

    provoked = {
        REMOVE: _provoke_remove(apps, livekit_emulator),
        MUTE: _provoke_mute(apps, livekit_emulator, track_sid),
        LIST: _provoke_list(apps, livekit_emulator),
        OPENAPI: [
            apps.tenants.request("GET", "/livekit/openapi.json"),
            apps.tenants.request("GET", "/livekit/openapi.json", "wrong-token"),
        ],
    }

    for (path, method), answers in provoked.items():
        assert observed(answers) == documented(document, path, method), f"{method.upper()} {path}"
        for answer in answers:
            validate_answer(document, path, method, answer)
    assert livekit_emulator.participant("room-1", "alice") is None  # the final removal worked


def test_the_document_is_valid_openapi_3_1(anon):
    document = openapi_document(anon)

    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_route_of_the_blueprint_isdocumented(anon):
    document = openapi_document(anon)

    routed = {
        (rule.rule, method.lower())
        for rule in anon.app.url_map.iter_rules()
        if rule.endpoint.startswith("livekit_moderation.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert documented == routed


def test_security_schemes_are_the_bearer_header_and_the_api_key_query(anon):
    document = openapi_document(anon)

    schemes = document["components"]["securitySchemes"]
    by_type = {scheme["type"]: scheme for scheme in schemes.values()}
    assert by_type["http"]["scheme"] == "bearer"
    assert by_type["apiKey"]["in"] == "query" and by_type["apiKey"]["name"] == "api_key"
    either: list[dict[str, list[str]]] = [{name: []} for name in schemes]
    for path, method in (REMOVE, MUTE, LIST):
        assert sorted(map(str, document["paths"][path][method]["security"])) == sorted(map(str, either))
    assert document["paths"]["/livekit/openapi.json"]["get"]["security"] == []


def test_request_schemas_are_the_ones_that_validate(anon, livekit_emulator):
    document = openapi_document(anon)
    schemas = document["components"]["schemas"]

    for path, method in (REMOVE, MUTE):
        ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        required = schemas[ref.rsplit("/", 1)[1]]["required"]
        answer = anon.request(method.upper(), path, json={})
        assert sorted(answer.json()["details"]) == sorted(required)
    parameters = {p["name"]: p for p in document["paths"]["/livekit/participants"]["get"]["parameters"]}
    assert sorted(parameters) == ["cursor", "limit", "room_name", "tracks"]
    assert all(p["in"] == "query" for p in parameters.values())
    assert {name: p.get("required", False) for name, p in parameters.items()} == {
        "room_name": True,
        "limit": False,
        "cursor": False,
        "tracks": False,
    }
    parameter = parameters["room_name"]
    longest = parameter["schema"]["maxLength"]
    assert anon.participants("r" * longest).status_code == 200
    assert anon.participants("r" * (longest + 1)).status_code == 400


def test_the_document_is_public_when_auth_is_required(tenants, livekit_emulator):
    anonymous = tenants.request("GET", "/livekit/openapi.json")
    with_bad_token = tenants.request("GET", "/livekit/openapi.json", "not-a-secret")

    assert anonymous.status_code == 200 and with_bad_token.status_code == 200
    assert anonymous.content == with_bad_token.content
    assert livekit_emulator.calls == []


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_disabled_it_is_a_json_404(make_served, prefix):
    served = make_served(LIVEKIT_MODERATION_OPENAPI=False, LIVEKIT_MODERATION_URL_PREFIX=prefix)

    answer = served.request("GET", prefix + "/livekit/openapi.json")

    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["code"] == "NOT_FOUND"
    # The routes themselves still work.
    assert (
        served.request("GET", prefix + "/livekit/participants", params={"room_name": "r"}).status_code == 200
    )


def test_the_url_prefix_is_honoured(make_served):
    served = make_served(LIVEKIT_MODERATION_URL_PREFIX="/api/v1")

    document = openapi_document(served, "/api/v1")

    assert document["paths"]
    assert all(path.startswith("/api/v1/livekit/") for path in document["paths"])
    assert served.request("GET", "/livekit/openapi.json").status_code == 404
    # Each documented path is routed: the listing without its parameter is a 400, not a 404.
    assert served.request("GET", "/api/v1/livekit/participants").status_code == 400
    assert served.request("DELETE", "/api/v1/livekit/participant", json={}).status_code == 400
    assert served.request("POST", "/api/v1/livekit/participant/mute", json={}).status_code == 400
