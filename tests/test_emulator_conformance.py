"""Conformance of the stand-in with LiveKit (GitHub issue 14): every RoomService method
and error case, driven with the real livekit-api client, asserting LiveKit's status,
code and full message text; plus the HTTP edges (body limits, empty bodies, token
claims, double slashes, JSON nulls), closing rooms and shuffled lists."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from livekit.api import LiveKitAPI, TwirpError
from livekit.protocol import room as rp

from flask_livekit_moderation.testing import SHUFFLE_ENV, LiveKitEmulator
from tests.test_emulator import admin_token, raw_post, remove_req, room_call, token, twirp_error

PREFIX = "twirp error unknown: "
DELAY = 0.3


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator(mute_unknown_delay=DELAY) as emulator:
        emulator.add_room("r")
        emulator.add_participant("r", "alice")
        yield emulator


def failure(emulator: LiveKitEmulator, call: Any) -> tuple[int, str, str]:
    err = twirp_error(emulator, call)
    return err.status, err.code, err.message


def slow_failure(emulator: LiveKitEmulator, call: Any) -> tuple[int, str, str]:
    started = time.monotonic()
    out = failure(emulator, call)
    assert time.monotonic() - started >= DELAY  # the psrpc wait
    return out


# --------------------------------------------------------- every method
def test_create_room(emu: LiveKitEmulator) -> None:
    made = room_call(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="new", empty_timeout=7)))
    assert made.name == "new" and made.empty_timeout == 7 and made.departure_timeout == 20
    assert failure(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="n" * 257))) == (
        400,
        "invalid_argument",
        PREFIX + "room name length exceeds limits: max length 256",
    )
    big = "m" * (512 * 1024 + 1)
    assert failure(emu, lambda r: r.create_room(rp.CreateRoomRequest(name="big", metadata=big))) == (
        400,
        "invalid_argument",
        "metadata size exceeds limits 524288",
    )


def test_list_and_delete_room(emu: LiveKitEmulator) -> None:
    assert [x.name for x in room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms] == ["r"]
    assert room_call(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="r"))) == rp.DeleteRoomResponse()
    assert failure(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="r"))) == (
        404,
        "not_found",
        PREFIX + "requested room does not exist",
    )
    assert room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms == []


def test_participant_methods_not_found(emu: LiveKitEmulator) -> None:
    for room, identity in (("r", "ghost"), ("nowhere", "alice")):
        ident = remove_req(room, identity)
        for call in (
            lambda r, i=ident: r.get_participant(i),
            lambda r, i=ident: r.remove_participant(i),
            lambda r, i=ident: r.update_participant(
                rp.UpdateParticipantRequest(room=i.room, identity=i.identity, metadata="x")
            ),
        ):
            assert failure(emu, call) == (404, "not_found", PREFIX + "participant does not exist")
    assert room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="nowhere"))) == (
        rp.ListParticipantsResponse()
    )


def test_update_participant_limits_keep_twirp_texts(emu: LiveKitEmulator) -> None:
    req = rp.UpdateParticipantRequest(room="r", identity="alice", name="n" * 257)
    assert failure(emu, lambda r: r.update_participant(req)) == (
        400,
        "invalid_argument",
        "name length exceeds limits 256",
    )


def test_update_room_metadata(emu: LiveKitEmulator) -> None:
    assert room_call(
        emu, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="r", metadata="m"))
    ).metadata == ("m")
    assert failure(
        emu, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="nowhere", metadata="m"))
    ) == (404, "not_found", PREFIX + "requested room does not exist")
    # 2 MiB: over aiohttp's default body limit, under LiveKit's 10 MiB one.
    big = rp.UpdateRoomMetadataRequest(room="r", metadata="m" * (2 << 20))
    assert failure(emu, lambda r: r.update_room_metadata(big)) == (
        400,
        "invalid_argument",
        "metadata size exceeds limits 524288",
    )


def test_mute_published_track(emu: LiveKitEmulator) -> None:
    mic = emu.participant("r", "alice").tracks[0]  # type: ignore[union-attr]
    assert slow_failure(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="ghost", track_sid=mic.sid, muted=True)
        ),
    ) == (503, "unavailable", PREFIX + "no response from servers")
    assert failure(
        emu,
        lambda r: r.mute_published_track(
            rp.MuteRoomTrackRequest(room="r", identity="alice", track_sid=mic.sid, muted=False)
        ),
    ) == (412, "failed_precondition", PREFIX + "remote unmute not enabled")


def test_update_subscriptions(emu: LiveKitEmulator) -> None:
    req = rp.UpdateSubscriptionsRequest(room="r", identity="alice", track_sids=["TR_x"], subscribe=True)
    assert room_call(emu, lambda r: r.update_subscriptions(req)) == rp.UpdateSubscriptionsResponse()
    for room, identity in (("r", "ghost"), ("nowhere", "alice")):
        unknown = rp.UpdateSubscriptionsRequest(room=room, identity=identity, subscribe=True)
        assert slow_failure(emu, lambda r, u=unknown: r.update_subscriptions(u)) == (
            503,
            "unavailable",
            PREFIX + "no response from servers",
        )


def test_send_data(emu: LiveKitEmulator) -> None:
    ok = rp.SendDataRequest(room="r", data=b"hi", topic="t", nonce=os.urandom(16))
    assert room_call(emu, lambda r: r.send_data(ok)) == rp.SendDataResponse()
    # livekit-api always sends a fresh 16-byte nonce; a hand-made call can get it wrong.
    bad_nonce = rp.SendDataRequest(room="r", data=b"hi", nonce=b"123").SerializeToString()
    status, _, body = raw_post(emu, "SendData", bad_nonce, admin_token(emu, "r"))
    assert (status, json.loads(body)) == (
        400,
        {"code": "invalid_argument", "msg": "nonce should be 16-bytes or not present, got: 3 bytes"},
    )
    nowhere = rp.SendDataRequest(room="nowhere", data=b"hi")
    assert slow_failure(emu, lambda r: r.send_data(nowhere)) == (
        503,
        "unavailable",
        PREFIX + "no response from servers",
    )


@pytest.mark.parametrize("method", ["forward_participant", "move_participant"])
def test_forward_and_move_participant(emu: LiveKitEmulator, method: str) -> None:
    emu.add_room("dest")
    req_type = rp.ForwardParticipantRequest if method == "forward_participant" else rp.MoveParticipantRequest

    async def call(grants: dict[str, Any], room: str, identity: str, dest: str) -> None:
        async with LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            lk.room._token = token(emu.api_key, emu.api_secret, **grants)
            await getattr(lk.room, method)(req_type(room=room, identity=identity, destination_room=dest))

    def outcome(grants: dict[str, Any], room: str, identity: str, dest: str) -> tuple[int, str, str]:
        with pytest.raises(TwirpError) as info:
            asyncio.run(call(grants, room, identity, dest))
        return info.value.status, info.value.code, info.value.message

    # EnsureDestRoomPermission: the token must name the destination room too.
    assert outcome({"room_admin": True, "room": "r"}, "r", "alice", "dest") == (
        401,
        "unauthenticated",
        "permissions denied",
    )
    full = {"room_admin": True, "room": "r", "destination_room": "dest"}
    same = {"room_admin": True, "room": "r", "destination_room": "r"}
    assert outcome(same, "r", "alice", "r") == (
        400,
        "invalid_argument",
        "destination room cannot be the same as source room ",
    )
    started = time.monotonic()
    assert outcome(full, "r", "ghost", "dest") == (503, "unavailable", PREFIX + "no response from servers")
    assert time.monotonic() - started >= DELAY
    # A single open-source node answers errors.New("not implemented") (roommanager.go).
    assert outcome(full, "r", "alice", "dest") == (500, "unknown", PREFIX + "not implemented")
    move = req_type(room="r", identity="alice", destination_room="dest")
    assert failure(emu, lambda r: getattr(r, method)(move)) == (500, "unknown", PREFIX + "not implemented")
    assert emu.participant("r", "alice") is not None


def test_perform_rpc_checks(emu: LiveKitEmulator) -> None:
    auth = admin_token(emu, "r")
    no_dest = rp.PerformRpcRequest(room="r", method="m").SerializeToString()
    status, _, body = raw_post(emu, "PerformRpc", no_dest, auth)
    assert (status, json.loads(body)) == (
        400,
        {"code": "invalid_argument", "msg": PREFIX + "destination identity is required"},
    )
    ghost = rp.PerformRpcRequest(room="r", destination_identity="ghost", method="m").SerializeToString()
    status, _, body = raw_post(emu, "PerformRpc", ghost, auth)
    assert (status, json.loads(body)["msg"]) == (503, PREFIX + "no response from servers")


# ------------------------------------------------------------- HTTP edges
def test_body_over_the_limit(emu: LiveKitEmulator) -> None:
    huge = rp.UpdateRoomMetadataRequest(room="r", metadata="m" * (11 << 20))
    # RequestBodyLimiter answers 413 in plain text before auth; the client finds no JSON.
    assert failure(emu, lambda r: r.update_room_metadata(huge)) == (413, "unknown", "")
    status, ctype, body = raw_post(emu, "UpdateRoomMetadata", huge.SerializeToString())
    assert (status, body) == (413, b"request body too large") and ctype.startswith("text/plain")
    # Without a Content-Length, http.MaxBytesReader makes the twirp decoder fail.
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    conn.putrequest("POST", "/twirp/livekit.RoomService/UpdateRoomMetadata")
    conn.putheader("Content-Type", "application/protobuf")
    conn.putheader("Authorization", admin_token(emu, "r"))
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"\x00" * (1 << 20)
    for _ in range(11):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (
        400,
        {"code": "malformed", "msg": "failed to read request body"},
    )
    conn.close()
    assert emu.room("r").metadata == ""  # type: ignore[union-attr]


def test_empty_bodies(emu: LiveKitEmulator) -> None:
    auth = "Bearer " + token(emu.api_key, emu.api_secret, room_list=True)
    status, _, body = raw_post(emu, "ListRooms", b"", auth)  # protobuf: an empty message
    assert status == 200 and [x.name for x in rp.ListRoomsResponse.FromString(body).rooms] == ["r"]
    status, _, body = raw_post(emu, "ListRooms", b"", auth, content_type="application/json")
    assert (status, json.loads(body)) == (
        400,
        {"code": "malformed", "msg": "the json request could not be decoded"},
    )
    status, _, body = raw_post(emu, "ListRooms", b"{}", auth, content_type="application/json")
    assert status == 200 and [x["name"] for x in json.loads(body)["rooms"]] == ["r"]


def test_aud_and_future_iat_are_ignored_as_golang_jwt_does(emu: LiveKitEmulator) -> None:
    now = int(time.time())
    claims = {"iss": emu.api_key, "exp": now + 600, "nbf": now, "video": {"roomList": True}}
    for extra in ({"aud": "someone-else"}, {"aud": ["a", "b"]}, {"iat": now + 3600}):
        tok = jwt.encode({**claims, **extra}, emu.api_secret, algorithm="HS256")
        status, _, body = raw_post(emu, "ListRooms", b"", "Bearer " + tok)
        assert status == 200 and len(rp.ListRoomsResponse.FromString(body).rooms) == 1, extra


def test_double_slash_paths_are_served(emu: LiveKitEmulator) -> None:
    auth = "Bearer " + token(emu.api_key, emu.api_secret, room_list=True)
    status, _, body = raw_post(emu, "", b"", auth, path="//twirp/livekit.RoomService/ListRooms")
    assert status == 200 and len(rp.ListRoomsResponse.FromString(body).rooms) == 1
    status, _, body = raw_post(emu, "", b"", auth, path="//twirp/livekit.RoomService/Nope")
    assert json.loads(body)["msg"] == 'no handler for path "/twirp/livekit.RoomService/Nope"'

    async def through_client() -> int:
        async with LiveKitAPI(emu.url + "/", emu.api_key, emu.api_secret) as lk:
            return len((await lk.room.list_rooms(rp.ListRoomsRequest())).rooms)

    assert asyncio.run(through_client()) == 1


def test_json_answers_have_null_for_unset_messages(emu: LiveKitEmulator) -> None:
    auth = admin_token(emu, "r")
    status, _, body = raw_post(
        emu,
        "MutePublishedTrack",
        b'{"room": "r", "identity": "alice", "track_sid": "TR_nope", "muted": true}',
        auth,
        content_type="application/json",
    )
    assert (status, json.loads(body)) == (200, {"track": None})
    status, _, body = raw_post(
        emu, "GetParticipant", b'{"room": "r", "identity": "alice"}', auth, content_type="application/json"
    )
    got = json.loads(body)
    assert got["permission"]["can_publish"] is True and got["tracks"][0]["version"] is None
    assert "disconnect_reason" in got and got["identity"] == "alice"


# ------------------------------------------------------------ closing rooms
def wait_until(predicate: Any, timeout: float = 3.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition never met"
        time.sleep(0.01)
    return time.monotonic() - started


def test_room_closes_after_departure_timeout() -> None:
    with LiveKitEmulator(departure_timeout=0.2, mute_unknown_delay=0.05, time_scale=0.05) as emulator:
        emulator.add_room("r", metadata='{"auth_id": "t"}')
        emulator.add_participant("r", "alice")
        time.sleep(0.3)
        assert emulator.room("r") is not None  # occupied rooms never close
        emulator.leave("r", "alice")
        assert emulator.room("r") is not None
        assert 0.1 <= wait_until(lambda: emulator.room("r") is None) < 1.5
        assert room_call(emulator, lambda r: r.list_rooms(rp.ListRoomsRequest(names=["r"]))).rooms == []
        assert failure(emulator, lambda r: r.get_participant(remove_req("r", "alice"))) == (
            404,
            "not_found",
            PREFIX + "participant does not exist",
        )
        assert failure(
            emulator, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="r", metadata="x"))
        ) == (404, "not_found", PREFIX + "requested room does not exist")


def test_removed_participant_starts_the_departure_timeout_and_a_rejoin_stops_it() -> None:
    # Self-hosted: on a LiveKit Cloud the removed identity could not rejoin for a minute.
    with LiveKitEmulator(time_scale=0.05, cloud=False) as emulator:
        emulator.add_room("r", departure_timeout=0.3)
        emulator.add_participant("r", "alice")
        room_call(emulator, lambda r: r.remove_participant(remove_req("r", "alice")))
        time.sleep(0.1)
        emulator.join("r", "alice")  # back before the timeout: the room stays
        time.sleep(0.4)
        assert emulator.room("r") is not None
        emulator.leave("r", "alice")
        wait_until(lambda: emulator.room("r") is None)


def test_room_nobody_joined_closes_after_empty_timeout() -> None:
    with LiveKitEmulator(empty_timeout=0.2, time_scale=0.05) as emulator:
        emulator.add_room("seeded")
        room_call(emulator, lambda r: r.create_room(rp.CreateRoomRequest(name="made")))
        emulator.add_room("patient", empty_timeout=5)
        assert (
            0.1 <= wait_until(lambda: emulator.room("made") is None and emulator.room("seeded") is None) < 1.5
        )
        assert [x.name for x in room_call(emulator, lambda r: r.list_rooms(rp.ListRoomsRequest())).rooms] == [
            "patient"
        ]
        listing = room_call(emulator, lambda r: r.list_participants(rp.ListParticipantsRequest(room="made")))
        assert listing == rp.ListParticipantsResponse()


def test_default_timeouts_are_livekits() -> None:
    emulator = LiveKitEmulator()
    room = emulator.add_room("r")
    assert (room.empty_timeout, room.departure_timeout) == (300, 20)
    with pytest.raises(ValueError):
        LiveKitEmulator(departure_timeout=0)


# ------------------------------------------------------------------ shuffle
def test_shuffle_varies_list_order() -> None:
    names = [f"room-{i}" for i in range(12)]
    with LiveKitEmulator(shuffle=True) as emulator:
        for name in names:
            emulator.add_room(name)
        emulator.add_participants("room-0", [f"p{i}" for i in range(12)])

        async def orders() -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
            async with LiveKitAPI(emulator.url, emulator.api_key, emulator.api_secret) as lk:
                rooms, people = set(), set()
                for _ in range(5):
                    rooms.add(tuple(r.name for r in (await lk.room.list_rooms(rp.ListRoomsRequest())).rooms))
                    listed = await lk.room.list_participants(rp.ListParticipantsRequest(room="room-0"))
                    people.add(tuple(p.identity for p in listed.participants))
                return rooms, people

        rooms, people = asyncio.run(orders())
    assert len(rooms) > 1 and all(sorted(r) == sorted(names) for r in rooms)
    assert len(people) > 1 and all(len(p) == 12 for p in people)


def test_shuffle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHUFFLE_ENV, "1")
    assert LiveKitEmulator().shuffle is True
    assert LiveKitEmulator(shuffle=False).shuffle is False
    monkeypatch.setenv(SHUFFLE_ENV, "0")
    assert LiveKitEmulator().shuffle is False
