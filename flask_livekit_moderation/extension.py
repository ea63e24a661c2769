"""``LiveKitModeration``: the Flask extension object."""

from __future__ import annotations

import logging
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, current_app, has_app_context, has_request_context, request
from livekit.api import AccessToken, VideoGrants
from livekit.protocol.models import Room

from . import access, errors, signals
from .audit import open_audit_log
from .auth import (
    AuthContext,
    Authenticator,
    AuthResolver,
    RequestLoader,
    redact_access_logs,
)
from .bans import Ban, BanStore, ParticipantBanned, RedisBanStore, default_url, open_store
from .bans.cli import cli as bans_cli
from .bans.reconcile import Pass, Reconciler, run_pass
from .bans.webhook import livekit_webhook
from .client import LiveKitClient, RoomCalls
from .config import (
    AUTH_REQUIRED_KEY,
    DEFAULT_OPENAPI_PREFIX,
    ConfigurationError,
    Settings,
    check_openapi_prefix,
    load_settings,
)
from .errors import ModerationError
from .guard import BreakerChange
from .lobby import Admission, ParticipantNotAdmitted, lobby_identity, lobby_store
from .openapi import register
from .routes import ROUTES
from .routing import json_routing_error, make_blueprint, render_moderation_error
from .state import IdentityKey, ModerationBlueprint, ModerationState

if TYPE_CHECKING:
    from apispec import APISpec

logger = logging.getLogger("flask_livekit_moderation")

R = TypeVar("R", bound=AuthResolver)
L = TypeVar("L", bound=RequestLoader)
K = TypeVar("K", bound=IdentityKey)


