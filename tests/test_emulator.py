"""The LiveKit stand-in answers like a real LiveKit server (see /work/shared/livekit-facts.md).

Driven through the real ``livekit-api`` client over real HTTP; the plain-text
401s are checked with raw HTTP because the client hides their body.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import jwt
import pytest
from google.protobuf.message import DecodeError
from livekit.api import AccessToken, LiveKitAPI, TwirpError, VideoGrants
from livekit.api.room_service import RoomService
from livekit.protocol import room as rp

from flask_livekit_moderation.testing import CallRecord, LiveKitEmulator, TrackSpec, UnknownRoomError

T = TypeVar("T")


# ----------------------------------------------------------------- helpers
@pytest.fixture
def emu() -> Any:
    with LiveKitEmulator(mute_unknown_delay=0.3) as emulator:
        yield emulator


def room_call(emulator: LiveKitEmulator, fn: Callable[[RoomService], Awaitable[T]], timeout: float = 5) -> T:
    """Run one RoomService call with a fresh LiveKitAPI client."""

    async def go() -> T:
        async with LiveKitAPI(emulator.url, emulator.api_key, emulator.api_secret) as lk:
            # livekit-api 1.2.2 posts with an explicit timeout=None, which aiohttp
            # reads as "no timeout": LiveKitAPI(timeout=...) never applies, so
            # the deadline has to be set around the call.
            return await asyncio.wait_for(fn(lk.room), timeout)

    return asyncio.run(go())


def twirp_error(emulator: LiveKitEmulator, fn: Callable[[RoomService], Awaitable[Any]]) -> TwirpError:
    with pytest.raises(TwirpError) as info:
        room_call(emulator, fn)
    return info.value


def token(key: str, secret: str, ttl: datetime.timedelta | None = None, **grants: Any) -> str:
    tok = AccessToken(key, secret).with_grants(VideoGrants(**grants))
    if ttl is not None:
        tok.with_ttl(ttl)
    return tok.to_jwt()


def raw_post(
    emulator: LiveKitEmulator,
    method: str,
    body: bytes = b"",
    authorization: str | None = None,
    content_type: str = "application/protobuf",
    verb: str = "POST",
    path: str | None = None,
) -> tuple[int, str, bytes]:
    """(status, content type, body) of one raw HTTP request."""
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    conn.request(verb, path or f"/twirp/livekit.RoomService/{method}", body=body, headers=headers)
    resp = conn.getresponse()
    out = (resp.status, resp.getheader("Content-Type") or "", resp.read())
    conn.close()
    return out


def admin_token(emulator: LiveKitEmulator, room: str) -> str:
    return "Bearer " + token(emulator.api_key, emulator.api_secret, room_admin=True, room=room)


def remove_req(room: str, identity: str) -> rp.RoomParticipantIdentity:
    return rp.RoomParticipantIdentity(room=room, identity=identity)


# ------------------------------------------------------------ method facts
def test_list_rooms_returns_only_existing_rooms_and_all_when_no_names(emu: LiveKitEmulator) -> None:
    emu.add_room("a", metadata='{"auth_id": "t1"}')
    emu.add_room("b")
    only = room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest(names=["a", "ghost"])))
    assert [x.name for x in only.rooms] == ["a"]
    assert json.loads(only.rooms[0].metadata) == {"auth_id": "t1"}
    assert only.rooms[0].sid.startswith("RM_")
    every = room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
    assert sorted(x.name for x in every.rooms) == ["a", "b"]
    none = room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest(names=["ghost"])))
    assert list(none.rooms) == []


def test_create_room_creates_once_and_limits_the_name(emu: LiveKitEmulator) -> None:
    made = room_call(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="new", metadata="m")))
    assert made.sid.startswith("RM_") and made.name == "new" and made.metadata == "m"
    again = room_call(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="new")))
    assert again.sid == made.sid
    assert emu.room("new") is not None
    err = twirp_error(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="x" * 257)))
    assert (err.status, err.code, err.message) == (
        400,
        "invalid_argument",
        "twirp error unknown: room name length exceeds limits: max length 256",
    )
    assert room_call(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="y" * 256))).name == "y" * 256


def test_delete_room(emu: LiveKitEmulator) -> None:
    emu.add_room("gone")
    emu.add_participant("gone", "alice")
    room_call(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="gone")))
    assert emu.room("gone") is None and emu.participants("gone") == []
    err = twirp_error(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="gone")))
    assert (err.status, err.code, err.message) == (
        404,
        "not_found",
        "twirp error unknown: requested room does not exist",
    )


def test_list_participants_unknown_room_is_an_empty_200(emu: LiveKitEmulator) -> None:
    answer = room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="nowhere")))
    assert list(answer.participants) == []
    emu.add_room("r")
    emu.add_participants("r", ["alice", "bob"])
    answer = room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="r")))
    assert sorted(p.identity for p in answer.participants) == ["alice", "bob"]


def test_get_participant_lists_tracks_and_unknowns_are_not_found(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    added = emu.add_participant("r", "alice", name="Alice", metadata="md")
    got = room_call(emu, lambda r: r.get_participant(remove_req("r", "alice")))
    assert got == added
    assert got.sid.startswith("PA_") and got.state == got.ACTIVE and got.is_publisher and got.joined_at > 0
    assert [(t.type, t.source, t.muted) for t in got.tracks] == [
        (0, 2, False),
        (1, 1, False),
    ]  # AUDIO/MIC, VIDEO/CAMERA
    assert all(t.sid.startswith("TR_") for t in got.tracks)
    for room, identity in (("r", "bob"), ("nowhere", "alice")):
        err = twirp_error(emu, _service_call("get_participant", remove_req(room, identity)))
        assert (err.status, err.code, err.message) == (
            404,
            "not_found",
            "twirp error unknown: participant does not exist",
        )


def _service_call(method: str, request: Any) -> Callable[[Any], Awaitable[Any]]:
    """``lambda r: r.<method>(request)``, bound now (not to a loop variable)."""
    return lambda rooms: getattr(rooms, method)(request)


def test_remove_participant(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participants("r", ["alice", "bob"])
    assert emu.room("r").num_participants == 2  # type: ignore[union-attr]
    answer = room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert answer == rp.RemoveParticipantResponse()
    assert emu.participant("r", "alice") is None and emu.participant("r", "bob") is not None
    assert emu.room("r").num_participants == 1  # type: ignore[union-attr]
    for room, identity in (("r", "alice"), ("nowhere", "bob")):
        err = twirp_error(emu, _service_call("remove_participant", remove_req(room, identity)))
        assert (err.status, err.code, err.message) == (
            404,
            "not_found",
            "twirp error unknown: participant does not exist",
        )


def test_mute_known_track_answers_the_new_track_info(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    mic = emu.add_participant("r", "alice").tracks[0]
    answer = room_call(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="alice", track_sid=mic.sid, muted=True)
        ),
    )
    assert answer.HasField("track") and answer.track.sid == mic.sid and answer.track.muted is True
    assert emu.participant("r", "alice").tracks[0].muted is True  # type: ignore[union-attr]


def test_mute_unknown_track_is_a_200_with_track_unset(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    answer = room_call(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="alice", track_sid="TR_nope", muted=True)
        ),
    )
    assert not answer.HasField("track")


@pytest.mark.parametrize("room, identity", [("r", "ghost"), ("nowhere", "alice")])
def test_mute_unknown_participant_is_a_delayed_503(emu: LiveKitEmulator, room: str, identity: str) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    started = time.monotonic()
    err = twirp_error(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room=room, identity=identity, track_sid="TR_x", muted=True)
        ),
    )
    assert time.monotonic() - started >= 0.3
    assert (err.status, err.code, err.message) == (
        503,
        "unavailable",
        "twirp error unknown: no response from servers",
    )


def test_mute_delay_does_not_block_other_calls(emu: LiveKitEmulator) -> None:
    emu.add_room("r")

    async def both(room: RoomService) -> float:
        async def quick() -> float:
            await asyncio.sleep(0.05)
            await room.list_rooms(rp.ListRoomsRequest())
            return time.monotonic()

        mute = room.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="ghost", track_sid="x", muted=True)
        )
        results = await asyncio.gather(mute, quick(), return_exceptions=True)
        assert isinstance(results[0], TwirpError)
        assert isinstance(results[1], float)
        return results[1]

    started = time.monotonic()
    quick_done = room_call(emu, both)
    assert quick_done - started < 0.25  # the ListRooms did not wait for the 0.3 s mute


def test_unmute_is_refused_unless_enabled_and_only_for_known_participants(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    mic = emu.add_participant("r", "alice", tracks=[TrackSpec("audio", "microphone", muted=True)]).tracks[0]
    unmute = rp.MuteRoomTrackRequest(room="r", identity="alice", track_sid=mic.sid, muted=False)
    err = twirp_error(emu, lambda r: r.mute_published_track(unmute))
    assert (err.status, err.code, err.message) == (
        412,
        "failed_precondition",
        "twirp error unknown: remote unmute not enabled",
    )
    assert emu.participant("r", "alice").tracks[0].muted is True  # type: ignore[union-attr]
    # roommanager.go looks the participant up first: an unknown one still times out.
    err = twirp_error(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="ghost", track_sid="x", muted=False)
        ),
    )
    assert (err.status, err.code) == (503, "unavailable")
    emu.enable_remote_unmute = True
    answer = room_call(emu, lambda r: r.mute_published_track(unmute))
    assert answer.track.muted is False


def test_update_participant(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice", name="Alice")
    answer = room_call(
        emu,
        lambda r: r.update_participant(
            rp.UpdateParticipantRequest(room="r", identity="alice", metadata="new")
        ),
    )
    assert answer.metadata == "new" and answer.name == "Alice"
    assert emu.participant("r", "alice").metadata == "new"  # type: ignore[union-attr]
    err = twirp_error(
        emu, lambda r: r.update_participant(rp.UpdateParticipantRequest(room="r", identity="bob"))
    )
    assert (err.status, err.code, err.message) == (
        404,
        "not_found",
        "twirp error unknown: participant does not exist",
    )


def test_update_room_metadata(emu: LiveKitEmulator) -> None:
    emu.add_room("r", metadata="old")
    answer = room_call(
        emu, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="r", metadata="new"))
    )
    assert answer.name == "r" and answer.metadata == "new"
    assert emu.room("r").metadata == "new"  # type: ignore[union-attr]
    err = twirp_error(
        emu, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="nowhere", metadata="x"))
    )
    assert (err.status, err.code, err.message) == (
        404,
        "not_found",
        "twirp error unknown: requested room does not exist",
    )


# -------------------------------------------------------------------- auth
def test_plain_text_401s(emu: LiveKitEmulator) -> None:
    body = remove_req("r", "alice").SerializeToString()
    cases = {
        "Bearer "
        + token(
            emu.api_key, "wrong-secret-0123456789abcdef0123", room_admin=True, room="r"
        ): "invalid authorization token: token signature is invalid: signature is invalid",
        "Bearer " + token("APIunknown", emu.api_secret, room_admin=True, room="r"): "invalid API key",
        "Bearer "
        + token(
            emu.api_key, emu.api_secret, ttl=datetime.timedelta(seconds=-120), room_admin=True, room="r"
        ): "invalid authorization token: token has invalid claims: token is expired",
        "Bearer "
        + jwt.encode(
            {"iss": emu.api_key, "video": {"roomAdmin": True, "room": "r"}}, emu.api_secret
        ): "invalid authorization token: token has invalid claims: "
        "token is missing required claim: exp claim is required",
        "Bearer "
        + jwt.encode(
            {"iss": emu.api_key, "nbf": int(time.time()) + 600, "exp": int(time.time()) + 900}, emu.api_secret
        ): "invalid authorization token: token has invalid claims: token is not valid yet",
        # golang-jwt rejects the method before looking at the signature.
        "Bearer "
        + jwt.encode(
            {"iss": emu.api_key, "exp": int(time.time()) + 900}, "k" * 64, algorithm="HS512"
        ): "invalid authorization token: token signature is invalid: signing method HS512 is invalid",
        "Bearer not.a.jwt": "invalid authorization token",
        "Bearer abc": "invalid authorization token",
        admin_token(emu, "r").replace(
            "Bearer ", "Token "
        ): "invalid authorization header. Must start with Bearer ",
    }
    for authorization, text in cases.items():
        status, ctype, answer = raw_post(emu, "RemoveParticipant", body, authorization)
        assert (status, answer.decode()) == (401, text), authorization
        assert ctype.startswith("text/plain"), ctype
    assert {(c.status, c.code, c.grants) for c in emu.calls} == {(401, None, None)}
    # The client cannot read a JSON error out of it: code "unknown", empty message.
    with pytest.raises(TwirpError) as info:
        asyncio.run(_remove_with(emu.url, emu.api_key, "x" * 40))
    assert (info.value.status, info.value.code, info.value.message) == (401, "unknown", "")


async def _remove_with(url: str, key: str, secret: str) -> None:
    async with LiveKitAPI(url, key, secret) as lk:
        await lk.room.remove_participant(remove_req("r", "alice"))


def test_token_within_leeway_still_works(emu: LiveKitEmulator) -> None:
    # LiveKit (and TokenVerifier) allow one minute of clock skew.
    emu.add_room("r")
    tok = token(emu.api_key, emu.api_secret, ttl=datetime.timedelta(seconds=-30), room_list=True)
    status, _, body = raw_post(emu, "ListRooms", rp.ListRoomsRequest().SerializeToString(), "Bearer " + tok)
    assert status == 200 and [r.name for r in rp.ListRoomsResponse.FromString(body).rooms] == ["r"]


@pytest.mark.parametrize(
    "method, request_msg, grants",
    [
        ("ListRooms", rp.ListRoomsRequest(), {"room_admin": True, "room": "r"}),
        ("RemoveParticipant", remove_req("r", "alice"), {"room_list": True}),
        ("RemoveParticipant", remove_req("r", "alice"), {"room_admin": True, "room": "other"}),
        ("GetParticipant", remove_req("r", "alice"), {"room": "r"}),
        ("ListParticipants", rp.ListParticipantsRequest(room="r"), {"room_admin": True, "room": "other"}),
        (
            "MutePublishedTrack",
            rp.MuteRoomTrackRequest(room="r", identity="alice", muted=True),
            {"room_create": True},
        ),
        ("UpdateParticipant", rp.UpdateParticipantRequest(room="r", identity="alice"), {"room_admin": True}),
        ("UpdateRoomMetadata", rp.UpdateRoomMetadataRequest(room="r"), {"room_list": True}),
        ("CreateRoom", rp.CreateRoomRequest(name="r"), {"room_admin": True, "room": "r"}),
        ("DeleteRoom", rp.DeleteRoomRequest(room="r"), {"room_list": True}),
    ],
)
def test_missing_grant_is_twirp_permissions_denied(
    emu: LiveKitEmulator, method: str, request_msg: Any, grants: dict[str, Any]
) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    auth = "Bearer " + token(emu.api_key, emu.api_secret, **grants)
    status, ctype, body = raw_post(emu, method, request_msg.SerializeToString(), auth)
    assert status == 401 and ctype.startswith("application/json")
    assert json.loads(body) == {"code": "unauthenticated", "msg": "permissions denied"}
    assert emu.participant("r", "alice") is not None and emu.room("r") is not None
    (call,) = emu.calls
    assert call.grants is not None and (call.status, call.code) == (401, "unauthenticated")


def test_no_authorization_header_is_permissions_denied(emu: LiveKitEmulator) -> None:
    # auth.go lets a request without any token through with no grants.
    status, ctype, body = raw_post(emu, "ListRooms", b"")
    assert (status, json.loads(body)) == (401, {"code": "unauthenticated", "msg": "permissions denied"})
    assert ctype.startswith("application/json")


def test_client_sees_permissions_denied_as_twirp_error(emu: LiveKitEmulator) -> None:
    async def go() -> None:
        async with LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            lk.room._token = token(emu.api_key, emu.api_secret, room_admin=True, room="elsewhere")
            await lk.room.remove_participant(remove_req("r", "alice"))

    with pytest.raises(TwirpError) as info:
        asyncio.run(go())
    assert (info.value.status, info.value.code, info.value.message) == (
        401,
        "unauthenticated",
        "permissions denied",
    )


# ----------------------------------------------------------------- routing
def test_routing_and_decoding_errors(emu: LiveKitEmulator) -> None:
    auth = admin_token(emu, "r")
    status, ctype, body = raw_post(emu, "KickEveryone", b"", auth)
    assert status == 404 and ctype.startswith("application/json")
    assert json.loads(body)["code"] == "bad_route"
    assert json.loads(body)["msg"] == 'no handler for path "/twirp/livekit.RoomService/KickEveryone"'
    status, _, body = raw_post(emu, "ListRooms", b"", auth, verb="GET")
    assert (status, json.loads(body)["code"]) == (404, "bad_route")
    status, _, body = raw_post(emu, "ListParticipants", b"", auth, content_type="text/plain")
    assert (status, json.loads(body)["msg"]) == (404, 'unexpected Content-Type: "text/plain"')
    status, _, body = raw_post(emu, "RemoveParticipant", b"\xff\xff\xff", auth)
    assert (status, json.loads(body)) == (
        400,
        {"code": "malformed", "msg": "the protobuf request could not be decoded"},
    )
    # An empty protobuf body is an empty request (room ""), so the grant check fails.
    status, _, body = raw_post(emu, "SendData", b"", auth)
    assert (status, json.loads(body)["code"]) == (401, "unauthenticated")
    status, _, body = raw_post(emu, "", b"", auth, path="/twirp/livekit.Nope/X")
    assert (status, json.loads(body)["code"]) == (404, "bad_route")
    # Auth runs before routing on a real server.
    status, ctype, body = raw_post(emu, "KickEveryone", b"", "Bearer x.y.z")
    assert (status, body) == (401, b"invalid authorization token") and ctype.startswith("text/plain")
    assert raw_post(emu, "", path="/", verb="GET")[::2] == (200, b"OK")
    assert raw_post(emu, "", path="/elsewhere", verb="GET")[::2] == (404, b"404 page not found\n")


def test_json_requests_are_served_too(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    status, ctype, body = raw_post(
        emu, "ListParticipants", b'{"room": "r"}', admin_token(emu, "r"), content_type="application/json"
    )
    assert status == 200 and ctype.startswith("application/json")
    assert [p["identity"] for p in json.loads(body)["participants"]] == ["alice"]


# ---------------------------------------------------------------- faults
def test_latency_is_observed_and_can_be_per_method(emu: LiveKitEmulator) -> None:
    emu.set_latency(0.2)
    started = time.monotonic()
    room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
    assert time.monotonic() - started >= 0.2
    assert emu.calls[-1].duration >= 0.2
    emu.set_latency(0.0)
    emu.set_latency(0.25, method="ListParticipants")
    # "No latency" is read off the stand-in's own clock, which a loaded machine slows far less
    # than the client's round trip.
    room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
    assert emu.calls[-1].duration < 0.1
    started = time.monotonic()
    room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="x")))
    assert time.monotonic() - started >= 0.25 and emu.calls[-1].duration >= 0.25
    emu.clear_faults()
    room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="x")))
    assert emu.calls[-1].duration < 0.1


def test_latency_from_constructor() -> None:
    with LiveKitEmulator(latency=0.15) as emulator:
        room_call(emulator, lambda r: r.list_rooms(rp.ListRoomsRequest()))
        assert emulator.calls[0].duration >= 0.15


def test_fail_next_with_code_and_with_explicit_status(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.fail_next("ListRooms", n=2, code="unavailable", msg="node gone")
    emu.fail_next("ListParticipants", code="internal", status=502)
    for _ in range(2):
        err = twirp_error(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
        assert (err.status, err.code, err.message) == (503, "unavailable", "node gone")
    assert [x.name for x in room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms] == ["r"]
    err = twirp_error(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="r")))
    assert (err.status, err.code) == (502, "internal")
    assert [(c.status, c.fault) for c in emu.calls] == [
        (503, "fail"),
        (503, "fail"),
        (200, None),
        (502, "fail"),
    ]
    assert emu.faults.pending() == {}


def test_fail_next_does_not_touch_state(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    emu.fail_next("RemoveParticipant", code="resource_exhausted")
    err = twirp_error(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert (err.status, err.code) == (429, "resource_exhausted")
    assert emu.participant("r", "alice") is not None


def test_garbage_answer_fails_decoding_in_the_client(emu: LiveKitEmulator) -> None:
    emu.garbage_next("ListRooms")
    with pytest.raises(DecodeError):
        room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
    assert room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())) == rp.ListRoomsResponse()
    assert [(c.status, c.fault) for c in emu.calls] == [(200, "garbage"), (200, None)]


def test_dropped_connection_is_a_client_error(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    emu.drop_next("RemoveParticipant")
    with pytest.raises(aiohttp.ClientError):
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert emu.participant("r", "alice") is not None  # dropped before any effect
    room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
    assert [(c.status, c.fault) for c in emu.calls] == [(None, "drop"), (200, None)]


def test_hang_past_client_timeout_then_next_call_works(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.hang_next("ListRooms", seconds=0.6)
    with pytest.raises(asyncio.TimeoutError):
        room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()), timeout=0.3)
    assert len(room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms) == 1
    time.sleep(0.4)  # the hung call is answered (to nobody) after its 0.6 s
    hung = [c for c in emu.calls if c.fault == "hang"]
    assert len(hung) == 1 and hung[0].duration >= 0.6 and hung[0].status == 200


def test_hang_forever_ends_at_stop() -> None:
    emulator = LiveKitEmulator().start()
    emulator.hang_next("ListRooms")  # seconds=None: until stop
    with pytest.raises(asyncio.TimeoutError):
        room_call(emulator, lambda r: r.list_rooms(rp.ListRoomsRequest()), timeout=0.3)
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 1.0
    (call,) = emulator.calls
    assert (call.method, call.status, call.fault) == ("ListRooms", None, "hang")


def test_down_refuses_connections_and_comes_back_on_the_same_port(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    port = emu.port

    async def session_across_outage() -> None:
        # One persistent client, as the app keeps one: its pooled connection
        # must not survive the outage either.
        async with LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            await lk.room.list_rooms(rp.ListRoomsRequest())
            await asyncio.get_running_loop().run_in_executor(None, emu.go_down)
            with pytest.raises(aiohttp.ClientError):
                await lk.room.list_rooms(rp.ListRoomsRequest())
            with pytest.raises(aiohttp.ClientConnectorError):
                await lk.room.list_rooms(rp.ListRoomsRequest())
            await asyncio.get_running_loop().run_in_executor(None, emu.come_up)
            assert len((await lk.room.list_rooms(rp.ListRoomsRequest())).rooms) == 1

    asyncio.run(session_across_outage())
    assert emu.port == port
    with emu.down():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms[0].name == "r"


# ------------------------------------------------------------ call record
def test_call_record_order_grants_and_statuses(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")

    async def script(room: RoomService) -> None:
        await room.list_rooms(rp.ListRoomsRequest(names=["r"]))
        await room.get_participant(remove_req("r", "alice"))
        await room.remove_participant(remove_req("r", "alice"))
        with pytest.raises(TwirpError):
            await room.remove_participant(remove_req("r", "alice"))

    room_call(emu, script)
    calls = emu.calls
    assert emu.call_names() == ["ListRooms", "GetParticipant", "RemoveParticipant", "RemoveParticipant"]
    assert all(isinstance(c, CallRecord) for c in calls)
    assert [(c.status, c.code) for c in calls] == [(200, None), (200, None), (200, None), (404, "not_found")]
    assert list(calls[0].request.names) == ["r"] and calls[0].grants.room_list is True  # type: ignore[union-attr]
    assert calls[2].request == remove_req("r", "alice")
    assert calls[2].grants.room_admin is True and calls[2].grants.room == "r"  # type: ignore[union-attr]
    assert calls[3].message == "twirp error unknown: participant does not exist"
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert earlier.started <= earlier.finished <= later.started
    emu.clear_calls()
    assert emu.calls == [] and emu.call_names() == []


def test_concurrent_calls_overlap_in_the_record(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.add_participants("r", ["a", "b"])
    emu.set_latency(0.2)

    async def two(room: RoomService) -> None:
        await asyncio.gather(
            room.remove_participant(remove_req("r", "a")), room.remove_participant(remove_req("r", "b"))
        )

    room_call(emu, two)
    first, second = emu.calls
    assert first.started < second.finished and second.started < first.finished
    assert first.finished - first.started >= 0.2 and first.started <= second.started


def test_threads_removing_concurrently_lose_no_update(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    per_thread = {t: [f"t{t}-p{i}" for i in range(50)] for t in range(8)}
    for identities in per_thread.values():
        emu.add_participants("r", identities)
    emu.add_participant("r", "bystander")
    errors: list[BaseException] = []

    def worker(identities: list[str]) -> None:
        async def go(room: RoomService) -> None:
            for identity in identities:
                await room.remove_participant(remove_req("r", identity))

        try:
            room_call(emu, go)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ids,)) for ids in per_thread.values()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert errors == []
    assert [p.identity for p in emu.participants("r")] == ["bystander"]
    assert emu.room("r").num_participants == 1  # type: ignore[union-attr]
    calls = emu.calls
    assert len(calls) == 400 and {c.status for c in calls} == {200}
    assert sorted(c.request.identity for c in calls) == sorted(i for ids in per_thread.values() for i in ids)  # type: ignore[union-attr]
    assert all(a.started <= b.started for a, b in zip(calls, calls[1:], strict=False))


def test_max_calls_caps_records_but_not_counts() -> None:
    with LiveKitEmulator(max_calls=5) as emulator:

        async def many(room: RoomService) -> None:
            for _ in range(40):
                await room.list_rooms(rp.ListRoomsRequest())
            await room.list_participants(rp.ListParticipantsRequest(room="r"))

        room_call(emulator, many)
        assert emulator.call_counts() == {"ListRooms": 40, "ListParticipants": 1}
        calls = emulator.calls
        assert 5 <= len(calls) < 41 and calls[-1].method == "ListParticipants"
        emulator.clear_calls()
        assert emulator.call_counts() == {}


# -------------------------------------------------------------- state API
def test_state_api() -> None:
    emulator = LiveKitEmulator()  # the state API works without a server
    with pytest.raises(UnknownRoomError, match="add_room"):
        emulator.add_participant("nowhere", "alice")
    room = emulator.add_room("r", metadata="m", max_participants=5)
    assert room.sid.startswith("RM_") and room.creation_time > 0 and room.max_participants == 5
    custom = emulator.add_participant(
        "r",
        "carol",
        tracks=[("video", "screen_share", "slides", True), {"type": "audio", "source": "screen_share_audio"}],
    )
    assert [(t.type, t.source, t.name, t.muted) for t in custom.tracks] == [
        (1, 3, "slides", True),
        (0, 4, "", False),
    ]
    silent = emulator.add_participant("r", "dave", tracks=[])
    assert silent.is_publisher is False and list(silent.tracks) == []
    r = emulator.room("r")
    assert r is not None and (r.num_participants, r.num_publishers) == (2, 1)
    # Copies: changing what we got back changes nothing inside.
    custom.tracks[0].muted = False
    assert emulator.participant("r", "carol").tracks[0].muted is True  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        emulator.add_participant("r", "x" * 257)
    with pytest.raises(ValueError):
        emulator.add_participant("r", "eve", tracks=[("hologram", "camera")])
    assert emulator.set_room_metadata("r", "new").metadata == "new"
    assert emulator.participant("r", "ghost") is None and emulator.participants("ghost") == []
    assert emulator.remove_participant("r", "dave") and not emulator.remove_participant("r", "dave")
    assert emulator.remove_room("r") and emulator.rooms() == [] and emulator.participants("r") == []
    emulator.add_room("again")
    emulator.clear()
    assert emulator.rooms() == []


def test_fixture_gives_a_running_emulator(livekit_emulator: LiveKitEmulator) -> None:
    assert livekit_emulator.running and livekit_emulator.url == f"http://127.0.0.1:{livekit_emulator.port}"
    livekit_emulator.add_room("r")
    assert [
        r.name for r in room_call(livekit_emulator, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms
    ] == ["r"]
    assert livekit_emulator.call_names() == ["ListRooms"]


def test_constructor_credentials_and_context_manager() -> None:
    with LiveKitEmulator(api_key="key", api_secret="secret-0123456789-0123456789-0123") as emulator:
        assert (emulator.api_key, emulator.api_secret) == ("key", "secret-0123456789-0123456789-0123")
        url = emulator.url
        assert emulator.running
    assert not emulator.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1).close()
    a, b = LiveKitEmulator(), LiveKitEmulator()
    assert a.api_key != b.api_key and a.api_secret != b.api_secret


# ------------------------------------------------------------ control routes
def control(
    url: str, secret: str | None, verb: str, route: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    conn.request(
        verb, f"/_emulator/{route}", body=None if body is None else json.dumps(body), headers=headers
    )
    resp = conn.getresponse()
    out = (resp.status, json.loads(resp.read()))
    conn.close()
    return out


def test_control_routes_in_process(emu: LiveKitEmulator) -> None:
    url, secret = emu.url, emu.api_secret
    assert control(url, None, "GET", "health") == (200, {"ok": True})
    assert control(url, None, "GET", "rooms")[0] == 401
    assert control(url, "wrong", "GET", "rooms")[0] == 401
    status, made = control(
        url, secret, "POST", "rooms", {"rooms": [{"name": "a", "metadata": "m"}, {"name": "b"}]}
    )
    assert status == 200 and [r["name"] for r in made["rooms"]] == ["a", "b"]
    status, answer = control(url, secret, "POST", "participants", {"room": "nowhere", "identities": ["x"]})
    assert status == 404 and "nowhere" in answer["error"]
    status, added = control(
        url, secret, "POST", "participants", {"room": "a", "identities": [f"u{i}" for i in range(1000)]}
    )
    assert (status, added["added"], added["count"]) == (200, 1000, 1000)
    control(
        url,
        secret,
        "POST",
        "participants",
        {"room": "b", "identities": ["v"], "tracks": [["audio", "microphone"]]},
    )
    assert len(emu.participant("b", "v").tracks) == 1  # type: ignore[union-attr]
    status, listing = control(url, secret, "GET", "participants?room=b&full=1")
    assert listing["count"] == 1 and listing["identities"] == ["v"]
    assert listing["participants"][0]["tracks"][0]["source"] == "MICROPHONE"
    rooms = control(url, secret, "GET", "rooms")[1]["rooms"]
    assert [(r["name"], r["num_participants"]) for r in rooms] == [("a", 1000), ("b", 1)]
    assert control(url, secret, "POST", "latency", {"ms": 150, "method": "ListRooms"}) == (200, {"ok": True})
    assert control(
        url, secret, "POST", "faults", {"kind": "fail", "method": "GetParticipant", "code": "internal"}
    ) == (
        200,
        {"pending": {"GetParticipant": 1}},
    )
    assert control(url, secret, "POST", "faults", {"kind": "explode", "method": "X"})[0] == 400
    room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest()))
    assert emu.calls[0].duration >= 0.15
    status, calls = control(url, secret, "GET", "calls?records=1")
    assert calls["total"] == 1 and calls["counts"] == {"ListRooms": 1}
    assert calls["calls"][0]["method"] == "ListRooms" and calls["calls"][0]["grants"]["room_list"] is True
    assert control(url, secret, "DELETE", "calls") == (200, {"cleared": 1})
    assert control(url, secret, "DELETE", "faults") == (200, {"ok": True})
    assert emu.faults.pending() == {} and emu.faults.latency_for("ListRooms") == 0.0
    assert control(url, secret, "POST", "reset") == (200, {"ok": True})
    assert emu.rooms() == [] and emu.calls == []
    assert control(url, secret, "GET", "nothing-here")[0] == 404


def test_cli_subprocess_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask_livekit_moderation.testing",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--api-secret",
            "cli-secret-0123456789abcdef0123456789",
            "--latency-ms",
            "20",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["api_key"] == "cli-key" and info["api_secret"] == "cli-secret-0123456789abcdef0123456789"
        assert info["url"].startswith("http://127.0.0.1:")
        url, secret = info["url"], info["api_secret"]
        assert control(url, secret, "POST", "rooms", {"name": "r"})[0] == 200
        assert (
            control(url, secret, "POST", "participants", {"room": "r", "identities": ["alice", "bob"]})[1][
                "count"
            ]
            == 2
        )

        async def remove() -> float:
            async with LiveKitAPI(url, "cli-key", secret) as lk:
                started = time.monotonic()
                await lk.room.remove_participant(remove_req("r", "alice"))
                return time.monotonic() - started

        assert asyncio.run(remove()) >= 0.02
        assert control(url, secret, "GET", "participants?room=r")[1]["identities"] == ["bob"]
        assert control(url, secret, "GET", "calls")[1]["counts"] == {"RemoveParticipant": 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
