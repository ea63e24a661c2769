"""A host Flask app with the moderation extension, configured from environment variables.

``create_app()`` reads ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``,
``AUTH_REQUIRED`` (true/false), ``AUTH_API_SECRETS_JSON`` (a JSON list of
``{"id", "secret"}``) and any ``LIVEKIT_MODERATION_*`` setting (e.g.
``LIVEKIT_MODERATION_MAX_CONCURRENCY=8``). Serve it with ``gunicorn 'example_app:create_app()'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify

from flask_livekit_moderation import LiveKitModeration


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the example host app; ``config`` overrides what the environment says."""
    app = Flask(__name__)
    app.config.update(
        LIVEKIT_URL=os.environ.get("LIVEKIT_URL"),
        LIVEKIT_API_KEY=os.environ.get("LIVEKIT_API_KEY"),
        LIVEKIT_API_SECRET=os.environ.get("LIVEKIT_API_SECRET"),
        LIVEKIT_MODERATION_AUTH_REQUIRED=os.environ.get("AUTH_REQUIRED", "false"),
        LIVEKIT_MODERATION_API_SECRETS=os.environ.get("AUTH_API_SECRETS_JSON", "[]"),
    )
    # Every other setting straight from the environment; the extension parses the strings.
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("LIVEKIT_MODERATION_")})
    app.config.update(config or {})

    @app.get("/")
    def home() -> Any:
        return jsonify(app="example host app", moderation="/livekit/participants?room_name=...")

    @app.get("/healthz")
    def health() -> Any:
        return jsonify(status="ok")

    LiveKitModeration(app)
    return app
