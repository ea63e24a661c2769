"""Route tests reach the app in process, and it answers them exactly as it answers over HTTP.

Route tests reach the host app through Flask's test client (:class:`tests.helpers.InProcessApp`);
here the same requests go to one app both ways, in process and served by werkzeug on
127.0.0.1, from the same stand-in state: status, body bytes, the headers a route sets and the
LiveKit calls must be identical.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import JSON, TENANTS, TEXT, TOKEN_A, TOKEN_B, host_app, in_process, serve

#: A room name that needs encoding in a query string. It is tenant-a's: a refused listing may or
#: may not have reached ListParticipants when the room check refuses, a served one has.
ODD_ROOM = "r\u00e9union & co/1?"
REMOVE = {"json": {"room_name": "room-a", "participant_identity": "p1"}}
MUTE = {"json": {"room_name": "room-a", "participant_identity": "p2", "track_sid": "TR_x", "muted": True}}

#: (method, path, token, requests keyword arguments): a sample of what route tests send.
REQUESTS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("DELETE", "/livekit/participant", TOKEN_A, REMOVE),
    ("DELETE", "/livekit/participant", TOKEN_B, REMOVE),
    ("DELETE", "/livekit/participant", None, REMOVE),
    ("DELETE", "/livekit/participant", "wrong", REMOVE),
    ("DELETE", "/livekit/participant", TOKEN_A, {"json": {"room_name": " ", "participant_identity": 7}}),
    ("DELETE", "/livekit/participant", TOKEN_A, {"data": b"{not json", "headers": JSON}),
    ("DELETE", "/livekit/participant", TOKEN_A, {"data": "{}", "headers": TEXT}),
    ("DELETE", "/livekit/participant", TOKEN_A, {"data": b" " * (64 * 1024 + 1), "headers": JSON}),
    ("POST", "/livekit/participant/mute", TOKEN_A, MUTE),
    ("GET", "/livekit/participants", TOKEN_A, {"params": {"room_name": "room-a"}}),
    ("GET", "/livekit/participants", None, {"params": {"room_name": "room-a", "api_key": TOKEN_A}}),
    ("GET", "/livekit/participants", TOKEN_A, {"params": {"room_name": ODD_ROOM}}),
    ("GET", "/livekit/participants?room_name=room-a&room_name=room-b", TOKEN_A, {}),
    ("GET", "/livekit/participants", TOKEN_A, {}),
    ("PUT", "/livekit/participant/mute", TOKEN_A, {}),
    ("GET", "/livekit/no-such-route", TOKEN_A, {}),
    ("OPTIONS", "/livekit/participant", None, {}),
    ("POST", "/livekit/room/mute", TOKEN_A, {"json": {"room_name": "room-a", "muted": True}}),
]

#: Headers a real server adds or words differently: the rest must match.
SERVER_HEADERS = {"date", "server", "connection", "content-length"}


def _seed(emulator: LiveKitEmulator) -> None:
    emulator.clear()
    emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    emulator.add_room("room-b", metadata=room_metadata("tenant-b"))
    emulator.add_room(ODD_ROOM, metadata=room_metadata("tenant-a"))
    emulator.add_participants("room-a", ["p1", "p2"])
    emulator.clear_calls()


def _same_seed(text: str) -> str:
    """Each seeding draws new SIDs and a new join time: the rest of an answer must match."""
    text = re.sub(r"\b(PA|TR|RM)_[A-Za-z0-9]+", "<sid>", text)
    return re.sub(r'"joined_at": ?[0-9]+', '"joined_at":0', text)


def _seen(emulator: LiveKitEmulator, answer: requests.Response) -> dict[str, Any]:
    assert emulator.wait_idle()
    is_json = answer.headers.get("Content-Type") == "application/json"
    return {
        "status": answer.status_code,
        "reason": answer.reason,
        "text": _same_seed(answer.text),
        "body": _same_seed(answer.content.decode("utf-8")).encode("utf-8"),
        "json": json.loads(_same_seed(json.dumps(answer.json()))) if is_json else None,
        "headers": {k.lower(): v for k, v in answer.headers.items() if k.lower() not in SERVER_HEADERS},
        "calls": sorted(emulator.call_names()),
        "room-a": sorted(p.identity for p in emulator.participants("room-a")),
    }


@pytest.mark.parametrize(("method", "path", "token", "kwargs"), REQUESTS)
def test_in_process_answers_as_the_real_server_does(
    livekit_emulator: LiveKitEmulator, method: str, path: str, token: str | None, kwargs: dict[str, Any]
) -> None:
    # The two answers are compared whole: LiveKit's list order (shuffled in CI's floors run)
    # must not differ between them.
    livekit_emulator.shuffle = False
    app = host_app(
        livekit_emulator, LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS
    )
    seen = {}
    with serve(app) as over_http:
        for name, served in (("over HTTP", over_http), ("in process", in_process(app))):
            _seed(livekit_emulator)
            seen[name] = _seen(livekit_emulator, served.request(method, path, token, **kwargs))
    assert seen["in process"] == seen["over HTTP"]


def test_a_redirect_or_a_streamed_body_is_refused_in_process(livekit_emulator: LiveKitEmulator) -> None:
    app = host_app(livekit_emulator)

    @app.get("/elsewhere")
    def elsewhere() -> Any:
        return "", 302, {"Location": "/livekit/openapi.json"}

    served = in_process(app)
    with pytest.raises(NotImplementedError, match="serve"):
        served.request("GET", "/elsewhere")
    assert served.request("GET", "/elsewhere", allow_redirects=False).status_code == 302
    with pytest.raises(NotImplementedError, match="serve"):
        served.request("DELETE", "/livekit/participant", data=iter([b"{}"]), headers=JSON)
    with pytest.raises(TypeError, match="serve"):
        served.request("GET", "/livekit/openapi.json", stream=True)
