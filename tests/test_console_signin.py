"""The console's sign-in and session over real HTTP: throttling, the form, the same work for an
unknown tenant and a wrong password, the cookie's attributes, the security headers, and a
sign-out that ends every copy of the session cookie.

The example app (``example_app.create_app``) is served by a real threaded werkzeug server and
talks to the LiveKit stand-in; the browser's side of the same (SameSite, framing, the
confirmation dialog) is in ``test_console.py``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import werkzeug.security

from benchmarks.processes import child_pids, free_port
from example_app import create_app
from example_app.console import SESSION_LIFETIME, sessions_of
from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import ROOT, HttpServedApp, livekit_config, serve

PASSWORDS = {"acme": "acme-password-1", "globex": "globex-password-1"}
TOKENS = [{"id": "acme", "secret": "tok-acme-0123456789"}]
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


def console_app(emulator: LiveKitEmulator, **config: Any) -> Any:
    """The example app with two console accounts, pointed at ``emulator``."""
    return create_app(
        {
            **livekit_config(emulator),
            "LIVEKIT_MODERATION_AUTH_REQUIRED": True,
            "LIVEKIT_MODERATION_API_SECRETS": TOKENS,
            "LIVEKIT_MODERATION_BAN_STORE": "memory://",
            "CONSOLE_ACCOUNTS": dict(PASSWORDS),
            "SECRET_KEY": "a-test-secret-key-of-some-length",
            **config,
        }
    )


@pytest.fixture
def served(livekit_emulator: LiveKitEmulator) -> Iterator[Callable[..., HttpServedApp]]:
    """Serve the example app (``config`` on top of :func:`console_app`'s) over real HTTP."""
    livekit_emulator.add_room("acme-standup", room_metadata("acme"))
    livekit_emulator.add_participant("acme-standup", "alice")
    stack: list[Any] = []

    def factory(**config: Any) -> HttpServedApp:
        context = serve(console_app(livekit_emulator, **config))
        stack.append(context)
        return context.__enter__()

    yield factory
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def sign_in(session: requests.Session, url: str, tenant: str, password: str) -> requests.Response:
    """One sign-in through the form, as a browser sends it (the form's CSRF token first)."""
    form = session.get(url + "/signin", timeout=30)
    return session.post(
        url + "/signin",
        data={"csrf_token": _csrf(form.text), "tenant": tenant, "password": password},
        allow_redirects=False,
        timeout=30,
    )


def test_failed_sign_ins_are_throttled_per_account_then_per_address(served):
    console = served()
    browser = requests.Session()
    # The account's first window (5 failures a minute): the right password waits too.
    for _ in range(5):
        assert sign_in(browser, console.url, "acme", "guess").status_code == 401
    refused = sign_in(browser, console.url, "acme", "guess")
    assert refused.status_code == 429
    # A minute's window, in whole seconds rounded up: Flask-Limiter's arithmetic can say 61.
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert f"Too many failed sign-ins: try again in {refused.headers['Retry-After']} s." in refused.text
    assert refused.headers["Content-Security-Policy"] == CSP
    right = sign_in(browser, console.url, "acme", PASSWORDS["acme"])
    assert right.status_code == 429 and "session" not in right.cookies
    assert browser.get(console.url + "/", allow_redirects=False, timeout=30).status_code == 302
    # Another account from the same address is not locked out by acme's failures...
    assert sign_in(requests.Session(), console.url, "globex", PASSWORDS["globex"]).status_code == 302

    # ... until the address's own window is full (20 failures a minute, whatever the account):
    # 5 so far, and one each for 15 more names sprayed from here.
    for n in range(15):
        assert sign_in(requests.Session(), console.url, f"tenant-{n}", "guess").status_code == 401
    sprayed = sign_in(requests.Session(), console.url, "globex", PASSWORDS["globex"])
    assert sprayed.status_code == 429 and 1 <= int(sprayed.headers["Retry-After"]) <= 61


def test_the_wait_grows_with_the_failures(served):
    console = served(CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT="2 per 1 second; 4 per 20 seconds")
    browser = requests.Session()
    for _ in range(2):
        assert sign_in(browser, console.url, "acme", "guess").status_code == 401
    first = sign_in(browser, console.url, "acme", "guess")
    assert first.status_code == 429 and int(first.headers["Retry-After"]) <= 2  # whole seconds, rounded up
    # The one-second window ends: two more tries, then the longer window's wait.
    time.sleep(int(first.headers["Retry-After"]) + 0.2)
    for _ in range(2):
        assert sign_in(browser, console.url, "acme", "guess").status_code == 401
    second = sign_in(browser, console.url, "acme", "guess")
    assert second.status_code == 429 and 15 <= int(second.headers["Retry-After"]) <= 20


def test_the_public_sign_in_page_lists_no_tenant(served):
    console = served()
    page = requests.get(console.url + "/signin", timeout=30)
    assert page.status_code == 200
    field = re.search(r"<input id=\"tenant-field\"[^>]*>", page.text)
    assert field is not None and 'type="text"' in field.group(0)
    assert "<select" not in page.text and "<datalist" not in page.text
    assert not any(tenant in page.text for tenant in PASSWORDS)
    # What was typed comes back on a refusal, and nothing else.
    refused = sign_in(requests.Session(), console.url, "acme", "guess")
    assert refused.status_code == 401 and 'value="acme"' in refused.text and "globex" not in refused.text


def test_an_unknown_tenant_costs_the_same_hash_verification_as_a_wrong_password(served, monkeypatch):
    console = served()
    verified: list[str] = []
    real = werkzeug.security.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        verified.append(pwhash.split("$", 1)[0])  # the method and its parameters
        return real(pwhash, password)

    monkeypatch.setattr("example_app.signin.check_password_hash", counting)
    unknown = sign_in(requests.Session(), console.url, "initech", "guess")
    wrong = sign_in(requests.Session(), console.url, "acme", "guess")
    assert unknown.status_code == wrong.status_code == 401 and unknown.text == wrong.text.replace(
        'value="acme"', 'value="initech"'
    ).replace(_csrf(wrong.text), _csrf(unknown.text))
    assert len(verified) == 2 and verified[0] == verified[1]
    assert verified[0].startswith(("scrypt:", "pbkdf2:"))


@pytest.mark.timing
def test_an_unknown_tenant_answers_as_slowly_as_a_wrong_password(served):
    console = served(RATELIMIT_ENABLED=False)
    browser = requests.Session()
    csrf = _csrf(browser.get(console.url + "/signin", timeout=30).text)

    def attempt(tenant: str) -> float:
        started = time.perf_counter()
        answer = browser.post(
            console.url + "/signin",
            data={"csrf_token": csrf, "tenant": tenant, "password": "guess"},
            allow_redirects=False,
            timeout=30,
        )
        elapsed = time.perf_counter() - started
        assert answer.status_code == 401
        return elapsed

    unknown, wrong = [], []
    for _ in range(25):  # interleaved, so the machine's load falls on both alike
        unknown.append(attempt("initech"))
        wrong.append(attempt("acme"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.8 <= ratio <= 1.25, (statistics.median(unknown), statistics.median(wrong))


def test_the_cookie_is_lax_http_only_and_secure_over_https_and_lasts_hours(served, livekit_emulator):
    plain = served()
    signed_in = sign_in(requests.Session(), plain.url, "acme", PASSWORDS["acme"])
    assert signed_in.status_code == 302
    cookie = signed_in.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    assert plain.app.permanent_session_lifetime == SESSION_LIFETIME == timedelta(hours=8)

    https = served(PREFERRED_URL_SCHEME="https")
    secure = sign_in(requests.Session(), https.url, "acme", PASSWORDS["acme"])
    # requests keeps a Secure cookie for https only: read the header itself.
    form = requests.get(https.url + "/signin", timeout=30)
    assert "Secure" in form.headers["Set-Cookie"] and "SameSite=Lax" in form.headers["Set-Cookie"]
    assert secure.status_code == 400  # the form's cookie was not sent back over http

    # A request that came over HTTPS (here the test client's https base URL): Secure too.
    app = console_app(livekit_emulator)
    client = app.test_client()
    page = client.get("/signin", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]
    assert "Secure" not in app.test_client().get("/signin").headers["Set-Cookie"]


def test_console_pages_carry_the_security_headers(served):
    console = served()
    browser = requests.Session()
    pages = [browser.get(console.url + "/signin", timeout=30)]
    assert sign_in(browser, console.url, "acme", PASSWORDS["acme"]).status_code == 302
    pages.append(browser.get(console.url + "/", timeout=30))
    for page in pages:
        assert page.status_code == 200
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Content-Security-Policy"] == CSP
        assert page.headers["Cache-Control"] == "no-store"
    # No inline script or style for the CSP to block: every script is a module file.
    assert "<style" not in pages[1].text and " style=" not in pages[1].text
    assert re.findall(r"<script[^>]*>", pages[1].text) == [
        '<script type="module" src="/static/console/main.js">'
    ]


def test_sign_out_ends_every_copy_of_the_session(served):
    console = served()
    browser = requests.Session()
    assert sign_in(browser, console.url, "acme", PASSWORDS["acme"]).status_code == 302
    stolen = requests.Session()
    stolen.cookies.update(browser.cookies)
    listing = console.url + "/livekit/participants?room_name=acme-standup"
    assert stolen.get(listing, timeout=30).status_code == 200

    csrf = _csrf(browser.get(console.url + "/", timeout=30).text)
    assert browser.post(console.url + "/signout", data={"csrf_token": csrf}, timeout=30).ok
    after = stolen.get(listing, timeout=30)
    assert after.status_code == 401 and after.json()["code"] == "MISSING_TOKEN"
    page = stolen.get(console.url + "/", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"] == "/signin"


def test_a_sign_out_in_one_worker_ends_the_session_in_another(served, tmp_path: Path):
    # Two app instances, as two gunicorn workers are: one SECRET_KEY, one session file.
    shared = {"CONSOLE_SESSION_DB": str(tmp_path / "sessions.sqlite3")}
    first, second = served(**shared), served(**shared)
    assert sessions_of(first.app) is not sessions_of(second.app)
    browser = requests.Session()
    assert sign_in(browser, first.url, "acme", PASSWORDS["acme"]).status_code == 302
    listing = "/livekit/participants?room_name=acme-standup"
    assert browser.get(second.url + listing, timeout=30).status_code == 200  # cookies ignore the port

    csrf = _csrf(browser.get(first.url + "/", timeout=30).text)
    cookie = browser.cookies.get("session")
    assert cookie is not None
    assert browser.post(first.url + "/signout", data={"csrf_token": csrf}, timeout=30).ok
    replayed = requests.get(second.url + listing, cookies={"session": cookie}, timeout=30)
    assert replayed.status_code == 401


def _gunicorn_answers(log: Path, path: str) -> dict[int, set[int]]:
    """From gunicorn's access log (``%(p)s %(s)s %(U)s``): worker pid -> statuses for ``path``."""
    answers: dict[int, set[int]] = {}
    for line in log.read_text().splitlines():
        pid, status, url = line.split()
        if url == path:
            answers.setdefault(int(pid.strip("<>")), set()).add(int(status))
    return answers


def test_with_gunicorn_workers_a_sign_out_in_one_ends_the_session_in_every_one(livekit_emulator, tmp_path):
    livekit_emulator.add_room("acme-standup", room_metadata("acme"))
    access = tmp_path / "access.log"
    port = free_port()
    env = {
        **os.environ,
        **{k: str(v) for k, v in livekit_config(livekit_emulator).items()},
        "AUTH_REQUIRED": "true",
        "AUTH_API_SECRETS_JSON": json.dumps(TOKENS),
        "CONSOLE_ACCOUNTS_JSON": json.dumps(PASSWORDS),
        # What docs/console.md says several workers need: one key, one session file.
        "SECRET_KEY": "a-test-secret-key-of-some-length",
        "CONSOLE_SESSION_DB": str(tmp_path / "sessions.sqlite3"),
        "LIVEKIT_MODERATION_BAN_STORE": "memory://",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "2",
        "--access-logfile",
        str(access),
        "--access-logformat",
        "%(p)s %(s)s %(U)s",
        "example_app:create_app()",
    ]
    url = f"http://127.0.0.1:{port}"
    listing = "/livekit/participants"
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE) as gunicorn:
        try:
            deadline = time.monotonic() + 60
            while len(child_pids(gunicorn.pid)) < 2 or not _up(url):
                assert gunicorn.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
            workers = set(child_pids(gunicorn.pid))

            def from_every_worker(cookie: str, status: int) -> None:
                # A fresh connection each time: the workers take turns at random.
                for _ in range(200):
                    answer = requests.get(
                        url + listing,
                        params={"room_name": "acme-standup"},
                        cookies={"session": cookie},
                        headers={"Connection": "close"},
                        timeout=30,
                    )
                    assert answer.status_code == status
                    answered = {
                        pid for pid, seen in _gunicorn_answers(access, listing).items() if status in seen
                    }
                    if answered >= workers:
                        return
                raise AssertionError(f"only workers {answered} of {workers} answered")

            browser = requests.Session()
            assert sign_in(browser, url, "acme", PASSWORDS["acme"]).status_code == 302
            cookie = browser.cookies.get("session")
            assert cookie is not None
            from_every_worker(cookie, 200)  # every worker reads the one session file
            csrf = _csrf(browser.get(url + "/", timeout=30).text)
            assert browser.post(url + "/signout", data={"csrf_token": csrf}, timeout=30).ok
            from_every_worker(cookie, 401)  # and sees the sign-out, whichever worker did it
        finally:
            gunicorn.terminate()
            gunicorn.wait(20)


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet, or a worker still starting
        return False
