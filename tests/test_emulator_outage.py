"""Outage faults of the stand-in, seen through the real livekit-api client: redirects,
raw answers, a black hole and the server's keep-alive timer."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from google.protobuf.message import DecodeError
from livekit.api import LiveKitAPI, TwirpError
from livekit.protocol import room as rp

from flask_livekit_moderation.testing import LiveKitEmulator
from tests.test_emulator import control, remove_req, room_call


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator() as emulator:
        emulator.add_room("r")
        emulator.add_participant("r", "alice")
        yield emulator


def raw(emulator: LiveKitEmulator, method: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    conn.request("POST", f"/twirp/livekit.RoomService/{method}", body=body)
    resp = conn.getresponse()
    out = (resp.status, dict(resp.getheaders()), resp.read())
    conn.close()
    return out


# ------------------------------------------------------------------ redirect
def test_redirect_is_followed_by_the_client_to_a_dead_port_and_changes_nothing(emu: LiveKitEmulator) -> None:
    emu.redirect_next("RemoveParticipant")
    with pytest.raises(aiohttp.ClientConnectorError):
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert emu.participant("r", "alice") is not None
    (call,) = emu.calls
    assert (call.method, call.status, call.fault, call.request) == (
        "RemoveParticipant",
        302,
        "redirect",
        None,
    )
    room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert emu.participant("r", "alice") is None


def test_redirect_answer_on_the_wire(emu: LiveKitEmulator) -> None:
    emu.redirect_next("ListRooms", n=2, location="http://127.0.0.1:1/x", status=307)
    for _ in range(2):
        status, headers, body = raw(emu, "ListRooms")
        assert (status, headers["Location"], body) == (307, "http://127.0.0.1:1/x", b"")
    # Queue used up: the real answer (no Content-Type: twirp's bad_route).
    status, _, body = raw(emu, "ListRooms")
    assert (status, json.loads(body)["code"]) == (404, "bad_route")
    with pytest.raises(ValueError):
        emu.redirect_next("ListRooms", status=200)


# -------------------------------------------------------------------- answer
def test_empty_200_is_an_empty_message_for_the_client_and_the_handler_does_not_run(
    emu: LiveKitEmulator,
) -> None:
    emu.answer_next("ListRooms")
    assert room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())) == rp.ListRoomsResponse()
    emu.answer_next("RemoveParticipant")
    assert room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice"))) == (
        rp.RemoveParticipantResponse()
    )
    assert emu.participant("r", "alice") is not None
    assert [(c.status, c.fault) for c in emu.calls] == [(200, "answer"), (200, "answer")]
    assert len(room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms) == 1


def test_html_answers(emu: LiveKitEmulator) -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    emu.answer_next("GetParticipant", status=502, body=page, content_type="text/html")
    with pytest.raises(TwirpError) as info:
        room_call(emu, lambda r: r.get_participant(remove_req("r", "alice")))
    # The client finds no twirp JSON in the page: code "unknown", no message.
    assert (info.value.status, info.value.code, info.value.message) == (502, "unknown", "")
    emu.answer_next("GetParticipant", body=page, content_type="text/html")
    with pytest.raises(DecodeError):
        room_call(emu, lambda r: r.get_participant(remove_req("r", "alice")))
    emu.answer_next("GetParticipant", status=503, body=page, content_type="text/html; charset=utf-8")
    status, headers, body = raw(emu, "GetParticipant")
    assert (status, headers["Content-Type"], body) == (503, "text/html; charset=utf-8", page)


# ---------------------------------------------------------------- black hole
def test_black_hole_holds_every_call_until_it_ends(emu: LiveKitEmulator) -> None:
    outcome: dict[str, BaseException | None] = {}

    async def held(method: str) -> None:
        async with LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            try:
                if method == "ListRooms":
                    await lk.room.list_rooms(rp.ListRoomsRequest())
                else:
                    await lk.room.remove_participant(remove_req("r", "alice"))
                outcome[method] = None
            except BaseException as exc:  # inspected below
                outcome[method] = exc

    with emu.black_hole():
        threads = [
            threading.Thread(target=asyncio.run, args=(held(m),)) for m in ("ListRooms", "RemoveParticipant")
        ]
        for th in threads:
            th.start()
        time.sleep(0.4)
        assert outcome == {}  # nobody got an answer
        assert emu.calls == []  # held calls are recorded when they end
        # Control routes still answer inside the hole.
        assert control(emu.url, emu.api_secret, "GET", "rooms")[0] == 200
        assert emu.participant("r", "alice") is not None
    for th in threads:
        th.join(5)
    assert set(outcome) == {"ListRooms", "RemoveParticipant"}
    assert all(isinstance(exc, aiohttp.ServerDisconnectedError) for exc in outcome.values()), outcome
    assert sorted((c.method, c.status, c.fault) for c in emu.calls) == [
        ("ListRooms", None, "black_hole"),
        ("RemoveParticipant", None, "black_hole"),
    ]
    assert emu.participant("r", "alice") is not None
    assert len(room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms) == 1


def test_black_hole_times_out_a_client_and_swallows_unknown_paths(emu: LiveKitEmulator) -> None:
    emu.start_black_hole()
    try:
        with pytest.raises(asyncio.TimeoutError):
            room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()), timeout=0.3)
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=0.3)
        sock.sendall(b"POST /twirp/livekit.Nope/X HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        with pytest.raises(socket.timeout):
            sock.recv(100)
    finally:
        emu.end_black_hole()
    sock.settimeout(2)
    assert sock.recv(100) == b""  # closed without an answer
    sock.close()
    deadline = time.monotonic() + 2
    while len(emu.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(c.method for c in emu.calls) == ["ListRooms", "X"]


def test_black_hole_control_route(emu: LiveKitEmulator) -> None:
    assert control(emu.url, emu.api_secret, "POST", "black_hole", {"on": True}) == (200, {"black_hole": True})
    with pytest.raises(asyncio.TimeoutError):
        room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()), timeout=0.3)
    assert control(emu.url, emu.api_secret, "POST", "black_hole", {"on": False}) == (
        200,
        {"black_hole": False},
    )
    assert len(room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms) == 1
    status, answer = control(emu.url, emu.api_secret, "POST", "black_hole", {"on": "yes"})
    assert status == 400 and "on" in answer["error"]


def test_stop_ends_a_black_hole() -> None:
    emulator = LiveKitEmulator().start()
    emulator.start_black_hole()
    with pytest.raises(asyncio.TimeoutError):
        room_call(emulator, lambda r: r.list_rooms(rp.ListRoomsRequest()), timeout=0.2)
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 1.0
    assert [(c.status, c.fault) for c in emulator.calls] == [(None, "black_hole")]


# -------------------------------------------------------------- fault routes
def test_redirect_and_answer_control_routes(emu: LiveKitEmulator) -> None:
    url, secret = emu.url, emu.api_secret
    assert control(
        url, secret, "POST", "faults", {"kind": "redirect", "method": "ListRooms", "location": "http://x/"}
    ) == (200, {"pending": {"ListRooms": 1}})
    status, headers, body = raw(emu, "ListRooms")
    assert (status, headers["Location"], body) == (302, "http://x/", b"")
    control(
        url,
        secret,
        "POST",
        "faults",
        {
            "kind": "answer",
            "method": "ListRooms",
            "status": 502,
            "body": "<p>x</p>",
            "content_type": "text/html",
        },
    )
    status, headers, body = raw(emu, "ListRooms")
    assert (status, headers["Content-Type"], body) == (502, "text/html", b"<p>x</p>")
    control(url, secret, "POST", "faults", {"kind": "answer", "method": "ListRooms", "body_base64": "/wA="})
    assert raw(emu, "ListRooms")[::2] == (200, b"\xff\x00")
    status, answer = control(
        url, secret, "POST", "faults", {"kind": "redirect", "method": "X", "status": 200}
    )
    assert status == 400 and "3xx" in answer["error"]


# ---------------------------------------------------------------- keep-alive
def _idle_connection_closed_after(port: int) -> float:
    """Seconds until the server closes an idle keep-alive connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"OK"):  # the whole answer: head and body
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    idle_from = time.monotonic()
    assert sock.recv(4096) == b""  # blocks until the server closes it
    sock.close()
    return time.monotonic() - idle_from


def test_keepalive_timeout_closes_idle_connections() -> None:
    with LiveKitEmulator(keepalive_timeout=0.2) as emulator:
        assert emulator.keepalive_timeout == 0.2
        assert 0.15 <= _idle_connection_closed_after(emulator.port) < 1.5

    async def stale_pool() -> Any:
        async with LiveKitAPI(emulator.url, emulator.api_key, emulator.api_secret) as lk:
            await lk.room.list_rooms(rp.ListRoomsRequest())
            await asyncio.sleep(0.4)  # the pooled connection is closed by the server meanwhile
            return await lk.room.list_rooms(rp.ListRoomsRequest())

    with LiveKitEmulator(keepalive_timeout=0.1) as emulator:
        emulator.add_room("r")
        # aiohttp notices the closed connection and opens a new one.
        assert [r.name for r in asyncio.run(stale_pool()).rooms] == ["r"]
    with pytest.raises(ValueError):
        LiveKitEmulator(keepalive_timeout=0)


def test_cli_keepalive_timeout() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask_livekit_moderation.testing", "--keepalive-timeout", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        port = int(info["url"].rsplit(":", 1)[1])
        assert _idle_connection_closed_after(port) < 1.0
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
