"""The lobby: a locked room gives tokens only to those a moderator admitted.

``model`` is an admission and who waits; ``store`` where lobbies are kept (in the ban store:
memory, SQLite, PostgreSQL, Redis); ``operations`` the LiveKit calls behind the routes and the
one function every identity goes through; ``views`` the routes; ``schemas`` their bodies.
The host's side is :meth:`~..LiveKitModeration.knock` and
:meth:`~..LiveKitModeration.participant_token`; LiveKit's webhook (``bans/webhook.py``) and
the reconciler remove anyone who joins a locked room without being admitted.
"""

from . import views
from .model import Admission, ParticipantNotAdmitted
from .operations import lobby_identity
from .store import LobbyStore, lobby_store

#: The routes of the lobby, in the order the OpenAPI document lists them.
routes = (*views.routes,)

__all__ = ["Admission", "LobbyStore", "ParticipantNotAdmitted", "lobby_identity", "lobby_store", "routes"]
