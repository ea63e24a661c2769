"""Shared fixtures: a bare Flask app, and host apps served over real HTTP against the stand-in.

The ``livekit_emulator`` fixture comes from the package's own pytest plugin, which this suite
opts in to below as a host app's suite would (``pytester`` runs such suites in
``tests/test_pytest_plugin.py``); plain helpers are in :mod:`tests.helpers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask

from flask_livekit_moderation.testing import LiveKitEmulator
from tests import hypothesis_profiles  # noqa: F401  (registers --hypothesis-profile=soak)
from tests.helpers import TENANTS, ServedApp, host_app, livekit_config, serve

pytest_plugins = ["flask_livekit_moderation.testing.pytest_plugin", "pytester"]


@pytest.fixture
def app(livekit_emulator: LiveKitEmulator) -> Flask:
    """A bare Flask app configured for the test's stand-in; the test adds the extension."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(livekit_emulator))
    return app


@pytest.fixture
def make_served(livekit_emulator: LiveKitEmulator) -> Iterator[Callable[..., ServedApp]]:
    """Build a bare host app with the extension and extra config, and serve it.

    The app talks to the test's ``livekit_emulator`` unless another ``emulator`` is given.
    """
    stack = ExitStack()

    def factory(emulator: LiveKitEmulator | None = None, **config: Any) -> ServedApp:
        return stack.enter_context(
            serve(host_app(livekit_emulator if emulator is None else emulator, **config))
        )

    with stack:
        yield factory


@pytest.fixture
def anon(make_served: Callable[..., ServedApp]) -> ServedApp:
    """The app with auth off: every caller may moderate every room."""
    return make_served()


@pytest.fixture
def tenants(make_served: Callable[..., ServedApp]) -> ServedApp:
    """The app with auth required and the two tenants of TENANTS."""
    return make_served(LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS)
