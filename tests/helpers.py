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
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers, get_encoding_from_headers
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
#: A credential of tenant-a holding no scope: every route with a caller answers it 403.
TOKEN_NO_SCOPE = "no-scope-0123456789"
#: TENANTS and that credential.
SCOPED_TENANTS = [*TENANTS, {"id": "tenant-a", "secret": TOKEN_NO_SCOPE, "scopes": []}]

#: The one body of every masked refusal: a foreign room, no room, no participant.
MASKED_404 = {"error": errors.PARTICIPANT_NOT_FOUND.message, "code": errors.PARTICIPANT_NOT_FOUND.code}
#: The masked 404 of a route about a whole room (listing, room mute, bans listing).
MASKED_ROOM_404 = {"error": errors.ROOM_NOT_FOUND.message, "code": errors.ROOM_NOT_FOUND.code}
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}

#: The repository root: benchmark scripts run from here (``python -m benchmarks...``).
ROOT = Path(__file__).resolve().parent.parent


class ServedApp:
    """A host app and the way a test sends it HTTP requests; answers are ``requests.Response``.

    Two kinds: :func:`in_process` (Flask's test client; what route tests use) and :func:`serve`
    (a real werkzeug server on 127.0.0.1 and a ``requests`` session; for tests of what a
    server does). Either way the app talks to LiveKit (the stand-in) over real HTTP.
    """

    app: Flask
    #: Where the app is reached: a real ``http://127.0.0.1:PORT``, or ``http://localhost``
    #: (the test client's host) in process.
    url: str

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """``method path`` with ``Authorization: Bearer token`` when given; ``kwargs`` as for
        ``requests`` (``json``, ``params``, ``headers``, ``data``, ``timeout``)."""
        raise NotImplementedError

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


def _with_token(headers: Any, token: str | None) -> dict[str, Any]:
    merged = dict(headers or {})
    if token is not None:
        merged["Authorization"] = f"Bearer {token}"
    return merged


class HttpServedApp(ServedApp):
    """``app`` served by a threaded werkzeug server at ``url``, reached with a ``requests`` session."""

    def __init__(self, app: Flask, url: str) -> None:
        self.app = app
        self.url = url
        self.session = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = _with_token(kwargs.pop("headers", None), token)
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, headers=headers, **kwargs)


#: The ``requests`` keyword arguments :class:`InProcessApp` understands (``timeout`` is moot
#: in process: nothing waits on a socket between the test and the app).
_IN_PROCESS_KWARGS = frozenset({"json", "params", "data", "timeout", "allow_redirects"})


class InProcessApp(ServedApp):
    """``app`` reached through Flask's test client, in the test's own thread.

    The request is prepared by ``requests`` itself (body bytes, ``Content-Type``,
    ``Content-Length``, the encoded query string and its default headers), handed to the app
    by the test client as a WSGI environ, and the answer comes back as a ``requests.Response``
    (case-insensitive headers, repeated ones joined with ``", "``, ``text`` decoded as
    ``requests`` decodes it). Cookies persist as in a session; the test's threads share the
    client, which keeps nothing else between requests. What needs a socket is refused with a
    pointer to :func:`serve`: a streamed body, a redirect to follow, a compressed answer.
    ``tests/test_in_process.py`` checks that both ways answer alike.
    """

    url = "http://localhost"

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()

    def __enter__(self) -> InProcessApp:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        # As a requests session merges its default headers: case-insensitively, None removes one.
        headers = default_headers()
        headers.update(_with_token(kwargs.pop("headers", None), token))
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]
        unknown = set(kwargs) - _IN_PROCESS_KWARGS
        if unknown:
            raise TypeError(f"in process, no support for {sorted(unknown)}: use serve() for those")
        follow = kwargs.pop("allow_redirects", True)
        kwargs.pop("timeout", None)
        prepared = requests.Request(method, self.url + path, headers=headers, **kwargs).prepare()
        assert prepared.url is not None and prepared.url.startswith(self.url + "/"), prepared.url
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        if body is not None and not isinstance(body, bytes):
            raise NotImplementedError("a streamed (chunked) body: use serve() for this test")
        answer = self.client.open(
            prepared.url[len(self.url) :],
            method=prepared.method,
            headers=list(prepared.headers.items()),
            data=body,
        )
        try:
            response = requests.Response()
            response.status_code = answer.status_code
            response.reason = answer.status.partition(" ")[2]
            joined: dict[str, list[str]] = {}
            for name, value in answer.headers.items():
                joined.setdefault(name.lower(), []).append(value)
            names = {name.lower(): name for name, _ in answer.headers.items()}
            response.headers = CaseInsensitiveDict(
                {names[key]: ", ".join(values) for key, values in joined.items()}
            )
            response._content = answer.get_data()
            response.encoding = get_encoding_from_headers(response.headers)
            response.url = prepared.url
            response.request = prepared
        finally:
            answer.close()
        if "Content-Encoding" in response.headers:
            raise NotImplementedError("a compressed answer: use serve() for this test")
        if follow and response.is_redirect:
            raise NotImplementedError(
                f"{method} {path} answered {response.status_code} to {response.headers['Location']}: "
                "pass allow_redirects=False, or use serve() to follow it as a client would"
            )
        return response


def in_process(app: Flask) -> InProcessApp:
    """``app`` reached through its test client (see :class:`InProcessApp`); also usable as
    ``with in_process(app) as served:``, like :func:`serve`."""
    return InProcessApp(app)


@contextmanager
def serve(app: Flask) -> Iterator[HttpServedApp]:
    """Serve ``app`` on a free port with a threaded server for the duration of the block.

    For tests of what a real server does (connections, keep-alive, timing, raw bytes on the
    wire, other processes calling in); route tests use :func:`in_process`.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # shutdown() waits for the serving loop's next poll: a short one ends each test sooner.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
    thread.start()
    served = HttpServedApp(app, f"http://127.0.0.1:{server.server_port}")
    try:
        yield served
    finally:
        served.session.close()
        server.shutdown()
        thread.join(5)
        server.server_close()


def livekit_config(emulator: LiveKitEmulator) -> dict[str, Any]:
    """The app.config keys that point the extension at ``emulator``."""
    return {
        "LIVEKIT_URL": emulator.url,
        "LIVEKIT_API_KEY": emulator.api_key,
        "LIVEKIT_API_SECRET": emulator.api_secret,
        "LIVEKIT_MODERATION_TIMEOUT": 3,
        # No reconciler thread outliving its test (its first pass, 30 s later, would open the
        # default store under the working directory); tests of the reconciler turn it on.
        "LIVEKIT_MODERATION_RECONCILE_INTERVAL": 0,
        # Every write is recorded in the audit log, kept in the ban store: never the default
        # SQLite file under the working directory (the repository). Tests of a store set theirs.
        "LIVEKIT_MODERATION_BAN_STORE": "memory://",
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
