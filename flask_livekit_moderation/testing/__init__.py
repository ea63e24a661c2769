"""Test helpers: ``LiveKitEmulator``, a real-HTTP stand-in for LiveKit's RoomService.

``from flask_livekit_moderation.testing import LiveKitEmulator`` — see
``emulator.py`` for how the parts fit, and ``control.py`` for the JSON control
routes used when it runs as a separate process
(``python -m flask_livekit_moderation.testing``).
"""

from .emulator import SHUFFLE_ENV, LiveKitEmulator
from .faults import Fault
from .records import CallRecord
from .seeds import SeedError
from .state import (
    JoinRefusedError,
    PublishNotAllowedError,
    RoomFullError,
    TrackSpec,
    UnknownParticipantError,
    UnknownRoomError,
)
from .twirp import TWIRP_STATUS

__all__ = [
    "SHUFFLE_ENV",
    "TWIRP_STATUS",
    "CallRecord",
    "Fault",
    "JoinRefusedError",
    "LiveKitEmulator",
    "PublishNotAllowedError",
    "RoomFullError",
    "SeedError",
    "TrackSpec",
    "UnknownParticipantError",
    "UnknownRoomError",
]
