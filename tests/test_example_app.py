"""``python -m example_app`` end to end: a subprocess on a free port, driven over HTTP.

The seeded mode is checked by running the very curl commands it prints (translated to
``requests`` calls) and then checking their effects through the listing route; the moderator
console's session path with a ``requests`` session (the browser test is ``test_console.py``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from openapi_spec_validator import validate

from tests.helpers import JSON
from tests.openapi_checks import reached_components

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0


@dataclass
class RunningExample:
    """The example app's process, what it printed up to "Serving on", and its base URL."""

    process: subprocess.Popen[str]
    lines: list[str]
    url: str
    pump: threading.Thread

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def curls(self) -> list[str]:
        return [line for line in self.lines if line.startswith("curl ")]


def _pump(stream: Any, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _start(env_overrides: dict[str, str], tmp_path: Path) -> RunningExample:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "AUTH_"))}
    env.update({"PORT": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}, **env_overrides)
    stderr = open(tmp_path / "example_app.stderr", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "example_app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    stderr.close()
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait(10)
            pump.join(10)
            process.stdout.close()  # type: ignore[union-attr]
            log = (tmp_path / "example_app.stderr").read_text()
            pytest.fail(f"example app did not get ready; stdout:\n{seen}\nstderr:\n{log}")
        seen.append(line)
        if line.startswith("Serving on "):
            return RunningExample(process, seen, line.split()[2], pump)


@pytest.fixture
def start_example(tmp_path: Path) -> Iterator[Any]:
    started: list[RunningExample] = []

    def factory(**env: str) -> RunningExample:
        example = _start(env, tmp_path)
        started.append(example)
        return example

    yield factory
    for example in started:
        if example.process.poll() is None:
            example.process.kill()
            example.process.wait(10)
        example.pump.join(10)  # it ends at the pipe's EOF, after the process exited
        assert example.process.stdout is not None
        example.process.stdout.close()


def _stop(example: RunningExample) -> int:
    example.process.terminate()
    return example.process.wait(15)


def _as_request(command: str) -> dict[str, Any]:
    """The method, URL, headers and body of a ``curl`` command line."""
    args = shlex.split(command)
    assert args[0] == "curl"
    method, headers, data, url = "GET", {}, None, None
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-s":
            i += 1
        elif arg == "-X":
            method, i = args[i + 1], i + 2
        elif arg == "-H":
            name, _, value = args[i + 1].partition(": ")
            headers[name] = value
            i += 2
        elif arg == "-d":
            data, i = args[i + 1], i + 2
        else:
            assert url is None, f"unexpected argument {arg!r} in {command!r}"
            url, i = arg, i + 1
    if data is not None and method == "GET":
        method = "POST"  # what curl does with -d and no -X
    return {"method": method, "url": url, "headers": headers, "data": data}


def _run(command: str) -> requests.Response:
    return requests.request(timeout=30, **_as_request(command))


def _list(url: str, room: str, token: str) -> requests.Response:
    return requests.get(
        f"{url}/livekit/participants",
        params={"room_name": room},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_seeded_mode_prints_commands_that_work(start_example):
    example = start_example()
    text = example.text
    assert "BUILT-IN STAND-IN" in text and "not a real LiveKit server" in text
    assert "LIVEKIT_URL=" in text and "LIVEKIT_API_KEY=" in text and "LIVEKIT_API_SECRET=" in text
    assert example.url.startswith("http://127.0.0.1:")

    requests_ = [_as_request(c) for c in example.curls()]
    shape = [(r["method"], urlsplit(r["url"]).path) for r in requests_]
    assert shape == [
        ("GET", "/livekit/participants"),
        ("POST", "/livekit/participant/mute"),
        ("POST", "/livekit/participant/mute"),
        ("DELETE", "/livekit/participant"),
        ("GET", "/livekit/participants"),
        ("GET", "/livekit/participants"),
        ("GET", "/livekit/openapi.json"),
        ("GET", "/openapi.json"),
    ]
    assert all(r["url"].startswith(example.url + "/") for r in requests_)
    list_cmd, mute_cmd, unmute_cmd, remove_cmd, globex_cmd, foreign_cmd, openapi_cmd, _ = example.curls()
    token = requests_[0]["headers"]["Authorization"].removeprefix("Bearer ")
    room = parse_qs(urlsplit(requests_[0]["url"]).query)["room_name"][0]

    listing = _run(list_cmd)
    assert listing.status_code == 200
    people = {p["identity"]: p for p in listing.json()["participants"]}
    assert len(people) >= 2
    for person in people.values():
        assert sorted((t["type"], t["source"]) for t in person["tracks"]) == [
            ("audio", "microphone"),
            ("video", "camera"),
        ]

    mute_body = json.loads(_as_request(mute_cmd)["data"])
    target, track_sid = mute_body["participant_identity"], mute_body["track_sid"]
    mic = next(t for t in people[target]["tracks"] if t["source"] == "microphone")
    assert track_sid == mic["sid"] and mic["muted"] is False
    # The SIDs printed in the room overview are the ones the commands use.
    assert track_sid in text and people[target]["identity"] in text

    muted = _run(mute_cmd)
    assert muted.status_code == 200 and muted.json()["muted"] is True
    after = {p["identity"]: p for p in _list(example.url, room, token).json()["participants"]}
    assert next(t for t in after[target]["tracks"] if t["sid"] == track_sid)["muted"] is True

    unmuted = _run(unmute_cmd)
    assert unmuted.status_code == 200 and unmuted.json()["muted"] is False
    after = {p["identity"]: p for p in _list(example.url, room, token).json()["participants"]}
    assert next(t for t in after[target]["tracks"] if t["sid"] == track_sid)["muted"] is False

    removed_identity = json.loads(_as_request(remove_cmd)["data"])["participant_identity"]
    assert removed_identity in people
    removed = _run(remove_cmd)
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    left = {p["identity"] for p in _list(example.url, room, token).json()["participants"]}
    assert left == set(people) - {removed_identity}
    assert _run(remove_cmd).status_code == 404  # already gone

    own = _run(globex_cmd)
    assert own.status_code == 200 and len(own.json()["participants"]) >= 1
    foreign = _run(foreign_cmd)
    assert foreign.status_code == 404
    unknown = _list(
        example.url, "no-such-room", requests_[5]["headers"]["Authorization"].removeprefix("Bearer ")
    )
    assert foreign.content == unknown.content

    document = _run(openapi_cmd)
    assert document.status_code == 200
    validate(document.json())

    # The host app's own page, and auth really is on.
    assert requests.get(example.url + "/", timeout=30).status_code == 200
    assert requests.get(f"{example.url}/livekit/participants?room_name={room}", timeout=30).status_code == 401

    assert _stop(example) == 0


def test_the_app_serves_its_own_document_with_the_extension_s_routes_merged_in(start_example):
    example = start_example()
    host_curl = example.curls()[-1]
    assert _as_request(host_curl)["url"] == example.url + "/openapi.json"

    answer = _run(host_curl)
    served = requests.get(example.url + "/livekit/openapi.json", timeout=30).json()

    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/healthz", "/openapi.json"} | set(served["paths"])
    assert {path: document["paths"][path] for path in served["paths"]} == served["paths"]
    extension = reached_components(document, list(served["paths"]))
    assert extension and all(name.split("/", 1)[1].startswith("LiveKitModeration") for name in extension)
    assert reached_components(document, ["/healthz"]) == {"schemas/Health"}
    assert document["components"]["schemas"]["Health"]["properties"]["status"] == {
        "type": "string",
        "enum": ["ok"],
    }
    assert requests.get(example.url + "/healthz", timeout=30).json() == {"status": "ok"}
    assert _stop(example) == 0


def test_seeded_mode_has_a_room_no_tenant_may_moderate(start_example):
    example = start_example()
    requests_ = [_as_request(c) for c in example.curls()]
    tokens = {
        r["headers"]["Authorization"].removeprefix("Bearer ")
        for r in requests_
        if "Authorization" in r["headers"]
    }
    assert len(tokens) == 2
    overview = example.text.split("Rooms", 1)[1].split("Try these", 1)[0]
    unowned = [line.split()[0] for line in overview.splitlines() if "no auth_id" in line]
    assert len(unowned) == 1
    for token in tokens:
        answer = _list(example.url, unowned[0], token)
        assert answer.status_code == 404
        assert answer.content == _list(example.url, "no-such-room", token).content
    assert _stop(example) == 0


def test_with_livekit_url_it_uses_that_server_and_seeds_nothing(start_example, livekit_emulator):
    livekit_emulator.add_room("real-room")
    livekit_emulator.add_participant("real-room", "zoe")
    example = start_example(
        LIVEKIT_URL=livekit_emulator.url,
        LIVEKIT_API_KEY=livekit_emulator.api_key,
        LIVEKIT_API_SECRET=livekit_emulator.api_secret,
        AUTH_REQUIRED="true",
        AUTH_API_SECRETS_JSON='[{"id": "mine", "secret": "my-token-0123456789"}]',
    )
    assert "STAND-IN" not in example.text
    assert livekit_emulator.url in example.text
    assert f"Moderator console: {example.url}/  (no accounts: set CONSOLE_ACCOUNTS_JSON" in example.text
    assert [room.name for room in livekit_emulator.rooms()] == ["real-room"]

    # The listing runs beside the room check (ListRooms) and is cancelled when the check refuses
    # (access.beside_room_check). A ListRooms 0.5 s slow lets the listing reach LiveKit first:
    # a refusal that came back before the listing was taken in would leave it unseen.
    livekit_emulator.set_latency(0.5, "ListRooms")
    answer = requests.get(
        example.url + "/livekit/participants",
        params={"room_name": "real-room"},
        headers={"Authorization": "Bearer my-token-0123456789"},
        timeout=30,
    )
    # The room names no auth_id, so the "mine" tenant gets the masked 404: auth came from the env.
    assert answer.status_code == 404
    assert sorted(livekit_emulator.call_names()) == ["ListParticipants", "ListRooms"]
    assert [room.name for room in livekit_emulator.rooms()] == ["real-room"]
    assert _stop(example) == 0


def _signed_in(url: str, tenant: str, password: str) -> requests.Session:
    """A browser-like session signed in to the console through its form."""
    session = requests.Session()
    form = session.get(url + "/signin", timeout=30)
    assert form.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = session.post(
        url + "/signin",
        data={"csrf_token": csrf.group(1), "tenant": tenant, "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    return session


def test_seeded_mode_serves_the_console_and_its_session_moderates_without_a_token(start_example):
    example = start_example()
    console = next(line for line in example.lines if line.startswith("Moderator console: "))
    assert console.split()[2] == example.url + "/"
    passwords = dict(re.findall(r"^\s+tenant (\S+)\s+password (\S+)$", example.text, re.MULTILINE))
    assert set(passwords) == {"acme", "globex"}
    tokens = [
        r["headers"]["Authorization"].removeprefix("Bearer ")
        for r in map(_as_request, example.curls())
        if "Authorization" in r["headers"]
    ]

    # Signed out: the console sends you to its sign-in form; a wrong password is refused.
    first = requests.get(example.url + "/", timeout=30)
    assert first.status_code == 200 and first.url == example.url + "/signin"
    assert 'type="password"' in first.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', first.text)
    assert csrf is not None
    refused = requests.post(
        example.url + "/signin",
        data={"csrf_token": csrf.group(1), "tenant": "acme", "password": passwords["globex"]},
        cookies=first.cookies,
        allow_redirects=False,
        timeout=30,
    )
    assert refused.status_code == 401 and "Wrong tenant or password." in refused.text
    no_cookie = requests.post(
        example.url + "/signin",
        data={"csrf_token": csrf.group(1), "tenant": "acme", "password": passwords["acme"]},
        allow_redirects=False,
        timeout=30,
    )
    assert no_cookie.status_code == 400 and "The form expired" in no_cookie.text

    session = _signed_in(example.url, "acme", passwords["acme"])
    cookie = next(c for c in session.cookies if c.name == "session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    page = session.get(example.url + "/", timeout=30)
    assert page.status_code == 200 and 'data-room="acme-standup"' in page.text
    picker = page.text.split('id="room-select"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', picker) == ["acme-standup", "acme-support"]
    assert not any(token in page.text for token in tokens)

    # The cookie is the credential: the extension's request_loader maps it to acme.
    listing = session.get(
        example.url + "/livekit/participants", params={"room_name": "acme-standup"}, timeout=30
    )
    assert listing.status_code == 200
    assert {p["identity"] for p in listing.json()["participants"]} == {"alice", "bob"}
    foreign = session.get(
        example.url + "/livekit/participants", params={"room_name": "globex-review"}, timeout=30
    )
    unknown = session.get(
        example.url + "/livekit/participants", params={"room_name": "no-such-room"}, timeout=30
    )
    assert foreign.status_code == 404 and foreign.content == unknown.content

    # What a cross-site form could send with the cookie (text/plain) is refused: 415.
    body = json.dumps({"room_name": "acme-standup", "participant_identity": "bob"})
    forged = session.delete(
        example.url + "/livekit/participant", data=body, headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert forged.status_code == 415 and forged.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    removed = session.delete(
        example.url + "/livekit/participant",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    alice = json.dumps({"room_name": "acme-standup", "participant_identity": "alice"})
    assert session.delete(example.url + "/livekit/participant", data=alice, headers=JSON, timeout=30).ok
    empty = session.get(
        example.url + "/livekit/participants", params={"room_name": "acme-standup"}, timeout=30
    )
    assert empty.status_code == 200 and empty.json()["participants"] == []

    # Bans: kept in memory (no file in the repository), enforced through the stand-in's webhook.
    assert f"  {example.url}/livekit/webhook" in example.lines
    ban = json.dumps(
        {
            "room_name": "acme-support",
            "participant_identity": "frank",
            "duration_seconds": 60,
            "reason": "demo",
        }
    )
    banned = session.post(example.url + "/livekit/bans", data=ban, headers=JSON, timeout=30)
    assert banned.status_code == 201 and banned.json()["removed"] is True
    bans = session.get(example.url + "/livekit/bans", params={"room_name": "acme-support"}, timeout=30)
    assert [b["participant_identity"] for b in bans.json()["bans"]] == ["frank"]
    assert not list(ROOT.glob("**/livekit_moderation.sqlite3*"))

    # The console's own forms need their CSRF token; signing out ends the cookie's rights.
    assert (
        session.post(example.url + "/signout", data={"csrf_token": "forged"}, timeout=30).status_code == 400
    )
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', session.get(example.url + "/", timeout=30).text)
    assert csrf is not None
    assert session.post(example.url + "/signout", data={"csrf_token": csrf.group(1)}, timeout=30).ok
    after = session.get(
        example.url + "/livekit/participants", params={"room_name": "acme-standup"}, timeout=30
    )
    assert after.status_code == 401 and after.json()["code"] == "MISSING_TOKEN"

    # Tokens keep working beside sessions.
    assert _list(example.url, "acme-support", tokens[0]).status_code == 200
    assert _stop(example) == 0
