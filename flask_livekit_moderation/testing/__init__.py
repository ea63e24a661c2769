"""Test helpers: ``LiveKitEmulator``, a real-HTTP stand-in for LiveKit's RoomService.

``from flask_livekit_moderation.testing import LiveKitEmulator`` — see
``emulator.py`` for the behaviour and the LiveKit source it mirrors, and
``control.py`` for the JSON control routes used when it runs as a separate
process (``python -m flask_livekit_moderation.testing``).
"""

from .emulator import CallRecord, LiveKitEmulator
from .faults import TWIRP_STATUS, Fault
from .state import TrackSpec, UnknownRoomError

__all__ = ["TWIRP_STATUS", "CallRecord", "Fault", "LiveKitEmulator", "TrackSpec", "UnknownRoomError"]
