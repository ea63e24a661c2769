"""pytest plugin with the ``livekit_emulator`` fixture; opt in to it, it never loads by itself.

In the host app's top-level ``conftest.py``::

    pytest_plugins = ["flask_livekit_moderation.testing.pytest_plugin"]

or for one run: ``python -m pytest -p flask_livekit_moderation.testing.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .emulator import LiveKitEmulator


@pytest.fixture
def livekit_emulator() -> Iterator[LiveKitEmulator]:
    """A freshly started :class:`LiveKitEmulator` on a free port, stopped after the test.

    Defaults: no latency, ``mute_unknown_delay=1.0``, remote unmute disabled; change
    them on the instance (``set_latency``, ``mute_unknown_delay``,
    ``enable_remote_unmute``) inside the test.
    """
    emulator = LiveKitEmulator()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