class LiveKitModeration:
    """REST endpoints to moderate LiveKit rooms, mounted on a Flask app.

    ``LiveKitModeration(app)``, or ``moderation = LiveKitModeration()`` then
    :meth:`init_app` (once per app; one instance may serve several apps). The routes live
    under ``{url_prefix}/livekit``; ``url_prefix`` given here wins over
    ``LIVEKIT_MODERATION_URL_PREFIX``. Several instances may share one app when each has its
    own ``name`` (the blueprint name, and the key of its state in ``app.extensions``).

    Callers are resolved from a token (configured secrets, then ``auth_resolver``) or, for
    requests without one, by ``request_loader``; both may also be registered with the
    decorators of the same names.

    ``openapi_prefix`` starts every name the instance gives in OpenAPI documents (components,
    security schemes, operationIds, its tag): see :meth:`register_openapi`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        auth_resolver: AuthResolver | None = None,
        request_loader: RequestLoader | None = None,
        name: str = "livekit_moderation",
        url_prefix: str | None = None,
        openapi_prefix: str = DEFAULT_OPENAPI_PREFIX,
    ) -> None:
        if not name or "." in name:
            raise ValueError("name must be a non-empty blueprint name without dots")
        self.name = name
        self.url_prefix = url_prefix
        self.openapi_prefix = check_openapi_prefix(openapi_prefix)
        self.resolver: AuthResolver | None = auth_resolver
        self.loader: RequestLoader | None = request_loader
        #: The host's identity key function (:meth:`identity_key`); ``None``: exact match.
        self.identity_key_function: IdentityKey | None = None
        # Weak: the extension object usually outlives the apps it served (one per test).
        self._states: weakref.WeakKeyDictionary[Flask, ModerationState] = weakref.WeakKeyDictionary()
        self._blueprints: weakref.WeakKeyDictionary[Flask, ModerationBlueprint] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def auth_resolver(self, resolver: R) -> R:
        """Register the callback that maps a token to a caller (sync or ``async def``).

        It is asked when a token matches none of ``LIVEKIT_MODERATION_API_SECRETS``. It
        returns the caller's auth id, ``None`` to reject (401), or :data:`ALL_ROOMS`; it may
        raise ``werkzeug.exceptions.Unauthorized`` or ``Forbidden`` (401/403).
        """
        self.resolver = resolver
        return resolver

    def request_loader(self, loader: L) -> L:
        """Register the callback asked for requests that carry no token (sync or ``async def``).

        It receives the request and returns an auth id, ``None`` (401) or
        :data:`ALL_ROOMS`, like :meth:`auth_resolver`; a session app maps its signed-in
        user (e.g. Flask-Login's ``current_user``) to a tenant here.
        """
        self.loader = loader
        return loader

    def identity_key(self, function: K) -> K:
        """Register the function mapping a participant identity to the key its bans are kept under.

        Bans are made, lifted and looked up by this key: the ban and lift routes,
        :meth:`active_ban` and :meth:`participant_token`, the webhook and the reconciler all
        call it, so with ``mallory`` banned an identity whose key is ``mallory`` too is refused
        a token and removed when it joins. Without one, identities match exactly (the default).
        LiveKit is always called with the participant's real identity.

        ``function(identity) -> str`` must be idempotent (``f(f(x)) == f(x)``), fast and free of
        I/O (it runs for every participant the reconciler sees); see ``docs/security.md`` for an
        NFKC + casefold + strip example. Bans are listed by their key. Register it before bans
        are made: a ban kept under an identity the function maps elsewhere is not found.
        """
        self.identity_key_function = function
        return function

    def init_app(self, app: Flask, parent: Blueprint | None = None) -> None:
        """Read the configuration from ``app.config`` and mount the routes.

        With ``parent``, a host :class:`~flask.Blueprint` not registered yet, the routes
        are nested under it: its ``before_request`` hooks, error handlers and URL prefix
        apply, and the host registers ``parent`` afterwards.

        Raises :class:`ConfigurationError` when the configuration cannot work (e.g. auth
        required but no way to authenticate), so a broken setup fails at start, and
        :class:`RuntimeError` when this instance (or another of the same name) is
        already on ``app``.
        """
        if app in self._states:
            raise RuntimeError(f"{self!r} is already initialised on this app: call init_app once per app")
        if self.name in app.extensions:
            raise RuntimeError(
                f"app.extensions[{self.name!r}] is already taken (another LiveKitModeration of that "
                "name?): give this instance another name="
            )
        if parent is not None and parent._got_registered_once:
            raise RuntimeError(
                f"the parent blueprint {parent.name!r} is already registered: call init_app(app, parent=...) "
                "first, then register the parent on the app"
            )
        settings = load_settings(app.config, self.url_prefix)
        ban_store = _open_ban_store(app, settings)
        if (
            settings.auth_required
            and not settings.api_secrets
            and self.resolver is None
            and self.loader is None
        ):
            raise ConfigurationError(
                "LIVEKIT_MODERATION_AUTH_REQUIRED is on but no caller can ever be authenticated: "
                "set LIVEKIT_MODERATION_API_SECRETS, or give an auth_resolver or request_loader before "
                "init_app (LiveKitModeration(auth_resolver=...), or the decorators, then init_app)."
            )
        if (
            not settings.auth_required
            and app.config.get(AUTH_REQUIRED_KEY) is None
            and not settings.api_secrets
            and self.resolver is None
            and self.loader is None
            and not (app.debug or app.testing)
        ):
            # Open mode lets every caller moderate every room: a production app only gets it
            # by saying so, never by leaving a setting out.
            raise ConfigurationError(
                f"{AUTH_REQUIRED_KEY} is not set and no caller can be authenticated (no "
                "LIVEKIT_MODERATION_API_SECRETS, auth_resolver or request_loader): every caller could "
                f"moderate every room. Set {AUTH_REQUIRED_KEY}=True with a way to authenticate callers, "
                f"or {AUTH_REQUIRED_KEY}=False to allow that on purpose (outside debug and testing)."
            )
        if not settings.auth_required:
            logger.warning(
                "LIVEKIT_MODERATION_AUTH_REQUIRED is off: every caller of %s may moderate every room",
                self.name,
            )
        for index, entry in enumerate(settings.api_secrets):
            if entry.id is None:
                logger.warning(
                    "LIVEKIT_MODERATION_API_SECRETS[%d] has no id: its holder may moderate every room",
                    index,
                )
        client = None
        if settings.livekit_configured:
            client = LiveKitClient(settings, on_breaker_change=_signal_breaker_change)
            # A dropped app (e.g. one per test) must not keep its pooled connections open.
            weakref.finalize(app, client.close, False)
        else:
            logger.warning(
                "LiveKit is not configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET): "
                "moderation routes will answer 500 LIVEKIT_NOT_CONFIGURED"
            )
        state = ModerationState(
            name=self.name,
            settings=settings,
            authenticator=Authenticator(
                self.name,
                settings.auth_required,
                settings.api_secrets,
                lambda: self.resolver,
                lambda: self.loader,
            ),
            client=client,
            bans=ban_store,
            routes=ROUTES,
            openapi_prefix=self.openapi_prefix,
            audit_log=open_audit_log(ban_store, settings.audit_retention_days),
            identity_hook=lambda: self.identity_key_function,
        )
        # Finalizers of one object run newest first: the store's, made first, runs after the
        # audit log has written its queue into it (closed under the log's writing thread, a
        # SQLite store crashed the process).
        weakref.finalize(app, ban_store.close)
        if settings.reconcile_interval:
            state.reconciler = Reconciler(app, state)
            # Started by the app's first request in each process (so after a fork): each request
            # costs one call and one comparison. Stopped with the app.
            app.before_request(state.reconciler.ensure_started)
            weakref.finalize(app, state.reconciler.stop, True, False)
        if state.audit_log is not None:
            weakref.finalize(app, state.audit_log.close)
        app.extensions[self.name] = self._states[app] = state
        redact_access_logs()
        _install_app_hooks(app)
        self._blueprints[app] = blueprint = make_blueprint(state)
        (parent or app).register_blueprint(blueprint, url_prefix=settings.url_prefix + "/livekit")

    # -- the host's API -----------------------------------------------------------------------

    @property
    def blueprint(self) -> ModerationBlueprint:
        """The blueprint serving this instance's routes on the current app (or its only app).

        Its name is the instance's ``name`` (default ``livekit_moderation``); endpoints are
        ``{name}.{view}``, e.g. ``livekit_moderation.livekit_webhook``. Hand it to
        host-wide middleware that exempts blueprints (Flask-Limiter, Flask-WTF's CSRF).
        """
        return self._blueprints[self._app(None)]

    def is_webhook_request(self) -> bool:
        """Whether the current request is for this instance's LiveKit webhook route.

        Every webhook comes from LiveKit's few addresses, so a host-wide limit per address
        would refuse ban enforcement; hand this to Flask-Limiter, whose request filters exempt
        what they return ``True`` for: ``limiter.request_filter(moderation.is_webhook_request)``.
        The other routes keep every limit. ``False`` outside a request.
        """
        if not has_request_context() or request.blueprint is None or request.endpoint is None:
            return False
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        mounted = self._blueprints.get(app)
        # request.blueprint is dotted when nested under a host blueprint; Flask maps that
        # name to the same blueprint object.
        return (
            mounted is not None
            and app.blueprints.get(request.blueprint) is mounted
            and request.endpoint.rsplit(".", 1)[-1] == livekit_webhook.__name__
        )

    @property
    def settings(self) -> Settings:
        """The settings this instance read from the current app's config (or its only app's)."""
        return self._state_of(None).settings

    @property
    def bans(self) -> BanStore:
        """The ban store of the current app (or its only app): ``LIVEKIT_MODERATION_BAN_STORE``."""
        return self._state_of(None).bans

    def current_auth(self) -> AuthContext:
        """The current request's caller as this instance resolves it (see :func:`current_auth`)."""
        return self._state_of(None).authenticator.caller()[0]

    def rooms_of(self, auth_id: str | None) -> list[Room]:
        """The running rooms ``auth_id`` may moderate, by name: those whose metadata names it.

        ``None`` (a caller for all rooms) gets every room. One ListRooms through the pooled
        client, under the same deadline, bulkhead and breaker as the routes; raises the
        routes' :class:`~.errors.ModerationError` when LiveKit fails. Needs an app context
        (or an instance serving one app).
        """
        return RoomCalls(self._state_of(None).client, auth_id).run(access.rooms_of, auth_id)

    def register_openapi(self, spec: APISpec, app: Flask | None = None) -> None:
        """Add this instance's routes to the host's own OpenAPI ``spec``.

        ``spec`` is an apispec ``APISpec`` of OpenAPI 3.0.x or 3.1: flask-smorest's
        ``api.spec``, or one of your own, with or without plugins. Every route is added at the
        URL it is mounted under (``url_prefix``, a parent blueprint's prefix), with its security
        schemes and every answer it documents, and so is every schema it uses, rendered for
        ``spec``'s OpenAPI version. All are named as in the served
        ``.../livekit/openapi.json``: ``{openapi_prefix}<Name>`` (``LiveKitModerationParticipant``,
        ``LiveKitModerationBearerAuth``, operationId ``LiveKitModerationRemoveParticipant``, tag
        ``LiveKitModeration``). With ``LIVEKIT_MODERATION_OPENAPI`` off, the document's own
        route is left out.

        Nothing of the host's is replaced. A name or path operation the spec already has is
        accepted when identical (calling this twice changes nothing); when different,
        :class:`apispec.exceptions.APISpecError` (``DuplicateComponentNameError`` for a
        component) names every clash and nothing is added. So two instances documented in one
        spec need distinct ``openapi_prefix`` values, or their operationIds would clash.

        ``app``: the app whose routes to document; by default the current app, else the only
        app this instance serves. When nested (``init_app(app, parent=bp)``), call it once
        ``bp`` is registered: until then the routes have no URL (:class:`RuntimeError`).
        """
        state = self._state_of(app)
        if not state.prefixes:
            raise RuntimeError(
                f"the routes of {self!r} are not mounted yet: register the parent blueprint on the app, "
                "then call register_openapi"
            )
        if len(state.prefixes) > 1:
            raise RuntimeError(
                f"the routes of {self!r} are mounted under several URLs "
                f"({', '.join(sorted(state.prefixes))}): one spec cannot give each operation one operationId"
            )
        (mount,) = state.prefixes
        register(
            spec,
            state.routes,
            mount.removesuffix("/livekit"),
            self.openapi_prefix,
            with_document_route=state.settings.openapi,
        )

    def _app(self, app: Flask | None) -> Flask:
        """``app``, else the current app, else the only app this instance serves."""
        if app is None and has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is None:
            apps = list(self._states)
            if len(apps) != 1:
                raise RuntimeError(f"{self!r} serves {len(apps)} apps and there is no app context: pass app=")
            app = apps[0]
        if app not in self._states:
            raise RuntimeError(f"{self!r} is not initialised on {app!r}: call init_app(app) first")
        return app

    def _state_of(self, app: Flask | None) -> ModerationState:
        return self._states[self._app(app)]

    def close(self) -> None:
        """Close the pooled LiveKit connections and the ban store's connections of every app
        this instance serves, after stopping its reconciler and writing its audit log's queue.

        The apps keep working: their next request opens new connections. A store connection a
        request is using is closed once its statement is done (a request that reaches the store
        as it closes may answer 503 ``BAN_STORE_UNAVAILABLE``). An app that is garbage-collected
        releases its connections by itself.
        """
        for state in list(self._states.values()):
            state.close()

    def __repr__(self) -> str:
        return f"<LiveKitModeration {self.name!r}>"

    def reconcile(self) -> Pass:
        """Run one reconciler pass now, in this thread (needs an app context, or an instance
        serving one app): every banned participant present in a room of the ban's owner is
        removed. Takes no lease. Signalled and logged like the background passes; raises the
        :class:`~.errors.ModerationError` that stopped it (store or LiveKit unavailable)."""
        app = self._app(None)
        with app.app_context():
            return run_pass(self._states[app])

    def active_ban(self, room_name: str, identity: str, *, owner: str | None = None) -> Ban | None:
        """The active ban of ``identity`` in ``room_name``, or ``None`` (needs an app context).

        ``identity`` is looked up by its key (:meth:`identity_key`).

        The ban belongs to the room's owner as LiveKit names it now (one ListRooms call, under
        the same deadline, bulkhead and breaker as the routes); a room that is not running
        names no owner, so the bans of rooms with no owner are checked. Pass ``owner`` (the
        tenant's auth id you create the room for; ``""`` for no owner) to skip the LiveKit
        call: then only the ban store is read.

        Raises :class:`~.errors.ModerationError`: 503 ``BAN_STORE_UNAVAILABLE`` when the
        store fails, the LiveKit errors of the routes when LiveKit does (never "no ban").
        """
        state = self._state_of(None)
        if owner is None:
            owner = RoomCalls(state.client).run(access.current_owner, room_name) or ""
        return state.bans.get(owner, room_name, state.identity_key(identity))

    def knock(
        self, room_name: str, identity: str, *, name: str | None = None, owner: str | None = None
    ) -> Admission:
        """``identity`` asks to join ``room_name`` (the host's join route calls this; needs an app context).

        Returns an :class:`~.lobby.Admission` whose ``status`` is ``"admitted"`` (the room is not
        locked: at once; or a moderator admitted them), ``"waiting"`` (they wait in the lobby:
        knock again later, e.g. every few seconds) or ``"denied"``. Knocking again keeps the
        first ``knocked_at``; ``name`` is the one shown to moderators (kept from the first
        knock). The lobby belongs to the room's owner as LiveKit names it now (one ListRooms,
        as for :meth:`active_ban`); pass ``owner`` (the tenant's auth id, ``""`` for none) to
        skip it: then a knock is one store round trip. Signals ``lobby_knocked`` in a locked room.

        Raises :class:`~.errors.ModerationError` (503 ``BAN_STORE_UNAVAILABLE``, LiveKit's
        errors) when the store or LiveKit fails; ``ValueError`` for a blank identity or a name
        over 256 characters.
        """
        if not isinstance(identity, str) or not identity.strip():
            raise ValueError("identity must be a non-empty string")
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            raise ValueError("name must be a string of at most 256 characters")
        state = self._state_of(None)
        if owner is None:
            owner = RoomCalls(state.client).run(access.current_owner, room_name) or ""
        admission = lobby_store(state.bans).knock(owner, room_name, lobby_identity(state, identity), name)
        if admission.locked:
            signals.notify(
                signals.lobby_knocked,
                auth_id=None,
                room_owner=admission.room_owner,
                room_name=room_name,
                participant_identity=admission.participant_identity,
                name=admission.name,
                status=admission.status,
                knocked_at=admission.knocked_at,
                outcome="knocked",
            )
        return admission

    def admission(self, room_name: str, identity: str, *, owner: str | None = None) -> Admission:
        """Whether ``identity`` may join ``room_name`` now, without knocking (``owner`` as for
        :meth:`knock`): ``.admitted`` is what :meth:`participant_token` checks after the ban."""
        state = self._state_of(None)
        if owner is None:
            owner = RoomCalls(state.client).run(access.current_owner, room_name) or ""
        return lobby_store(state.bans).admission(owner, room_name, lobby_identity(state, identity))

    def participant_token(
        self,
        room_name: str,
        identity: str,
        *,
        name: str | None = None,
        ttl_seconds: int = 600,
        owner: str | None = None,
        **grants: Any,
    ) -> str:
        """A short-lived LiveKit access token to join ``room_name`` as ``identity``.

        Raises :class:`~.bans.ParticipantBanned` (403 ``PARTICIPANT_BANNED`` if uncaught) when
        :meth:`active_ban` finds a ban, then :class:`~.lobby.ParticipantNotAdmitted` (403
        ``PARTICIPANT_NOT_ADMITTED``) when the room is locked and no moderator admitted the
        identity. ``owner`` as for :meth:`active_ban` (the room's owner is looked up once, for
        both). ``grants`` are further ``livekit.api.VideoGrants`` fields
        (``can_publish=False``, ...); ``room_join`` and ``room`` are set here. ``ttl_seconds``:
        1 to 86400 (one day): a token cannot be revoked, so keep it short.
        """
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 0 < ttl_seconds <= 86400:
            raise ValueError("ttl_seconds must be a whole number of seconds from 1 to 86400")
        clash = {"room", "room_join"} & set(grants)
        if clash:
            raise TypeError(f"participant_token sets {sorted(clash)} itself")
        state = self._state_of(None)
        if owner is None:
            owner = RoomCalls(state.client).run(access.current_owner, room_name) or ""
        ban = self.active_ban(room_name, identity, owner=owner)
        if ban is not None:
            raise ParticipantBanned(ban)
        admission = lobby_store(state.bans).admission(owner, room_name, lobby_identity(state, identity))
        if not admission.admitted:
            raise ParticipantNotAdmitted(admission)
        settings = state.settings
        if not settings.livekit_api_key or not settings.livekit_api_secret:
            raise errors.LIVEKIT_NOT_CONFIGURED()
        token = (
            AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
            .with_identity(identity)
            .with_grants(VideoGrants(room_join=True, room=room_name, **grants))
            .with_ttl(timedelta(seconds=ttl_seconds))
        )
        if name is not None:
            token = token.with_name(name)
        return token.to_jwt()


def _open_ban_store(app: Flask, settings: Settings) -> BanStore:
    """The store LIVEKIT_MODERATION_BAN_STORE names (default: SQLite under the instance path).

    Checked now (a bad URL raises ConfigurationError), connected on first use: nothing is
    created on disk until a ban is made or looked up. Redis alone is asked at once for the
    settings that can lose bans (a WARNING names each; never an error).
    """
    url = settings.ban_store if settings.ban_store is not None else default_url(app.instance_path)
    store = open_store(url, app.instance_path)
    if isinstance(store, RedisBanStore):
        # Whether Redis can lose bans (eviction, no persistence): said once, at start-up.
        store.check_durability()
    return store


def _signal_breaker_change(change: BreakerChange) -> None:
    # Called in the request thread whose outcome moved the breaker, inside its app context.
    signals.notify(
        signals.livekit_breaker_changed,
        state=change.state.value,
        previous=change.previous.value,
        failures=change.failures,
        retry_after=change.retry_after,
        scope=change.scope,
        auth_id=change.auth_id,
    )


def _install_app_hooks(app: Flask) -> None:
    """App-level pieces shared by every instance on ``app``, installed once."""
    if json_routing_error not in app.before_request_funcs.get(None, []):
        app.before_request(json_routing_error)
    if bans_cli.name not in app.cli.commands:
        app.cli.add_command(bans_cli)
    # The host's own handler wins, registered before init_app (kept) or after (replaces it).
    if ModerationError not in app.error_handler_spec[None][None]:
        app.register_error_handler(ModerationError, render_moderation_error)
