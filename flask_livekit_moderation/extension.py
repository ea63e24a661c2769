"""``LiveKitModeration``: the Flask extension object."""

from __future__ import annotations

import logging

from flask import Flask

from .auth import Authenticator, AuthResolver, redact_access_logs
from .client import LiveKitClient
from .config import ConfigurationError, load_settings
from .routes import blueprint, json_routing_error
from .state import EXTENSION_KEY, ModerationState

logger = logging.getLogger("flask_livekit_moderation")


class LiveKitModeration:
    """REST endpoints to moderate LiveKit rooms, registered on a Flask app.

    ``LiveKitModeration(app)`` or ``LiveKitModeration()`` then :meth:`init_app`. The routes
    live under ``{LIVEKIT_MODERATION_URL_PREFIX}/livekit``; see the README for the
    configuration keys. ``auth_resolver`` may be given here or registered with the
    :meth:`auth_resolver` decorator.
    """

    def __init__(self, app: Flask | None = None, *, auth_resolver: AuthResolver | None = None) -> None:
        self.resolver: AuthResolver | None = auth_resolver
        if app is not None:
            self.init_app(app)

    def auth_resolver(self, resolver: AuthResolver) -> AuthResolver:
        """Register the callback that maps a token to an auth id (sync or ``async def``).

        It is asked when a token matches none of ``LIVEKIT_MODERATION_API_SECRETS``;
        returning ``None`` rejects the request with 401 ``UNAUTHORIZED``.
        """
        self.resolver = resolver
        return resolver

    def init_app(self, app: Flask) -> None:
        """Read the configuration from ``app.config`` and register the blueprint.

        Raises :class:`ConfigurationError` when auth is required but neither secrets
        nor a resolver are given, so a broken setup fails at start, not per request.
        """
        settings = load_settings(app.config)
        if settings.auth_required and not settings.api_secrets and self.resolver is None:
            raise ConfigurationError(
                "LIVEKIT_MODERATION_AUTH_REQUIRED is on but no caller can ever be authenticated: "
                "set LIVEKIT_MODERATION_API_SECRETS, or give an auth_resolver before init_app "
                "(LiveKitModeration(auth_resolver=...) or @moderation.auth_resolver then init_app)."
            )
        for index, entry in enumerate(settings.api_secrets):
            if entry.id is None:
                logger.warning(
                    "LIVEKIT_MODERATION_API_SECRETS[%d] has no id: its holder is anonymous "
                    "and may moderate every room",
                    index,
                )
        client = None
        if settings.livekit_configured:
            client = LiveKitClient(
                settings.livekit_url,  # type: ignore[arg-type]
                settings.livekit_api_key,  # type: ignore[arg-type]
                settings.livekit_api_secret,  # type: ignore[arg-type]
                settings.timeout,
            )
        else:
            logger.warning(
                "LiveKit is not configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET): "
                "moderation routes will answer 500 LIVEKIT_NOT_CONFIGURED"
            )
        app.extensions[EXTENSION_KEY] = ModerationState(
            settings=settings,
            authenticator=Authenticator(settings.auth_required, settings.api_secrets),
            client=client,
            extension=self,
        )
        redact_access_logs()
        app.register_blueprint(blueprint, url_prefix=settings.url_prefix + "/livekit")
        app.before_request(json_routing_error)

    def __repr__(self) -> str:
        return f"<LiveKitModeration resolver={'set' if self.resolver else 'none'}>"
