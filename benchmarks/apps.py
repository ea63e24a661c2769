"""The WSGI apps gunicorn serves in the benchmarks: ours, the naive and DIY references, each
with ``/noop``.

All read ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``, ``AUTH_REQUIRED``
and ``AUTH_API_SECRETS_JSON`` from the environment (see ``example_app``). Serve them with
``gunicorn 'benchmarks.apps:ours()'`` or ``gunicorn 'benchmarks.apps:naive()'``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from example_app import create_app

from .diy_app import create_diy_app
from .naive_app import create_naive_app


def _with_noop(app: Flask) -> Flask:
    # The HTTP/server floor: the same gunicorn, Flask and JSON response, no LiveKit call.
    @app.get("/noop")
    def noop() -> Any:
        return jsonify({})

    return app


def ours() -> Flask:
    """The example host app with the moderation extension, plus ``/noop``."""
    return _with_noop(create_app())


def naive() -> Flask:
    """The naive reference app (:mod:`benchmarks.naive_app`), plus ``/noop``."""
    return _with_noop(create_naive_app())


def diy() -> Flask:
    """The hand-written reference (:mod:`benchmarks.diy_app`), plus ``/noop``."""
    return _with_noop(create_diy_app())
