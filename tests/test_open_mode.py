"""Open mode (every caller may moderate every room) only on purpose (issue 24).

Left unset with no way to authenticate anyone, ``LIVEKIT_MODERATION_AUTH_REQUIRED`` stops
``init_app`` outside debug and testing; ``False`` said explicitly keeps the seed's open mode.
"""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from flask_livekit_moderation import LiveKitModeration
from flask_livekit_moderation.config import ConfigurationError
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import TENANTS, in_process, livekit_config


def _production_app(emulator: LiveKitEmulator, **config: object) -> Flask:
    app = Flask("host")
    app.config.update(livekit_config(emulator), **config)
    assert not app.debug and not app.testing
    return app


def test_unset_with_no_way_to_authenticate_refuses_to_start(livekit_emulator):
    app = _production_app(livekit_emulator)
    with pytest.raises(ConfigurationError, match="LIVEKIT_MODERATION_AUTH_REQUIRED is not set") as raised:
        LiveKitModeration(app)
    assert "LIVEKIT_MODERATION_AUTH_REQUIRED=False" in str(raised.value)
    assert "livekit_moderation" not in app.extensions and "livekit_moderation" not in app.blueprints


@pytest.mark.parametrize("value", [False, "false", "0"])
def test_explicitly_off_keeps_the_open_mode(livekit_emulator, caplog, value):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["alice"])
    app = _production_app(livekit_emulator, LIVEKIT_MODERATION_AUTH_REQUIRED=value)
    with caplog.at_level(logging.WARNING, logger="flask_livekit_moderation"):
        LiveKitModeration(app)
    assert "LIVEKIT_MODERATION_AUTH_REQUIRED is off" in caplog.text

    answer = in_process(app).remove("room-1", "alice")
    assert answer.status_code == 200, answer.text
    assert livekit_emulator.call_names()[-1] == "RemoveParticipant"
    assert livekit_emulator.participant("room-1", "alice") is None


@pytest.mark.parametrize("flag", ["TESTING", "DEBUG"])
def test_debug_and_testing_may_leave_it_unset(livekit_emulator, flag):
    app = _production_app(livekit_emulator)
    app.config[flag] = True
    LiveKitModeration(app)
    assert app.extensions["livekit_moderation"].settings.auth_required is False


def test_a_way_to_authenticate_is_not_open_mode_by_accident(livekit_emulator):
    # Unset with secrets or callbacks: the refusal is for the case where nobody can be checked.
    LiveKitModeration(_production_app(livekit_emulator, LIVEKIT_MODERATION_API_SECRETS=TENANTS))
    LiveKitModeration(_production_app(livekit_emulator), auth_resolver=lambda token: None)
    LiveKitModeration(_production_app(livekit_emulator), request_loader=lambda request: None)
