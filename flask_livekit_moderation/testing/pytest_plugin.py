"""pytest plugin with the ``livekit_emulator`` fixture; opt in to it, it never loads by itself.

In the host app's top-level ``conftest.py``::

    pytest_plugins = ["flask_livekit_moderation.testing.pytest_plugin"]

or for one run: ``python -m pytest -p flask_livekit_moderation.testing.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .emulator import LiveKitEmulator

#: What the fixture sets unless a test asks otherwise: tests of unknown participants must
#: not wait LiveKit's real 3 s RPC wait, webhook retries their real 1-8 s, rooms the 1 s
#: ticker, room counts their 5 s refresh, nor each join 0.1 s.
FIXTURE_DEFAULTS: dict[str, Any] = {"mute_unknown_delay": 1.0, "time_scale": 0.05, "join_delay": 0.02}


@pytest.fixture
def livekit_emulator(request: pytest.FixtureRequest) -> Iterator[LiveKitEmulator]:
    """A freshly started :class:`LiveKitEmulator` on a free port, stopped after the test.

    Defaults: no latency, ``mute_unknown_delay=1.0`` (LiveKit's real wait, the
    emulator's own default, is 3.0), ``time_scale=0.05`` (webhook retries after
    50, 100, 200, 400 ms; events dropped after 1.5 s in their room's queue; rooms close on
    a 50 ms ticker; room counts refreshed at most every 250 ms), ``join_delay=0.02``
    (a join is ACTIVE 20 ms after it started), remote unmute disabled, self-hosted
    unless ``LIVEKIT_EMULATOR_CLOUD=1``;
    change them on the instance (``set_latency``, ``mute_unknown_delay``,
    ``enable_remote_unmute``, ``cloud``) inside the test, or pass constructor arguments
    by indirect parametrization::

        @pytest.mark.parametrize("livekit_emulator", [{"cloud": True}], indirect=True)
    """
    options = {**FIXTURE_DEFAULTS, **getattr(request, "param", {})}
    emulator = LiveKitEmulator(**options)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
