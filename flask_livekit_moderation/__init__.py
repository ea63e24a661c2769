"""Flask extension: REST endpoints to moderate people in LiveKit rooms.

Public API::

    from flask_livekit_moderation import LiveKitModeration, current_auth, room_metadata
"""

from importlib.metadata import PackageNotFoundError, version

from . import signals
from .access import RoomMetadataError, may_access, room_metadata, room_owner
from .auth import ALL_ROOMS, AuthContext
from .bans import Ban, BanStore, ParticipantBanned
from .config import ConfigurationError, Settings
from .errors import ErrorCode, ModerationError
from .extension import LiveKitModeration
from .lobby import Admission, ParticipantNotAdmitted
from .state import current_auth

try:
    __version__ = version("flask-livekit-moderation")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "ALL_ROOMS",
    "Admission",
    "AuthContext",
    "Ban",
    "BanStore",
    "ConfigurationError",
    "ErrorCode",
    "LiveKitModeration",
    "ModerationError",
    "ParticipantBanned",
    "ParticipantNotAdmitted",
    "RoomMetadataError",
    "Settings",
    "current_auth",
    "may_access",
    "room_metadata",
    "room_owner",
    "signals",
]
