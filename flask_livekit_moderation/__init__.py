"""Flask extension: REST endpoints to moderate people in LiveKit rooms.

Public API::

    from flask_livekit_moderation import LiveKitModeration, current_auth, room_metadata
"""

from . import signals
from .access import RoomMetadataError, may_access, room_metadata, room_owner
from .auth import AuthContext, current_auth
from .config import ConfigurationError
from .errors import ModerationError
from .extension import LiveKitModeration

__all__ = [
    "AuthContext",
    "ConfigurationError",
    "LiveKitModeration",
    "ModerationError",
    "RoomMetadataError",
    "current_auth",
    "may_access",
    "room_metadata",
    "room_owner",
    "signals",
]
__version__ = "0.1.0"
