"""Host-wide middleware around the extension's routes: the real Flask-Limiter and Flask-WTF.

A host that limits every route per address (Flask-Limiter's ``default_limits``) must not
refuse LiveKit's webhooks, which all come from one address, while its limits per tenant still
apply to the moderation routes; a 429 on those routes is the extension's JSON. A host that
turns on Flask-WTF's ``CSRFProtect`` for the whole app exempts the extension's blueprint: token
callers carry no cookie, and cookie-session writes keep the extension's own CSRF defence
(JSON only: anything else is 415 before the caller is even looked at).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Blueprint, Flask, request, session
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation import LiveKitModeration, ModerationError, current_auth, errors, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import signed
from tests.helpers import JSON, TENANTS, TOKEN_A, TOKEN_B, in_process, livekit_config

#: On top of ``livekit_config``, which already keeps the ban store in memory.
TENANT_CONFIG = {
    "LIVEKIT_MODERATION_AUTH_REQUIRED": True,
    "LIVEKIT_MODERATION_API_SECRETS": TENANTS,
}


@pytest.fixture
def rooms(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    livekit_emulator.add_participants("room-a", ["alice", "bob"])
    livekit_emulator.add_participants("room-b", ["carol"])
    return livekit_emulator


def _tenant_or_address() -> str:
    caller = current_auth()
    return caller.auth_id if caller.is_authenticated and caller.auth_id else str(request.remote_addr)


def _limited_host(
    emu: LiveKitEmulator, *, exempt_webhook: bool, nested: bool = False
) -> tuple[Flask, LiveKitModeration, Limiter]:
    """A host limiting every route to 10 a minute per tenant (else per address)."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(emu), **TENANT_CONFIG)
    limiter = Limiter(_tenant_or_address, app=app, default_limits=["10 per minute"], storage_uri="memory://")
    moderation = LiveKitModeration()
    if nested:
        api = Blueprint("api", __name__)
        moderation.init_app(app, parent=api)
        app.register_blueprint(api, url_prefix="/api")
    else:
        moderation.init_app(app)
    if exempt_webhook:
        limiter.request_filter(moderation.is_webhook_request)

    @app.get("/hello")
    def hello() -> str:  # a route of the host's own, limited like the rest
        return "hello"

    return app, moderation, limiter


def _joined(emu: LiveKitEmulator, room: str, identity: str, number: int) -> WebhookEvent:
    """LiveKit's participant_joined for ``identity``, with its own event id."""
    event = WebhookEvent(event="participant_joined", id=f"EV_{number:04d}", created_at=int(time.time()))
    room_info, participant = emu.room(room), emu.participant(room, identity)
    assert room_info is not None and participant is not None
    event.room.CopyFrom(room_info)
    event.participant.CopyFrom(participant)
    return event


def _deliver(served: Any, emu: LiveKitEmulator, event: WebhookEvent, prefix: str) -> Any:
    body, headers = signed(emu, event)
    return served.request("POST", f"{prefix}/livekit/webhook", data=body, headers=headers)


def _assert_rate_limited(answer: Any, window: int) -> None:
    assert answer.status_code == 429
    assert answer.json() == {"error": errors.RATE_LIMITED.message, "code": "RATE_LIMITED"}
    assert answer.headers["Content-Type"] == "application/json"
    # Flask-Limiter's storages give the reset time rounded up to the second: at most a second more.
    assert 1 <= int(answer.headers["Retry-After"]) <= window + 1


@pytest.mark.parametrize("nested", [False, True], ids=["mounted", "nested"])
def test_every_webhook_passes_a_host_wide_limit_and_tenant_limits_still_apply(rooms, nested):
    app, _, _ = _limited_host(rooms, exempt_webhook=True, nested=nested)
    prefix = "/api" if nested else ""
    with in_process(app) as served:
        banned = served.request(
            "POST",
            f"{prefix}/livekit/bans",
            TOKEN_A,
            json={"room_name": "room-a", "participant_identity": "troll", "duration_seconds": 600},
        )
        assert banned.status_code == 201
        # 45 joins in room-a, the last one the banned troll's: one address, no limit.
        rooms.add_participants("room-a", [f"guest-{n}" for n in range(44)], tracks=[])
        rooms.join("room-a", "troll", tracks=[])
        answers = [
            _deliver(served, rooms, _joined(rooms, "room-a", identity, n), prefix)
            for n, identity in enumerate([*(f"guest-{n}" for n in range(44)), "troll"])
        ]
        assert [a.status_code for a in answers] == [200] * 45
        assert [a.json()["removed"] for a in answers] == [False] * 44 + [True]
        assert rooms.participant("room-a", "troll") is None  # the ban was enforced

        # Tenant A's listings: Flask-Limiter keeps a bucket per route, ten pass, the eleventh is
        # the extension's 429, answered before the extension asked LiveKit anything.
        listings = [
            served.request("GET", f"{prefix}/livekit/participants", TOKEN_A, params={"room_name": "room-a"})
            for _ in range(10)
        ]
        assert [a.status_code for a in listings] == [200] * 10
        rooms.clear_calls()
        refused = served.request(
            "GET", f"{prefix}/livekit/participants", TOKEN_A, params={"room_name": "room-a"}
        )
        _assert_rate_limited(refused, 60)
        assert rooms.call_names() == []
        # Tenant B has its own bucket.
        other = served.request(
            "GET", f"{prefix}/livekit/participants", TOKEN_B, params={"room_name": "room-b"}
        )
        assert other.status_code == 200


