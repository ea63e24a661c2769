"""Bans: who may not be in which room, until when, and how it is enforced.

``model`` is the ban itself; ``stores`` where bans are kept (``base`` the interface, memory,
``sql`` SQLite and PostgreSQL, ``redis_store`` Redis); ``views`` the ban routes, ``webhook``
LiveKit's webhook that removes a banned participant who joins, ``reconcile`` the reconciler
that removes those the webhook missed, ``operations`` the LiveKit calls behind them,
``schemas`` their bodies and answers.
"""

from . import views, webhook
from .model import Ban, ParticipantBanned, rfc3339
from .stores import (
    BanStore,
    MemoryBanStore,
    PostgreSQLBanStore,
    RedisBanStore,
    SQLiteBanStore,
    default_url,
    open_store,
)

#: The routes of bans, in the order the OpenAPI document lists them.
routes = (*views.routes, *webhook.routes)

__all__ = [
    "Ban",
    "BanStore",
    "MemoryBanStore",
    "ParticipantBanned",
    "PostgreSQLBanStore",
    "RedisBanStore",
    "SQLiteBanStore",
    "default_url",
    "open_store",
    "rfc3339",
    "routes",
]
