"""The ban routes and the webhook in the OpenAPI document: every status and code each one can
answer is provoked (through the app's test client; LiveKit is the real-HTTP stand-in) and
compared with what the document lists; every answer's body is validated against the schema
documented for its status.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import WEBHOOK, joined, signed
from tests.helpers import JSON, SCOPED_TENANTS, TEXT, TOKEN_A, TOKEN_NO_SCOPE, ServedApp, in_process
from tests.openapi_checks import (
    KEYED,
    ONE_SLOT,
    documented,
    failing_resolver_app,
    observed,
    retried,
    validate_answer,
    while_busy,
)

BAN = ("/livekit/bans", "post")
LIST = ("/livekit/bans", "get")
LIFT = ("/livekit/bans", "delete")
HOOK = ("/livekit/webhook", "post")
WRONG_SECRET = "not-the-secret-0123456789abcdefghijklmn"


@dataclass
class Apps:
    anon: ServedApp
    tenants: ServedApp
    unconfigured: ServedApp
    wrong_secret: ServedApp
    failing_resolver: ServedApp
    one_slot: ServedApp
    broken_store: ServedApp
    corrupt_store: ServedApp
    #: Anonymous, keys in memory, a short deadline; and anonymous with a broken store.
    keyed: ServedApp
    keyed_broken_store: ServedApp


@pytest.fixture
def apps(make_served: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator, tmp_path: Path) -> Apps:
    shared = f"sqlite:///{tmp_path}/shared.sqlite3"
    tenants = {"LIVEKIT_MODERATION_AUTH_REQUIRED": True, "LIVEKIT_MODERATION_API_SECRETS": SCOPED_TENANTS}
    (tmp_path / "a-file").write_text("")
    corrupt = tmp_path / "corrupt.sqlite3"
    return Apps(
        anon=make_served(LIVEKIT_MODERATION_BAN_STORE=shared),
        tenants=make_served(LIVEKIT_MODERATION_BAN_STORE=shared, **tenants),
        unconfigured=make_served(
            LIVEKIT_URL="",
            LIVEKIT_API_KEY="",
            LIVEKIT_API_SECRET="",
            LIVEKIT_MODERATION_BAN_STORE=shared,
            **tenants,
        ),
        wrong_secret=make_served(
            LIVEKIT_API_SECRET=WRONG_SECRET, LIVEKIT_MODERATION_BAN_STORE=shared, **tenants
        ),
        failing_resolver=in_process(
            failing_resolver_app(livekit_emulator, LIVEKIT_MODERATION_BAN_STORE=shared)
        ),
        one_slot=make_served(**ONE_SLOT, LIVEKIT_MODERATION_BAN_STORE=shared, **tenants),
        broken_store=make_served(
            LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/a-file/x.sqlite3", **tenants
        ),
        # Not TESTING: an unexpected failure is answered 500 INTERNAL_ERROR, not propagated.
        corrupt_store=make_served(
            TESTING=False,
            LIVEKIT_MODERATION_AUTH_REQUIRED=False,
            LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{corrupt}",
        ),
        keyed=make_served(**KEYED),
        keyed_broken_store=make_served(LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/a-file/y.sqlite3"),
    )


def _ban(
    served: ServedApp, room: str = "room-a", identity: str = "troll", token: str | None = TOKEN_A
) -> Any:
    body = {"room_name": room, "participant_identity": identity, "duration_seconds": 600}
    return served.request("POST", "/livekit/bans", token, json=body)


def _provoke_ban(apps: Apps, emu: LiveKitEmulator) -> list[requests.Response]:
    path = "/livekit/bans"
    answers = [apps.tenants.request("POST", path, TOKEN_A, json={})]
    answers.append(apps.tenants.request("POST", path, TOKEN_A, data=b" " * 70_000, headers=JSON))
    answers.append(apps.tenants.request("POST", path, TOKEN_A, data=b"{}", headers=TEXT))
    answers += [_ban(apps.tenants, token=None), _ban(apps.tenants, token="wrong-token")]
    answers.append(_ban(apps.tenants, token=TOKEN_NO_SCOPE))
    answers += [_ban(apps.failing_resolver, token="x"), _ban(apps.failing_resolver, token="forbidden")]
    answers.append(_ban(apps.tenants, room="room-1"))  # not tenant-a's: masked
    answers += [_ban(apps.unconfigured), _ban(apps.wrong_secret), _ban(apps.broken_store)]
    emu.fail_next("ListRooms", code="unavailable")
    answers.append(_ban(apps.tenants))
    emu.fail_next("RemoveParticipant", code="permission_denied")
    answers.append(_ban(apps.tenants))
    answers.append(while_busy(emu, lambda: _ban(apps.one_slot)))
    answers.append(_ban(apps.tenants))
    body = {"room_name": "room-a", "participant_identity": "keyed", "duration_seconds": 600}
    bodies = (body, {**body, "duration_seconds": 60})
    answers += retried(apps.keyed, apps.keyed_broken_store, emu, "POST", path, bodies, "RemoveParticipant")
    return answers


def _provoke_list(apps: Apps, emu: LiveKitEmulator) -> list[requests.Response]:
    def listing(served: ServedApp, room: str = "room-a2", token: str | None = TOKEN_A) -> Any:
        return served.request("GET", "/livekit/bans", token, params={"room_name": room})

    answers = [apps.tenants.request("GET", "/livekit/bans", TOKEN_A), listing(apps.tenants, token=None)]
    answers += [listing(apps.tenants, token="wrong-token"), listing(apps.failing_resolver, token="x")]
    answers.append(listing(apps.tenants, token=TOKEN_NO_SCOPE))
    answers += [listing(apps.failing_resolver, token="forbidden"), listing(apps.tenants, room="room-1")]
    answers += [listing(apps.unconfigured), listing(apps.wrong_secret), listing(apps.broken_store)]
    for code in ("unavailable", "permission_denied"):
        emu.fail_next("ListRooms", code=code)
        answers.append(listing(apps.tenants))
    answers.append(while_busy(emu, lambda: listing(apps.one_slot)))
    answers += [
        listing(apps.tenants),
        listing(apps.tenants, room="room-a"),
        listing(apps.anon, "room-1", None),
    ]
    return answers


def _provoke_lift(apps: Apps, emu: LiveKitEmulator) -> list[requests.Response]:
    def lift(served: ServedApp, identity: str = "troll", token: str | None = TOKEN_A) -> Any:
        return served.request(
            "DELETE", "/livekit/bans", token, json={"room_name": "room-a", "participant_identity": identity}
        )

    path = "/livekit/bans"
    answers = [apps.tenants.request("DELETE", path, TOKEN_A, json={"room_name": "room-a"})]
    answers.append(apps.tenants.request("DELETE", path, TOKEN_A, data=b"{" * 70_000, headers=JSON))
    answers.append(apps.tenants.request("DELETE", path, TOKEN_A, data=b"{}", headers=TEXT))
    answers += [lift(apps.tenants, token=None), lift(apps.tenants, token="wrong-token")]
    answers.append(lift(apps.tenants, token=TOKEN_NO_SCOPE))
    answers += [lift(apps.failing_resolver, token="x"), lift(apps.failing_resolver, token="forbidden")]
    answers += [lift(apps.tenants, "nobody"), lift(apps.broken_store), lift(apps.tenants)]
    bodies = (
        {"room_name": "room-a", "participant_identity": "x"},
        {"room_name": "room-a", "participant_identity": "y"},
    )
    answers += retried(apps.keyed, apps.keyed_broken_store, emu, "DELETE", path, bodies, None)
    return answers


def _provoke_webhook(apps: Apps, emu: LiveKitEmulator, tmp_path: Path) -> list[requests.Response]:
    def hook(served: ServedApp, body: bytes, headers: dict[str, str]) -> Any:
        return served.request("POST", WEBHOOK, data=body, headers=headers)

    emu.join("room-a", "troll", tracks=[])
    event = joined(emu, "room-a", "troll")
    body, headers = signed(emu, event)
    for served in (apps.anon, apps.corrupt_store):
        assert _ban(served, token=None).status_code == 201
    with sqlite3.connect(tmp_path / "corrupt.sqlite3") as db:  # someone edited the file by hand
        db.execute("UPDATE livekit_moderation_bans SET banned_at = 'yesterday'")
    answers = [
        hook(apps.anon, *signed(emu, b'{"event": []}')),
        hook(apps.anon, body, {"Content-Type": "application/webhook+json"}),
        hook(apps.anon, *signed(emu, b" " * (256 * 1024 + 1))),
        hook(apps.anon, body, {**headers, "Content-Type": "application/json"}),
        hook(apps.unconfigured, body, headers),
        hook(apps.wrong_secret, *signed(emu, event, secret=WRONG_SECRET)),
        hook(apps.broken_store, body, headers),
        hook(apps.corrupt_store, body, headers),
    ]
    for method, code in (("ListRooms", "unavailable"), ("RemoveParticipant", "permission_denied")):
        emu.fail_next(method, code=code)
        answers.append(hook(apps.anon, body, headers))
    ids = iter(range(1000))

    def another_event() -> tuple[bytes, dict[str, str]]:
        other = WebhookEvent()
        other.CopyFrom(event)
        other.id = f"EV_busy{next(ids)}"
        return signed(emu, other)

    answers.append(while_busy(emu, lambda: hook(apps.one_slot, *another_event())))
    # The same event delivered twice at once: the second is told to come back.
    answers.append(while_busy(emu, lambda: hook(apps.anon, body, headers)))
    answers.append(hook(apps.anon, body, headers))
    assert emu.participant("room-a", "troll") is None
    # The enforcement's RemoveParticipant answered after the deadline: it may have been done.
    assert _ban(apps.keyed, token=None).status_code == 201
    emu.join("room-a", "troll", tracks=[])
    emu.set_latency(1.0, method="RemoveParticipant")
    try:
        answers.append(hook(apps.keyed, *signed(emu, joined(emu, "room-a", "troll"))))
    finally:
        emu.set_latency(0, method="RemoveParticipant")
    assert answers[-1].json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN", answers[-1].text
    assert emu.wait_idle(5)
    return answers


AUDIT = ("/livekit/audit", "get")


def _provoke_audit(apps: Apps) -> list[requests.Response]:
    def audit(served: ServedApp, token: str | None = TOKEN_A, **params: Any) -> Any:
        return served.request("GET", "/livekit/audit", token, params=params)

    return [
        audit(apps.tenants, limit=0),
        audit(apps.tenants, token=None),
        audit(apps.tenants, token="wrong-token"),
        audit(apps.failing_resolver, token="x"),
        audit(apps.failing_resolver, token="forbidden"),
        audit(apps.tenants, token=TOKEN_NO_SCOPE),
        audit(apps.broken_store),
        audit(apps.tenants, room_name="room-a"),  # the bans above, and their refusals
    ]


def test_each_ban_route_documents_exactly_the_answers_it_gives(
    apps: Apps, livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    emu.add_room("room-1")
    emu.add_room("room-a", metadata=room_metadata("tenant-a"))
    emu.add_room("room-a2", metadata=room_metadata("tenant-a"))
    document = apps.anon.request("GET", "/livekit/openapi.json").json()

    provoked = {
        BAN: _provoke_ban(apps, emu),
        LIST: _provoke_list(apps, emu),
        LIFT: _provoke_lift(apps, emu),
        HOOK: _provoke_webhook(apps, emu, tmp_path),
    }
    provoked[AUDIT] = _provoke_audit(apps)
    assert provoked[AUDIT][-1].json()["entries"]

    for (path, method), answers in provoked.items():
        assert observed(answers) == documented(document, path, method), f"{method.upper()} {path}"
        for answer in answers:
            validate_answer(document, path, method, answer)
    assert document["paths"]["/livekit/webhook"]["post"]["security"] == []
    assert list(document["paths"]["/livekit/webhook"]["post"]["requestBody"]["content"]) == [
        "application/webhook+json"
    ]
