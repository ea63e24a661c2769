"""Shared fixtures: a bare Flask app, and host apps talking to the stand-in over real HTTP.

Route tests reach the host app in process, through Flask's test client (``make_served``,
``anon``, ``tenants``); the app still calls LiveKit (the ``livekit_emulator`` stand-in) over
real HTTP with livekit-api. Tests of what a real server does (connections, keep-alive, timing,
raw bytes, other processes calling in) use ``make_served_over_http`` or
:func:`tests.helpers.serve`.

The ``livekit_emulator`` fixture comes from the package's own pytest plugin, which this suite
opts in to below as a host app's suite would (``pytester`` runs such suites in
``tests/test_pytest_plugin.py``); plain helpers are in :mod:`tests.helpers`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from benchmarks.postgres import PostgresServer
from flask_livekit_moderation.testing import LiveKitEmulator
from tests import hypothesis_profiles  # noqa: F401  (registers --hypothesis-profile=soak)
from tests.bans_helpers import BAN_SIGNALS, Host, make_host
from tests.helpers import TENANTS, HttpServedApp, InProcessApp, host_app, in_process, livekit_config, serve
from tests.postgres_server import empty_database, postgres
from tests.redis_server import RedisServer, empty_redis, redis_server

pytest_plugins = ["flask_livekit_moderation.testing.pytest_plugin", "pytester"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempt what exists once the tests are collected (modules, strategies, documents) from
    garbage collection: each full collection during the run then walks only what the tests
    made (on two cores this roughly halved the time the suite spends collecting)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[RedisServer]:
    """One Redis server for the test process, started when a test first needs it (a start per
    module or per test cost the suite seconds); tests take it through ``redis_url``."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_srv() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test process (``initdb`` alone takes a second or two);
    tests take it through ``postgres_url``."""
    with postgres() as server:
        yield server


@pytest.fixture
def redis_url(redis_srv: RedisServer) -> str:
    """The URL of the process's Redis server, emptied for this test as if it were new."""
    empty_redis(redis_srv)
    return redis_srv.url


@pytest.fixture
def postgres_url(postgres_srv: PostgresServer) -> str:
    """The URL of the process's PostgreSQL server, emptied for this test as if it were new."""
    empty_database(postgres_srv.url)
    return postgres_srv.url


@pytest.fixture
def app(livekit_emulator: LiveKitEmulator) -> Flask:
    """A bare Flask app configured for the test's stand-in; the test adds the extension."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(livekit_emulator))
    return app


@pytest.fixture
def make_served(livekit_emulator: LiveKitEmulator) -> Callable[..., InProcessApp]:
    """Build a bare host app with the extension and extra config, reached in process.

    The app talks to the test's ``livekit_emulator`` unless another ``emulator`` is given.
    """

    def factory(emulator: LiveKitEmulator | None = None, **config: Any) -> InProcessApp:
        return in_process(host_app(livekit_emulator if emulator is None else emulator, **config))

    return factory


@pytest.fixture
def make_served_over_http(livekit_emulator: LiveKitEmulator) -> Iterator[Callable[..., HttpServedApp]]:
    """Like ``make_served``, but each app is served by a real werkzeug server on 127.0.0.1."""
    stack = ExitStack()

    def factory(emulator: LiveKitEmulator | None = None, **config: Any) -> HttpServedApp:
        return stack.enter_context(
            serve(host_app(livekit_emulator if emulator is None else emulator, **config))
        )

    with stack:
        yield factory


@pytest.fixture
def anon(make_served: Callable[..., InProcessApp]) -> InProcessApp:
    """The app with auth off: every caller may moderate every room."""
    return make_served()


@pytest.fixture
def tenants(make_served: Callable[..., InProcessApp]) -> InProcessApp:
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
