"""Configuration: start-up checks, environment fallback, prefix, JSON routing errors."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from flask_livekit_moderation import ConfigurationError, LiveKitModeration
from tests.helpers import in_process, livekit_config


@pytest.fixture(autouse=True)
def _instance_folder_in_tmp(tmp_path, monkeypatch):
    # Flask("host") finds no package, so its instance folder is the working directory's: each
    # test's own, so an app's default ban store (and its audit log) is never a file in the repo.
    monkeypatch.chdir(tmp_path)


def test_auth_required_without_any_way_to_authenticate_fails_at_start():
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    with pytest.raises(ConfigurationError, match="LIVEKIT_MODERATION_API_SECRETS"):
        LiveKitModeration(app)


def test_auth_required_with_only_a_resolver_starts():
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=True)
    LiveKitModeration(app, auth_resolver=lambda token: None)
    assert "livekit_moderation" in app.blueprints


@pytest.mark.parametrize(
    "secrets, message",
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a", "secret": "s"}', "must be a list"),
        ([{"id": "a"}], "non-empty string 'secret'"),
        ([{"id": "a", "secret": ""}], "non-empty string 'secret'"),
        ([{"id": 5, "secret": "s"}], "must be a string"),
        (["s"], "must be an object"),
        ([{"id": "a", "secret": "pässwort"}], "printable ASCII"),
        ([{"id": "a", "secret": "two words"}], "printable ASCII"),
        ([{"id": "a", "secret": "tab\tinside"}], "printable ASCII"),
    ],
)
def test_bad_secrets_fail_at_start(secrets, message):
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=secrets)
    with pytest.raises(ConfigurationError, match=message):
        LiveKitModeration(app)


@pytest.mark.parametrize("timeout", [0, -1, "soon"])
def test_bad_timeouts_fail_at_start(timeout):
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_TIMEOUT=timeout)
    with pytest.raises(ConfigurationError, match="LIVEKIT_MODERATION_TIMEOUT"):
        LiveKitModeration(app)


@pytest.mark.parametrize("interval", [-1, "soon", float("nan"), float("inf"), 86_401, True])
def test_bad_reconcile_intervals_fail_at_start(interval):
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_RECONCILE_INTERVAL=interval)
    with pytest.raises(ConfigurationError, match="LIVEKIT_MODERATION_RECONCILE_INTERVAL"):
        LiveKitModeration(app)


@pytest.mark.parametrize(
    ("interval", "seconds"), [(None, 30.0), (0, 0.0), ("0.25", 0.25), (86_400, 86_400.0)]
)
def test_reconcile_intervals(interval, seconds):
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=False)  # open mode, on purpose
    if interval is not None:
        app.config.update(LIVEKIT_MODERATION_RECONCILE_INTERVAL=interval)
    moderation = LiveKitModeration(app)
    assert moderation.settings.reconcile_interval == seconds
    reconciler = app.extensions["livekit_moderation"].reconciler
    assert (reconciler is None) == (seconds == 0)  # 0: no reconciler at all


def test_missing_livekit_settings_warn_and_answer_500(monkeypatch, caplog, livekit_emulator):
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=False)  # open mode, on purpose
    with caplog.at_level(logging.WARNING, logger="flask_livekit_moderation"):
        LiveKitModeration(app)
    assert "LIVEKIT_NOT_CONFIGURED" in caplog.text

    with in_process(app) as served:
        answer = served.remove("room-1", "alice")
        invalid = served.remove("", "alice")
    assert answer.status_code == 500 and answer.json()["code"] == "LIVEKIT_NOT_CONFIGURED"
    assert invalid.status_code == 400
    assert livekit_emulator.calls == []


def test_livekit_settings_fall_back_to_the_environment(monkeypatch, livekit_emulator):
    monkeypatch.setenv("LIVEKIT_URL", livekit_emulator.url)
    monkeypatch.setenv("LIVEKIT_API_KEY", livekit_emulator.api_key)
    monkeypatch.setenv("LIVEKIT_API_SECRET", livekit_emulator.api_secret)
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=False)  # open mode, on purpose
    LiveKitModeration(app)

    with in_process(app) as served:
        assert served.remove("room-1", "alice").status_code == 200


def test_url_prefix_and_json_routing_errors(livekit_emulator):
    app = Flask("host")
    app.config.update(
        livekit_config(livekit_emulator),
        LIVEKIT_MODERATION_AUTH_REQUIRED=False,
        LIVEKIT_MODERATION_URL_PREFIX="/api/v1/",
    )

    @app.get("/livekit/participant")
    def host_route():
        return "host's own route"

    LiveKitModeration(app)
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    with in_process(app) as served:
        removed = served.request(
            "DELETE",
            "/api/v1/livekit/participant",
            json={"room_name": "room-1", "participant_identity": "alice"},
        )
        wrong_method = served.request("PUT", "/api/v1/livekit/participant/mute")
        unknown = served.request("GET", "/api/v1/livekit/nothing-here")
        host_own = served.request("GET", "/livekit/participant")
        host_404 = served.request("GET", "/elsewhere")

    assert removed.status_code == 200
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in wrong_method.headers["Allow"]
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    assert host_own.text == "host's own route"
    # Outside the prefix the host's own (HTML) error pages are untouched.
    assert host_404.status_code == 404 and "text/html" in host_404.headers["Content-Type"]


def test_an_init_app_factory_serves_several_apps(livekit_emulator):
    moderation = LiveKitModeration()
    apps = [Flask(f"host-{i}") for i in range(2)]
    for app in apps:
        app.config.update(livekit_config(livekit_emulator), LIVEKIT_MODERATION_AUTH_REQUIRED=False)
        moderation.init_app(app)
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["a", "b"])

    for app, identity in zip(apps, ["a", "b"], strict=False):
        with in_process(app) as served:
            assert served.remove("room-1", identity).status_code == 200
    assert livekit_emulator.participants("room-1") == []
