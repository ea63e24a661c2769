"""Moderating the people in a room: remove, mute a track, list, change permissions, mute a room.

``views`` declares the routes, ``operations`` the LiveKit calls behind them, ``schemas`` their
bodies and answers.
"""

from .views import routes

__all__ = ["routes"]