def test_without_the_filter_the_limit_refuses_webhooks_in_the_extensions_shape(rooms):
    app, _, _ = _limited_host(rooms, exempt_webhook=False)
    rooms.add_participants("room-a", [f"guest-{n}" for n in range(12)], tracks=[])
    with in_process(app) as served:
        answers = [_deliver(served, rooms, _joined(rooms, "room-a", f"guest-{n}", n), "") for n in range(12)]
        # What the README's recipe used to do: the 11th delivery from LiveKit's address is refused.
        assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
        _assert_rate_limited(answers[-1], 60)
        # The host's own routes keep the host's own 429.
        own = [served.request("GET", "/hello") for _ in range(11)]
        assert [a.status_code for a in own] == [200] * 10 + [429]
        assert "RATE_LIMITED" not in own[-1].text and own[-1].headers["Content-Type"].startswith("text/html")


def test_the_filter_exempts_only_its_own_instances_webhook(rooms):
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(rooms), **TENANT_CONFIG)
    public = LiveKitModeration(app)
    staff = LiveKitModeration(app, name="livekit_staff", url_prefix="/staff")
    seen: list[tuple[str, bool, bool]] = []

    @app.before_request
    def look() -> None:
        seen.append((request.path, public.is_webhook_request(), staff.is_webhook_request()))

    with in_process(app) as served:
        for path in ("/livekit/webhook", "/staff/livekit/webhook", "/livekit/participants", "/nowhere"):
            served.request("POST" if path.endswith("webhook") else "GET", path)
    assert seen == [
        ("/livekit/webhook", True, False),
        ("/staff/livekit/webhook", False, True),
        ("/livekit/participants", False, False),
        ("/nowhere", False, False),
    ]
    with app.test_request_context("/livekit/webhook"):
        assert public.is_webhook_request() is False  # not routed: no endpoint yet
    assert public.is_webhook_request() is False  # outside a request


def test_a_429_goes_through_the_hosts_own_error_rendering(rooms):
    app, _, _ = _limited_host(rooms, exempt_webhook=True)

    @app.errorhandler(ModerationError)
    def problem(exc: ModerationError) -> Any:
        return {"type": exc.code, "status": exc.status}, exc.status, exc.headers

    with in_process(app) as served:
        answers = [served.participants("room-a", TOKEN_A) for _ in range(11)]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert answers[-1].status_code == 429
    assert answers[-1].json() == {"type": "RATE_LIMITED", "status": 429}
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 61


# -- Flask-WTF's CSRFProtect on the whole app --------------------------------------------------


def _csrf_host(
    emu: LiveKitEmulator, *, exempt: bool, nested: bool = False
) -> tuple[Flask, LiveKitModeration]:
    """A session app with CSRFProtect on every route; moderators sign in, scripts use tokens."""
    app = Flask("host")
    app.config.update(livekit_config(emu), **TENANT_CONFIG, SECRET_KEY="test-secret-key")
    csrf = CSRFProtect(app)
    moderation = LiveKitModeration()

    @moderation.request_loader
    def signed_in(req: Any) -> str | None:
        tenant: str | None = session.get("tenant")
        return tenant

    if nested:
        api = Blueprint("api", __name__)
        moderation.init_app(app, parent=api)
        app.register_blueprint(api, url_prefix="/api")
    else:
        moderation.init_app(app)
    if exempt:
        csrf.exempt(moderation.blueprint)

    @app.post("/profile")
    def profile() -> str:  # the host's own form: CSRF-protected as before
        return "saved"

    return app, moderation


@pytest.mark.parametrize("nested", [False, True], ids=["mounted", "nested"])
def test_csrfprotect_with_the_blueprint_exempted(rooms, nested):
    app, _ = _csrf_host(rooms, exempt=True, nested=nested)
    prefix = "/api" if nested else ""
    client = app.test_client()
    body = {"room_name": "room-a", "participant_identity": "alice"}

    # A script with a token: no cookie, no CSRF token, and the write happens.
    by_token = client.delete(
        f"{prefix}/livekit/participant", json=body, headers={"Authorization": f"Bearer {TOKEN_A}"}
    )
    assert by_token.status_code == 200 and by_token.get_json()["status"] == "removed"
    assert rooms.participant("room-a", "alice") is None

    # A signed-in moderator: the session cookie, and the extension's JSON-only defence.
    with client.session_transaction() as cookie_session:
        cookie_session["tenant"] = "tenant-a"
    rooms.clear_calls()
    forged = client.delete(
        f"{prefix}/livekit/participant",
        data='{"room_name": "room-a", "participant_identity": "bob"}',
        headers={"Content-Type": "text/plain"},  # what a cross-site form can send with the cookie
    )
    assert forged.status_code == 415 and forged.get_json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert rooms.call_names() == [] and rooms.participant("room-a", "bob") is not None
    as_json = client.delete(
        f"{prefix}/livekit/participant",
        json={"room_name": "room-a", "participant_identity": "bob"},
        headers=JSON,
    )
    assert as_json.status_code == 200 and rooms.participant("room-a", "bob") is None

    # The host's own routes are still CSRF-protected.
    own = client.post("/profile", data={"name": "x"})
    assert own.status_code == 400 and b"CSRF token is missing" in own.data


def test_csrfprotect_without_the_exemption_refuses_token_writes(rooms):
    app, _ = _csrf_host(rooms, exempt=False)
    client = app.test_client()
    answer = client.delete(
        "/livekit/participant",
        json={"room_name": "room-a", "participant_identity": "alice"},
        headers={"Authorization": f"Bearer {TOKEN_A}"},
    )
    # What the issue reported: Flask-WTF's 400 for a Bearer-token write, LiveKit never asked.
    assert answer.status_code == 400 and b"CSRF token is missing" in answer.data
    assert rooms.participant("room-a", "alice") is not None
