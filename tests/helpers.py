"""What the test modules share: the tenants, a served app, and the answers they expect.

Fixtures live in ``conftest.py``; plain helpers live here and are imported by name
(``from tests.helpers import serve, TOKEN_A``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import make_server

from flask_livekit_moderation import LiveKitModeration, errors
from flask_livekit_moderation.testing import LiveKitEmulator

#: Two tenants and their caller secrets, used across the suite.
TENANTS = [
    {"id": "tenant-a", "secret": "secret-a-0123456789"},
    {"id": "tenant-b", "secret": "secret-b-0123456789"},
]
TOKEN_A = TENANTS[0]["secret"]
TOKEN_B = TENANTS[1]["secret"]

#: The one body of every masked refusal: a foreign room, no room, no participant.
MASKED_404 = {"error": errors.PARTICIPANT_NOT_FOUND.message, "code": errors.PARTICIPANT_NOT_FOUND.code}
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}

#: The repository root: benchmark scripts run from here (``python -m benchmarks...``).
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServedApp:
    """A Flask app served by a threaded werkzeug server on 127.0.0.1, and an HTTP session."""

    app: Flask
    url: str
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, headers=headers, **kwargs)

    def remove(self, room: str, identity: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        body = {"room_name": room, "participant_identity": identity}
        return self.request("DELETE", "/livekit/participant", token, json=body, **kwargs)

    def mute(
        self, room: str, identity: str, track_sid: str, muted: bool, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        body = {"room_name": room, "participant_identity": identity, "track_sid": track_sid, "muted": muted}
        return self.request("POST", "/livekit/participant/mute", token, json=body, **kwargs)

    def participants(self, room: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", "/livekit/participants", token, params={"room_name": room}, **kwargs)


@contextmanager
def serve(app: Flask) -> Iterator[ServedApp]:
    """Serve ``app`` on a free port with a threaded server for the duration of the block."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    served = ServedApp(app=app, url=f"http://127.0.0.1:{server.server_port}")
    try:
        yield served
    finally:
        served.session.close()
        server.shutdown()
        thread.join(5)


def livekit_config(emulator: LiveKitEmulator) -> dict[str, Any]:
    """The app.config keys that point the extension at ``emulator``."""
    return {
        "LIVEKIT_URL": emulator.url,
        "LIVEKIT_API_KEY": emulator.api_key,
        "LIVEKIT_API_SECRET": emulator.api_secret,
        "LIVEKIT_MODERATION_TIMEOUT": 3,
    }


def host_app(emulator: LiveKitEmulator, **config: Any) -> Flask:
    """A bare host app with the extension, pointed at ``emulator``; ``config`` on top."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(emulator))
    app.config.update(config)
    LiveKitModeration(app)
    return app


def run_benchmark(
    module: str, *args: str, out: Path, out_flag: str = "--out"
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``python -m <module> <args> <out_flag> <out>`` from the repository root.

    Returns the finished process and the JSON report it wrote (a short run of a benchmark
    script, so that it cannot rot).
    """
    done = subprocess.run(
        [sys.executable, "-m", module, *args, out_flag, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return done, report
