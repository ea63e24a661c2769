"""The extension as a guest in real host apps: mounting, nesting, sessions, neighbours, errors.

Every host app here is a bare Flask app built in the test, reached through its test client
(one test serves it over real HTTP, for the server's access log), talking to the LiveKit
stand-in over real HTTP; the neighbouring extensions are the real packages.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Iterator

import pytest
from flask import Blueprint, Flask, abort, jsonify, request, session
from werkzeug.exceptions import Forbidden, Unauthorized

from flask_livekit_moderation import (
    ALL_ROOMS,
    LiveKitModeration,
    ModerationError,
    current_auth,
    room_metadata,
    signals,
)
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import (
    MASKED_404,
    MASKED_ROOM_404,
    TENANTS,
    TOKEN_A,
    TOKEN_B,
    in_process,
    livekit_config,
    serve,
)


@pytest.fixture
def rooms(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    for room in ("room-a", "room-b"):
        livekit_emulator.add_participants(room, ["p1", "p2", "p3"])
    return livekit_emulator


def bare_host(emulator: LiveKitEmulator, **config: object) -> Flask:
    app = Flask("host")
    config.setdefault("LIVEKIT_MODERATION_AUTH_REQUIRED", False)  # open mode, on purpose
    app.config.update(livekit_config(emulator), **config)
    return app


def tenants_config() -> dict[str, object]:
    return {"LIVEKIT_MODERATION_AUTH_REQUIRED": True, "LIVEKIT_MODERATION_API_SECRETS": TENANTS}


# -- mounting ---------------------------------------------------------------------------------


def test_two_instances_mount_on_one_app_with_their_own_settings(rooms):
    app = bare_host(rooms, **tenants_config())
    public = LiveKitModeration(app)
    admin = LiveKitModeration(
        app, name="livekit_admin", url_prefix="/admin", auth_resolver=lambda t: ALL_ROOMS
    )
    # The admin instance's resolver answers every token; the public one knows only the secrets.
    assert app.extensions["livekit_moderation"] is not app.extensions["livekit_admin"]
    assert {"livekit_moderation", "livekit_admin"} <= set(app.blueprints)

    with in_process(app) as served:
        assert served.remove("room-b", "p1", TOKEN_A).json() == MASKED_404
        public_answer = served.request(
            "DELETE",
            "/livekit/participant",
            "ops-token",
            json={"room_name": "room-b", "participant_identity": "p1"},
        )
        assert public_answer.json()["code"] == "UNAUTHORIZED"
        admin_answer = served.request(
            "DELETE",
            "/admin/livekit/participant",
            "ops-token",
            json={"room_name": "room-b", "participant_identity": "p1"},
        )
        assert admin_answer.status_code == 200
        assert served.request("GET", "/admin/livekit/openapi.json").json()["paths"].keys() >= {
            "/admin/livekit/participant"
        }
        assert "/livekit/participant" in served.request("GET", "/livekit/openapi.json").json()["paths"]
    assert rooms.participant("room-b", "p1") is None
    assert repr(public) != repr(admin)


def test_init_app_twice_on_one_app_is_a_clear_error(livekit_emulator):
    app = bare_host(livekit_emulator)
    moderation = LiveKitModeration(app)
    with pytest.raises(RuntimeError, match="already initialised on this app"):
        moderation.init_app(app)
    with pytest.raises(RuntimeError, match="give this instance another name"):
        LiveKitModeration(app)


def test_nested_under_a_host_blueprint_its_hooks_prefix_and_handlers_apply(rooms):
    app = bare_host(rooms, **tenants_config())
    api = Blueprint("api", __name__)
    seen = []

    @api.before_request
    def refuse_suspended_clients():
        seen.append(request.endpoint)
        if request.headers.get("X-Client") == "suspended":
            return jsonify(error="client suspended"), 403
        return None

    @api.get("/ping")
    def ping():
        return jsonify(pong=True)

    moderation = LiveKitModeration()
    moderation.init_app(app, parent=api)
    app.register_blueprint(api, url_prefix="/api/v1")

    with in_process(app) as served:
        refused = served.request(
            "DELETE",
            "/api/v1/livekit/participant",
            TOKEN_A,
            json={"room_name": "room-a", "participant_identity": "p1"},
            headers={"X-Client": "suspended"},
        )
        assert (refused.status_code, refused.json()) == (403, {"error": "client suspended"})
        assert rooms.calls == []
        done = served.request(
            "DELETE",
            "/api/v1/livekit/participant",
            TOKEN_A,
            json={"room_name": "room-a", "participant_identity": "p1"},
        )
        assert done.status_code == 200
        assert served.request("GET", "/api/v1/livekit/nothing-here").json()["code"] == "NOT_FOUND"
        document = served.request("GET", "/api/v1/livekit/openapi.json").json()
        assert "/api/v1/livekit/participants" in document["paths"]
        assert served.request("GET", "/livekit/participants").status_code == 404  # not mounted at the root
    assert seen == ["api.livekit_moderation.remove_participant"] * 2 + ["api.livekit_moderation.openapi"]
    assert rooms.participant("room-a", "p1") is None


def test_a_parent_already_registered_is_refused(livekit_emulator):
    app = bare_host(livekit_emulator)
    api = Blueprint("api", __name__)
    app.register_blueprint(api)
    with pytest.raises(RuntimeError, match="already registered"):
        LiveKitModeration().init_app(app, parent=api)


def test_cors_on_one_app_never_reaches_another(rooms):
    from flask_cors import CORS

    browser_app = bare_host(rooms)
    admin = Blueprint("admin", __name__)
    CORS(admin, origins=["https://console.example"])
    LiveKitModeration().init_app(browser_app, parent=admin)
    browser_app.register_blueprint(admin)
    plain_app = bare_host(rooms)
    LiveKitModeration(plain_app)

    origin = {"Origin": "https://console.example"}
    with in_process(browser_app) as browser, in_process(plain_app) as plain:
        allowed = browser.participants("room-a", headers=origin)
        assert allowed.headers.get("Access-Control-Allow-Origin") == "https://console.example"
        other = plain.participants("room-a", headers=origin)
        assert other.status_code == 200
        assert "Access-Control-Allow-Origin" not in other.headers


# -- callers from sessions --------------------------------------------------------------------


def login_app(emulator: LiveKitEmulator) -> Flask:
    """A cookie-session dashboard with Flask-Login; users belong to tenants."""
    from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

    users = {"ann": "tenant-a", "ben": "tenant-b"}

    class User(UserMixin):  # type: ignore[misc]  # flask_login ships no type information
        def __init__(self, user_id: str) -> None:
            self.id = user_id
            self.tenant = users[user_id]

    app = bare_host(emulator, SECRET_KEY="test-secret", LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    login = LoginManager(app)
    login.user_loader(lambda user_id: User(user_id) if user_id in users else None)

    @app.post("/login/<user_id>")
    def log_in(user_id):
        login_user(User(user_id))
        return jsonify(ok=True)

    @app.post("/logout")
    def log_out():
        logout_user()
        return jsonify(ok=True)

    moderation = LiveKitModeration()

    @moderation.request_loader
    def tenant_of_signed_in_user(req):
        return current_user.tenant if current_user.is_authenticated else None

    moderation.init_app(app)
    return app


def test_a_flask_login_session_moderates_its_own_rooms_only(rooms):
    with in_process(login_app(rooms)) as served:
        assert served.remove("room-a", "p1").json()["code"] == "MISSING_TOKEN"
        assert served.request("POST", "/login/ann").ok
        assert served.remove("room-a", "p1").status_code == 200
        assert served.participants("room-a").status_code == 200
        assert served.remove("room-b", "p1").json() == MASKED_404
        assert served.participants("room-b").json() == MASKED_ROOM_404
        # A token, when sent, wins over the session; this app knows no tokens.
        assert served.remove("room-a", "p2", "some-token").json()["code"] == "UNAUTHORIZED"
        assert served.request("POST", "/logout").ok
        logged_out = served.remove("room-a", "p2")
        assert (logged_out.status_code, logged_out.json()["code"]) == (401, "MISSING_TOKEN")
    assert [p.identity for p in rooms.participants("room-a")] == ["p2", "p3"]
    assert rooms.participant("room-b", "p1") is not None


def test_a_plain_session_app_with_an_async_loader(rooms):
    app = bare_host(rooms, SECRET_KEY="s", LIVEKIT_MODERATION_AUTH_REQUIRED=True)

    @app.post("/pick/<tenant>")
    def pick(tenant):
        session["tenant"] = tenant
        return jsonify(ok=True)

    async def load(req):
        return session.get("tenant")

    LiveKitModeration(app, request_loader=load)
    with in_process(app) as served:
        assert served.request("POST", "/pick/tenant-b").ok
        assert served.remove("room-b", "p3").status_code == 200
        assert served.remove("room-a", "p3").json() == MASKED_404


def test_auth_required_with_only_a_request_loader_starts(livekit_emulator):
    app = bare_host(livekit_emulator, LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    LiveKitModeration(app, request_loader=lambda req: None)
    assert "livekit_moderation" in app.blueprints


def test_auth_off_warns_at_start(livekit_emulator, caplog):
    with caplog.at_level(logging.WARNING, "flask_livekit_moderation"):
        LiveKitModeration(bare_host(livekit_emulator))
    assert any("every caller" in r.getMessage() and "every room" in r.getMessage() for r in caplog.records)


# -- the caller for everyone ------------------------------------------------------------------


def test_current_auth_in_app_hooks_resolves_once_per_request(rooms):
    asked = []

    def resolve(token):
        asked.append(token)
        return {"tok-a": "tenant-a"}.get(token)

    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    seen = []

    @app.before_request
    def look_first():
        caller = current_auth()
        seen.append((caller.auth_id, caller.is_authenticated))

    @app.get("/whoami")
    def whoami():
        caller = current_auth()
        return jsonify(auth_id=caller.auth_id, authenticated=caller.is_authenticated)

    LiveKitModeration(app, auth_resolver=resolve)
    with in_process(app) as served:
        assert served.remove("room-a", "p1", "tok-a").status_code == 200
        assert served.remove("room-a", "p2", "tok-x").json()["code"] == "UNAUTHORIZED"
        assert served.request("GET", "/whoami", "tok-a").json() == {
            "auth_id": "tenant-a",
            "authenticated": True,
        }
        assert served.request("GET", "/whoami").json() == {"auth_id": None, "authenticated": False}
    assert asked == ["tok-a", "tok-x", "tok-a"]  # once per request that carried a token
    assert seen == [("tenant-a", True), (None, False), ("tenant-a", True), (None, False)]


def test_flask_limiter_limits_per_tenant(rooms):
    from flask_limiter import Limiter

    app = bare_host(rooms, **tenants_config())

    def tenant_key():
        caller = current_auth()
        return caller.auth_id if caller.is_authenticated else request.remote_addr

    limiter = Limiter(tenant_key, app=app, default_limits=["2 per minute"], storage_uri="memory://")
    LiveKitModeration(app)
    with in_process(app) as served:
        a = [served.participants("room-a", TOKEN_A).status_code for _ in range(3)]
        b = [served.participants("room-b", TOKEN_B).status_code for _ in range(3)]
    assert a == [200, 200, 429]
    assert b == [200, 200, 429]  # tenant-b has its own bucket
    assert limiter.enabled


# -- the host owns errors ---------------------------------------------------------------------


@pytest.mark.parametrize("registered", ["before", "after"])
def test_the_hosts_moderation_error_handler_renders_the_errors(rooms, registered):
    app = bare_host(rooms, **tenants_config())

    def problem(exc: ModerationError):
        return jsonify(
            type=f"https://errors.example/{exc.code}", status=exc.status, title=exc.message
        ), exc.status

    if registered == "before":
        app.register_error_handler(ModerationError, problem)
    LiveKitModeration(app)
    if registered == "after":
        app.register_error_handler(ModerationError, problem)

    with in_process(app) as served:
        refused = served.remove("room-b", "p1", TOKEN_A)
        assert (refused.status_code, refused.json()) == (
            404,
            {
                "type": "https://errors.example/PARTICIPANT_NOT_FOUND",
                "status": 404,
                "title": "Participant not found.",
            },
        )
        assert served.remove("room-a", "p1").json()["type"].endswith("MISSING_TOKEN")
        assert served.request("GET", "/livekit/no-such-route").json()["type"].endswith("NOT_FOUND")


def test_resolver_exceptions_propagate_when_testing(rooms):
    def resolve(token):
        raise LookupError("token store is down")

    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True, TESTING=True)
    LiveKitModeration(app, auth_resolver=resolve)
    client = app.test_client()
    with pytest.raises(LookupError, match="token store is down"):
        client.delete(
            "/livekit/participant",
            json={"room_name": "room-a", "participant_identity": "p1"},
            headers={"Authorization": "Bearer t"},
        )
    assert rooms.calls == []


def test_werkzeug_unauthorized_and_forbidden_from_a_resolver(rooms):
    def resolve(token):
        if token == "expired":
            raise Unauthorized("token expired")
        if token == "suspended":
            abort(403)
        if token == "banned":
            raise Forbidden()
        return "tenant-a"

    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    LiveKitModeration(app, auth_resolver=resolve)
    with in_process(app) as served:
        expired = served.remove("room-a", "p1", "expired")
        assert (expired.status_code, expired.json()["code"]) == (401, "UNAUTHORIZED")
        assert expired.headers["WWW-Authenticate"] == "Bearer"
        suspended = served.remove("room-a", "p1", "suspended")
        assert (suspended.status_code, suspended.json()) == (
            403,
            {"error": "Forbidden.", "code": "FORBIDDEN"},
        )
        assert served.remove("room-a", "p1", "banned").status_code == 403
    assert rooms.calls == []


def test_a_natural_resolver_that_raises_keyerror_never_logs_the_token(rooms, caplog):
    tenants = {"known-token-1234": "tenant-a"}
    secret_token = "Zq8-unknown-token-that-must-never-be-logged"

    def resolve(token):
        return tenants[token]  # KeyError(token) for an unknown token

    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    LiveKitModeration(app, auth_resolver=resolve)
    # Served for real: the server's access log (the request line, its query) is a log too.
    with caplog.at_level(logging.DEBUG), serve(app) as served:
        answer = served.remove("room-a", "p1", secret_token)
        by_query = served.request(
            "GET", "/livekit/participants", params={"room_name": "room-a", "api_key": secret_token}
        )
    assert (answer.status_code, answer.json()["code"]) == (500, "INTERNAL_ERROR")
    assert by_query.status_code == 500
    assert any("KeyError" in record.getMessage() for record in caplog.records)
    server_side = [r for r in caplog.records if not r.name.startswith("urllib3")]  # the test's own client
    for record in server_side:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert secret_token not in text, record
    assert rooms.calls == []


def test_a_jwt_resolver_answers_401_for_an_expired_token(rooms):
    from datetime import timedelta

    from flask_jwt_extended import JWTManager, create_access_token, decode_token
    from jwt import ExpiredSignatureError

    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True, JWT_SECRET_KEY="k" * 32)
    JWTManager(app)

    def resolve(token):
        try:
            return decode_token(token)["sub"]
        except ExpiredSignatureError:
            raise Unauthorized() from None

    LiveKitModeration(app, auth_resolver=resolve)
    with app.app_context():
        fresh = create_access_token("tenant-a")
        expired = create_access_token("tenant-a", expires_delta=timedelta(seconds=-120))
    with in_process(app) as served:
        assert served.remove("room-a", "p1", fresh).status_code == 200
        answer = served.remove("room-a", "p2", expired)
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")


def test_a_resolver_returning_something_else_is_a_500(rooms):
    app = bare_host(rooms, LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    # Deliberately the wrong type, as a careless resolver would return it.
    LiveKitModeration(app, auth_resolver=lambda token: 42)  # type: ignore[arg-type,return-value]
    with in_process(app) as served:
        answer = served.remove("room-a", "p1", "t")
    assert (answer.status_code, answer.json()["code"]) == (500, "INTERNAL_ERROR")


# -- nothing left open ------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_500_apps_created_and_dropped_keep_file_descriptors_bounded(livekit_emulator):
    livekit_emulator.add_room("room-1")
    gc.collect()
    before = _open_fds()
    for index in range(500):
        app = bare_host(livekit_emulator)
        LiveKitModeration(app)
        with app.test_client() as client:
            assert client.get("/livekit/participants?room_name=room-1").status_code == 200
        del app, client
        if index % 50 == 49:
            gc.collect()
    gc.collect()
    assert _open_fds() - before <= 20
    assert livekit_emulator.call_counts()["ListParticipants"] == 500


def test_close_releases_the_connections_and_the_app_keeps_working(livekit_emulator):
    livekit_emulator.add_room("room-1")
    app = bare_host(livekit_emulator)
    moderation = LiveKitModeration(app)
    client = app.test_client()
    assert client.get("/livekit/participants?room_name=room-1").status_code == 200
    with_connection = _open_fds()
    moderation.close()
    moderation.close()  # twice is fine
    assert _open_fds() < with_connection
    assert client.get("/livekit/participants?room_name=room-1").status_code == 200


# -- observable -------------------------------------------------------------------------------


@pytest.fixture
def finished(rooms) -> Iterator[tuple[Flask, list[dict[str, object]]]]:
    app = bare_host(rooms, **tenants_config())
    LiveKitModeration(app)
    sent: list[dict[str, object]] = []

    @signals.moderation_finished.connect_via(app)
    def record(sender, **data):
        sent.append(data)

    yield app, sent


def test_moderation_finished_once_per_request_whatever_the_outcome(finished, rooms):
    app, sent = finished
    track = rooms.participant("room-a", "p2").tracks[0].sid
    with in_process(app) as served:
        served.remove("room-a", "p1", TOKEN_A)  # 200
        served.remove("room-b", "p1", TOKEN_A)  # 404 masked
        served.remove("room-a", "p1")  # 401
        served.request("DELETE", "/livekit/participant", TOKEN_A, json={"room_name": ""})  # 400
        served.request(
            "DELETE", "/livekit/participant", TOKEN_A, data="{}", headers={"Content-Type": "text/plain"}
        )
        served.participants("room-a", TOKEN_A)  # listed
        served.mute("room-a", "p2", track, True, TOKEN_A)  # muted
        served.mute("room-a", "p2", "TR_nope", True, TOKEN_A)  # 404 track
        rooms.fail_next("ListParticipants", code="internal")
        served.participants("room-a", TOKEN_A)  # 5xx
        served.request("GET", "/livekit/openapi.json")  # not a moderation action: nothing
    outcomes = [(s["action"], s["status"], s["outcome"]) for s in sent]
    assert outcomes == [
        ("remove", 200, "removed"),
        ("remove", 404, "PARTICIPANT_NOT_FOUND"),
        ("remove", 401, "MISSING_TOKEN"),
        ("remove", 400, "INVALID_REQUEST"),
        ("remove", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("list", 200, "listed"),
        ("mute", 200, "muted"),
        ("mute", 404, "TRACK_NOT_FOUND"),
        ("list", 503, "LIVEKIT_UNAVAILABLE"),
    ]
    first = sent[0]
    assert first["auth_id"] == "tenant-a" and first["room_name"] == "room-a"
    assert first["participant_identity"] == "p1" and first["track_sid"] is None
    assert first["livekit_calls"] == ["ListRooms", "RemoveParticipant"]
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert sent[2]["auth_id"] is None and sent[2]["livekit_calls"] == []
    assert sent[6]["track_sid"] == track


def test_the_audit_record_carries_its_fields_as_attributes(finished, rooms, caplog):
    app, _ = finished
    with caplog.at_level(logging.INFO, "flask_livekit_moderation"), in_process(app) as served:
        served.remove("room-a", "p1", TOKEN_A)
    [record] = [r for r in caplog.records if hasattr(r, "moderation_action")]
    assert record.moderation_action == "remove"
    assert record.moderation_auth_id == "tenant-a"
    assert record.moderation_room == "room-a"
    assert record.moderation_identity == "p1"
    assert record.moderation_track is None
    assert record.moderation_outcome == "removed"
    assert record.moderation_livekit_calls == ["ListRooms", "RemoveParticipant"]
    assert record.moderation_duration_ms > 0
    assert "action=remove" in record.getMessage()  # the human line stays
    json.dumps({k: v for k, v in vars(record).items() if k.startswith("moderation_")})  # JSON-loggable
