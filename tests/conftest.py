"""Shared fixtures: a bare Flask app, and host apps served over real HTTP against the stand-in.

The ``livekit_emulator`` fixture comes from the package's own pytest plugin; plain helpers
are in :mod:`tests.helpers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_livekit_moderation.testing import LiveKitEmulator
from tests import hypothesis_profiles  # noqa: F401  (registers --hypothesis-profile=soak)
from tests.bans_helpers import BAN_SIGNALS, Host, make_host
from tests.helpers import TENANTS, ServedApp, host_app, livekit_config, serve


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


@pytest.fixture
def hosts(livekit_emulator: LiveKitEmulator, tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """Build served host apps with a token route (default: auth with TENANTS, SQLite in ``tmp_path``);
    each records the ban signals it sent (:class:`~tests.bans_helpers.Host`)."""
    stack = ExitStack()

    def build(**config: Any) -> Host:
        config.setdefault("LIVEKIT_MODERATION_AUTH_REQUIRED", True)
        config.setdefault("LIVEKIT_MODERATION_API_SECRETS", TENANTS)
        config.setdefault("LIVEKIT_MODERATION_BAN_STORE", f"sqlite:///{tmp_path}/bans.sqlite3")
        app, moderation = make_host(livekit_emulator, **config)
        stack.callback(moderation.close)  # after the server: its reconciler stops with the test
        host = Host(stack.enter_context(serve(app)), moderation)
        for name, signal in BAN_SIGNALS.items():

            def receiver(sender: Any, _name: str = name, **data: Any) -> None:
                host.received.append((_name, data))

            signal.connect_via(app)(receiver)
        return host

    with stack:
        yield build
