"""What the extension keeps per app, in ``app.extensions["livekit_moderation"]``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from .auth import Authenticator, AuthResolver
from .client import LiveKitClient
from .config import Settings

EXTENSION_KEY = "livekit_moderation"


@dataclass
class ModerationState:
    """One app's settings, authenticator and LiveKit client (``None`` when unconfigured)."""

    settings: Settings
    authenticator: Authenticator
    client: LiveKitClient | None
    extension: Any
    _openapi: dict[str, Any] | None = field(default=None, repr=False)
    _openapi_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def resolver(self) -> AuthResolver | None:
        # Read through the extension so a resolver registered after init_app still applies.
        return self.extension.resolver

    def openapi_document(self) -> dict[str, Any]:
        """The OpenAPI document for this app's prefix, built once."""
        if self._openapi is None:
            from .openapi import openapi_document

            with self._openapi_lock:
                if self._openapi is None:
                    self._openapi = openapi_document(self.settings.url_prefix)
        return self._openapi


def moderation_state() -> ModerationState:
    """The current app's :class:`ModerationState`."""
    return current_app.extensions[EXTENSION_KEY]
