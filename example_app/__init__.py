"""A host Flask app with the moderation extension, configured from environment variables.

``create_app()`` reads ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``,
``AUTH_REQUIRED`` (true/false), ``AUTH_API_SECRETS_JSON`` (a JSON list of
``{"id", "secret"}``), any ``LIVEKIT_MODERATION_*`` setting (e.g.
``LIVEKIT_MODERATION_MAX_CONCURRENCY=8``), and for the moderator console at ``/``
``CONSOLE_ACCOUNTS_JSON`` (``{"<tenant auth id>": "<password>"}``) and ``SECRET_KEY`` (the
session cookie's signing key; a random one per start when unset, so with several workers
set it, or serve with ``--preload``). The console also reads ``CONSOLE_SESSION_DB`` (the
SQLite file of its session records: again, one per start when unset), the sign-in throttle's
``CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT``, ``CONSOLE_SIGNIN_LIMIT_PER_ADDRESS`` and
``RATELIMIT_STORAGE_URI`` (see ``docs/console.md``). Serve it with
``gunicorn 'example_app:create_app()'``.

``GET /openapi.json`` is the host's own OpenAPI document: its ``/healthz`` and, merged in by
``register_openapi``, every route of the extension.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from apispec import APISpec
from flask import Flask, jsonify

from flask_livekit_moderation import LiveKitModeration

from .console import MODERATION, accounts_from, init_console, signed_in_tenant

#: Console settings taken from the environment as they are, when set.
CONSOLE_ENVIRONMENT = (
    "CONSOLE_SESSION_DB",
    "CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT",
    "CONSOLE_SIGNIN_LIMIT_PER_ADDRESS",
    "RATELIMIT_STORAGE_URI",
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the example host app; ``config`` overrides what the environment says."""
    app = Flask(__name__)
    app.config.update(
        LIVEKIT_URL=os.environ.get("LIVEKIT_URL"),
        LIVEKIT_API_KEY=os.environ.get("LIVEKIT_API_KEY"),
        LIVEKIT_API_SECRET=os.environ.get("LIVEKIT_API_SECRET"),
        LIVEKIT_MODERATION_AUTH_REQUIRED=os.environ.get("AUTH_REQUIRED", "false"),
        LIVEKIT_MODERATION_API_SECRETS=os.environ.get("AUTH_API_SECRETS_JSON", "[]"),
        CONSOLE_ACCOUNTS=os.environ.get("CONSOLE_ACCOUNTS_JSON", "{}"),
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
    )
    # Every other setting straight from the environment; the extension parses the strings.
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("LIVEKIT_MODERATION_")})
    # The console's session records and sign-in throttle (example_app.sessions, .signin).
    app.config.update({k: v for k, v in os.environ.items() if k in CONSOLE_ENVIRONMENT})
    app.config.update(config or {})

    app.config["CONSOLE_ACCOUNTS"] = accounts_from(app.config["CONSOLE_ACCOUNTS"])

    @app.get("/healthz")
    def health() -> Any:
        return jsonify(status="ok")

    # Signed-in moderators of the console are callers too, through their session cookie;
    # requests with a token never reach the loader. No accounts, no loader: the extension
    # then refuses at start to require auth with no way to authenticate.
    loader = signed_in_tenant if app.config["CONSOLE_ACCOUNTS"] else None
    moderation = LiveKitModeration(app, request_loader=loader)
    app.extensions[MODERATION] = moderation
    init_console(app)

    spec = host_spec()
    moderation.register_openapi(spec, app)
    document = spec.to_dict()

    @app.get("/openapi.json")
    def openapi_json() -> Any:
        return jsonify(document)

    return app


def host_spec() -> APISpec:
    """The host's own OpenAPI document, before the extension's routes are added to it."""
    spec = APISpec(title="flask-livekit-moderation example app", version="1.0.0", openapi_version="3.1.0")
    spec.components.schema(
        "Health",
        {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
            "required": ["status"],
        },
    )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "health",
                "summary": "Whether the app is up",
                "responses": {
                    "200": {"description": "It is.", "content": {"application/json": {"schema": "Health"}}}
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "operationId": "getHostOpenApiDocument",
                "summary": "This document: the app's own routes and the moderation extension's",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    )
    return spec
