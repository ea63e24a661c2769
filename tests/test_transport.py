"""The Twirp transport answers exactly as livekit-api's own TwirpClient (on aiohttp) does.

Each answer below is given by the stand-in (over real HTTP) once to livekit-api's RoomService
on an aiohttp session and once to the same RoomService class on our transport; the outcome
(the message, or the error's type, code, message, status and metadata) must be the same.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from livekit.api import TwirpError
from livekit.api.room_service import RoomService
from livekit.protocol.room import ListRoomsRequest, RoomParticipantIdentity

from flask_livekit_moderation.client import TokenCachingRoomService
from flask_livekit_moderation.testing import LiveKitEmulator
from flask_livekit_moderation.transport import NoAnswer, TwirpTransport, UnusableAnswer

#: (status, Content-Type, body) LiveKit (or something in front of it) may answer.
ANSWERS = [
    (404, "application/json", json.dumps({"code": "not_found", "msg": "participant does not exist"})),
    (
        400,
        "application/json",
        json.dumps({"code": "bad_route", "msg": "no handler", "meta": {"twirp_invalid_route": "POST /x"}}),
    ),
    (412, "application/json; charset=utf-8", json.dumps({"code": "failed_precondition", "msg": "m"})),
    (401, "text/plain", "invalid authorization token"),
    (403, "text/plain", json.dumps({"code": "permission_denied", "msg": "JSON, but said to be text"})),
    (429, "application/problem+json", json.dumps({"code": "resource_exhausted"})),
    (500, "application/json", json.dumps({"code": "internal", "msg": "boom"})),
    (502, "text/html", "<html>Bad Gateway</html>"),
    (503, "application/json", json.dumps({"code": "unavailable", "msg": "later", "meta": {"a": "b"}})),
    (500, "application/json", "{not json"),
    (500, "application/json", json.dumps(["a list"])),
]


def _outcome(call: Any) -> tuple[Any, ...]:
    try:
        answer = asyncio.run(call())
    except TwirpError as exc:
        return (type(exc).__name__, exc.code, exc.message, exc.status, exc.metadata)
    except AttributeError as exc:  # livekit-api reads a non-object JSON body with .get
        return ("AttributeError", str(exc))
    return ("answer", answer.SerializeToString())


@asynccontextmanager
async def _on_our_transport(emulator: LiveKitEmulator) -> AsyncIterator[TokenCachingRoomService]:
    """livekit-api's RoomService (with our token cache) sending over our transport to ``emulator``."""
    transport = TwirpTransport(emulator.url)
    try:
        yield TokenCachingRoomService(transport, emulator.url, emulator.api_key, emulator.api_secret)
    finally:
        await transport.close()


def _both(emulator: LiveKitEmulator, method: str, send: Any, inject: Any) -> tuple[Any, Any]:
    async def theirs() -> Any:
        async with aiohttp.ClientSession() as session:
            service = RoomService(
                session, emulator.url, emulator.api_key, emulator.api_secret, failover=False
            )
            return await send(service)

    async def ours() -> Any:
        async with _on_our_transport(emulator) as service:
            return await send(service)

    inject()
    expected = _outcome(theirs)
    inject()
    got = _outcome(ours)
    return expected, got


@pytest.mark.parametrize(("status", "content_type", "body"), ANSWERS)
def test_an_error_answer_is_the_same_twirp_error_as_livekit_api_gives(
    livekit_emulator: LiveKitEmulator, status: int, content_type: str, body: str
) -> None:
    livekit_emulator.add_room("room-1")

    def inject() -> None:
        livekit_emulator.answer_next(
            "ListRooms", status=status, body=body.encode(), content_type=content_type
        )

    expected, got = _both(
        livekit_emulator, "ListRooms", lambda s: s.list_rooms(ListRoomsRequest(names=["room-1"])), inject
    )
    if expected[0] == "AttributeError":
        # livekit-api fails on its own reading (an AttributeError, no TwirpError); we answer as
        # for any body that is no JSON object.
        assert got == ("ServerError", "unknown", "", status, {})
    else:
        assert expected[0] == "ServerError"  # TwirpError is its alias
        assert got == expected


def test_answers_and_refusals_of_the_stand_in_are_the_same(livekit_emulator: LiveKitEmulator) -> None:
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["alice"])
    calls = [
        lambda s: s.list_rooms(ListRoomsRequest(names=["room-1"])),
        lambda s: s.get_participant(RoomParticipantIdentity(room="room-1", identity="alice")),
        lambda s: s.get_participant(RoomParticipantIdentity(room="room-1", identity="nobody")),
        lambda s: s.remove_participant(RoomParticipantIdentity(room="no-room", identity="alice")),
    ]
    for send in calls:
        expected, got = _both(livekit_emulator, "", send, lambda: None)
        assert got == expected
    assert [c.status for c in livekit_emulator.calls] == [200, 200, 200, 200, 404, 404, 404, 404]


def test_what_livekit_sees_is_what_livekit_api_sends(livekit_emulator: LiveKitEmulator) -> None:
    livekit_emulator.add_room("room-1")
    _both(livekit_emulator, "", lambda s: s.list_rooms(ListRoomsRequest(names=["room-1"])), lambda: None)
    theirs, ours = livekit_emulator.calls
    assert ours.method == theirs.method == "ListRooms"
    assert ours.request == theirs.request
    assert ours.grants == theirs.grants


def test_a_redirect_and_a_200_without_protobuf_are_unusable(livekit_emulator: LiveKitEmulator) -> None:
    livekit_emulator.add_room("room-1")

    async def call() -> None:
        async with _on_our_transport(livekit_emulator) as service:
            livekit_emulator.redirect_next("ListRooms", location="http://127.0.0.1:9/x", status=307)
            with pytest.raises(UnusableAnswer) as redirect:
                await service.list_rooms(ListRoomsRequest())
            assert redirect.value.location == "http://127.0.0.1:9/x"
            livekit_emulator.answer_next("ListRooms", body=b"<html/>", content_type="text/html")
            with pytest.raises(UnusableAnswer) as html:
                await service.list_rooms(ListRoomsRequest())
            assert html.value.location is None
            # The connection is still good for the next call.
            assert [r.name for r in (await service.list_rooms(ListRoomsRequest())).rooms] == ["room-1"]

    asyncio.run(call())


def test_a_kept_alive_connection_the_server_closed_fails_before_any_answer(
    livekit_emulator: LiveKitEmulator,
) -> None:
    livekit_emulator.add_room("room-1")

    async def call() -> None:
        async with _on_our_transport(livekit_emulator) as service:
            await service.list_rooms(ListRoomsRequest())
            livekit_emulator.drop_next("ListRooms")
            with pytest.raises(NoAnswer):
                await service.list_rooms(ListRoomsRequest())
            assert len((await service.list_rooms(ListRoomsRequest())).rooms) == 1

    asyncio.run(call())
