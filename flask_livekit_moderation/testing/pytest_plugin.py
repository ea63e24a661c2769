"""pytest plugin (entry point ``livekit_emulator``): the ``livekit_emulator`` fixture."""

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
