"""What one extension instance keeps per app, and how a request finds it.

Each :class:`~.extension.LiveKitModeration` registered on an app stores a
:class:`ModerationState` in ``app.extensions[name]`` and mounts its own
:class:`ModerationBlueprint`, which points back at that state. A request under the
extension's routes finds its state through its blueprint, so two instances on one app (or
one nested under a host blueprint) never mix their settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, current_app, g, request

from .client import LiveKitClient
from .config import DEFAULT_OPENAPI_PREFIX, Settings

if TYPE_CHECKING:
    from .auth import Authenticator
    from .bans import BanStore


@dataclass(eq=False)
class ModerationState:
    """One instance's settings, authenticator and LiveKit client on one app."""

    name: str
    settings: Settings
    authenticator: Authenticator
    #: ``None`` when LiveKit is not configured.
    client: LiveKitClient | None
    #: Full URL prefixes the routes are mounted under, e.g. ``/api/livekit`` (filled in when
    #: the blueprint, or the host blueprint it is nested in, is registered).
    prefixes: set[str] = field(default_factory=set)
    #: What the names in its OpenAPI documents start with (``LiveKitModeration(openapi_prefix=)``).
    openapi_prefix: str = DEFAULT_OPENAPI_PREFIX
    _openapi: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _openapi_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # -- bans
    #: Where bans are kept (LIVEKIT_MODERATION_BAN_STORE); set by ``init_app``.
    bans: BanStore | None = None

    def openapi_document(self, url_prefix: str) -> dict[str, Any]:
        """The OpenAPI document for routes under ``{url_prefix}/livekit``, built once per prefix."""
        document = self._openapi.get(url_prefix)
        if document is None:
            from .openapi import openapi_document

            with self._openapi_lock:
                document = self._openapi.get(url_prefix)
                if document is None:
                    document = self._openapi[url_prefix] = openapi_document(url_prefix, self.openapi_prefix)
        return document


class ModerationBlueprint(Blueprint):
    """The blueprint of one extension instance on one app; knows the state it serves."""

    def __init__(self, state: ModerationState, import_name: str) -> None:
        super().__init__(state.name, import_name)
        self.state = state


def app_states(app: Flask) -> list[ModerationState]:
    """Every extension instance registered on ``app``."""
    return [value for value in app.extensions.values() if isinstance(value, ModerationState)]


def request_state() -> ModerationState | None:
    """The instance serving the current request.

    The owner of the request's route; for any other route of the app, the app's only
    instance (``None`` when it has several: ask the instance itself).
    """
    if request.blueprint is not None:
        blueprint = current_app.blueprints.get(request.blueprint)
        if isinstance(blueprint, ModerationBlueprint):
            return blueprint.state
    states = app_states(current_app)
    return states[0] if len(states) == 1 else None


def moderation_state() -> ModerationState:
    """The state of the instance whose route is serving the current request."""
    found: ModerationState | None = g.get(_G_STATE)
    if found is None:
        blueprint = current_app.blueprints.get(request.blueprint or "")
        if not isinstance(blueprint, ModerationBlueprint):
            raise RuntimeError("not inside a request to a LiveKitModeration route")
        found = blueprint.state
        setattr(g, _G_STATE, found)
    return found


_G_STATE = "_livekit_moderation_state"
