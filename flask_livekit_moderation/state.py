"""What one extension instance keeps per app, and how a request finds it.

Each :class:`~.extension.LiveKitModeration` registered on an app builds one complete
:class:`ModerationState` in ``init_app``, keeps it in ``app.extensions[name]`` and mounts a
:class:`ModerationBlueprint` pointing back at it. The routes' views are bound to their state
when the blueprint is made; code outside the routes (the host's hooks, :func:`current_auth`)
finds it through the request's blueprint, so two instances on one app (or one nested under a
host blueprint) never mix their settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from flask import Blueprint, Flask, current_app, has_request_context, request

from .auth import UNAUTHENTICATED, AuthContext, Authenticator, known_caller
from .client import LiveKitClient
from .config import Settings

if TYPE_CHECKING:
    from .audit.store import AuditLog
    from .bans.reconcile import Reconciler
    from .bans.stores import BanStore
    from .routing import Route


#: Maps a participant identity to the key bans are kept and looked up under
#: (:meth:`~.extension.LiveKitModeration.identity_key`).
IdentityKey: TypeAlias = Callable[[str], str]


def _no_identity_key() -> IdentityKey | None:
    return None


@dataclass(eq=False)
class ModerationState:
    """One instance's settings, callers, LiveKit client, stores and routes on one app."""

    name: str
    settings: Settings
    authenticator: Authenticator
    #: ``None`` when LiveKit is not configured.
    client: LiveKitClient | None
    #: Where bans are kept (LIVEKIT_MODERATION_BAN_STORE).
    bans: BanStore
    #: Every route the blueprint serves and the OpenAPI document describes.
    routes: tuple[Route, ...]
    #: What the names in its OpenAPI documents start with (``LiveKitModeration(openapi_prefix=)``).
    openapi_prefix: str
    #: Full URL prefixes the routes are mounted under, e.g. ``/api/livekit`` (filled in when
    #: the blueprint, or the host blueprint it is nested in, is registered).
    prefixes: set[str] = field(default_factory=set)
    #: The served OpenAPI documents, by the URL prefix they were asked under (built once each).
    openapi_documents: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    #: Removes the banned participants the webhook missed (``None``: RECONCILE_INTERVAL 0).
    reconciler: Reconciler | None = field(default=None, repr=False)
    #: The audit log, kept in ``bans``'s store (``None``: AUDIT_RETENTION_DAYS 0).
    audit_log: AuditLog | None = field(default=None, repr=False)
    #: The host's identity key function, read at each use (a decorator may set it after init_app).
    identity_hook: Callable[[], IdentityKey | None] = field(default=_no_identity_key, repr=False)

    def identity_key(self, identity: str) -> str:
        """The key under which bans of ``identity`` are kept and looked up.

        Every place that compares a participant's identity with a ban calls this one function:
        ban, lift, :meth:`~.extension.LiveKitModeration.active_ban` (so ``participant_token``),
        the webhook and the reconciler. Without a host function it is ``identity`` itself
        (exact match); with one (``@moderation.identity_key``), its result.
        """
        function = self.identity_hook()
        if function is None:
            return identity
        key = function(identity)
        if not isinstance(key, str):
            raise TypeError(f"an identity_key function must return a str, not {type(key).__name__}")
        return key

    def known_caller(self) -> AuthContext | None:
        """The caller already resolved in this request, without resolving it."""
        return known_caller(self.name)

    def close(self) -> None:
        """Close the pooled LiveKit connections and the store's; both reopen on next use."""
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.client is not None:
            self.client.close()
        if self.audit_log is not None:
            self.audit_log.close()  # its queue is written before the store's connections go
        self.bans.close()


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


def current_auth() -> AuthContext:
    """The caller of the current request (resolved on first use, at most once per request).

    Works anywhere in a request: in the extension's routes, in the host's app-level
    ``before_request`` hooks and views, and in other extensions (e.g. a Flask-Limiter
    ``key_func`` that limits per tenant). It never raises for missing or invalid
    credentials: the context then has ``is_authenticated=False`` (and the moderation routes
    answer 401). Outside a request, or on an app with several instances outside their
    routes, it is unauthenticated too; use :meth:`LiveKitModeration.current_auth` there.
    """
    if not has_request_context():
        return UNAUTHENTICATED
    state = request_state()
    if state is None:
        return UNAUTHENTICATED
    return state.authenticator.caller()[0]
