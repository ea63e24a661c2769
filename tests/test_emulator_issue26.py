"""Conformance of the stand-in with LiveKit's source, issue 26: each test drives the
stand-in with livekit-api and validates webhooks with livekit-api's ``WebhookReceiver``.

Facts (livekit/livekit 788d4c3): leaving sends one ``track_unpublished`` per published
track, then ``participant_left`` with EMPTY ``tracks`` and a ``disconnect_reason``
(``pkg/rtc/participant.go`` Close, ``pkg/rtc/types/interfaces.go`` 190-228,
``pkg/service/roommanager.go`` 400/620)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from livekit.api import AccessToken, LiveKitAPI, TwirpError, VideoGrants
from livekit.protocol import models
from livekit.protocol import room as rp
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation.testing import JoinRefusedError, LiveKitEmulator, RoomFullError
from flask_livekit_moderation.testing.__main__ import build_parser
from tests.test_emulator import control, raw_post, remove_req, room_call
from tests.test_emulator_webhooks import Receiver, received, receiver  # noqa: F401 - the fixture

_REASON = models.DisconnectReason
_TRACKS = [("audio", "microphone", "mic", False, "TR_mic"), ("video", "camera", "cam", False, "TR_cam")]


def _leaving(events: list[WebhookEvent], identity: str) -> list[tuple[str, str, int, int]]:
    """(event, track sid, len(participant.tracks), disconnect_reason) of one identity's leave events."""
    return [
        (e.event, e.track.sid, len(e.participant.tracks), e.participant.disconnect_reason)
        for e in events
        if e.participant.identity == identity and e.event in ("track_unpublished", "participant_left")
    ]


def _left(reason: int) -> list[tuple[str, str, int, int]]:
    # Tracks go in reverse publication order; any order is LiveKit's (a map), the set matters.
    return [
        ("track_unpublished", "TR_cam", 0, 0),
        ("track_unpublished", "TR_mic", 0, 0),
        ("participant_left", "", 0, reason),
    ]


def test_leaving_unpublishes_each_track_then_participant_left_has_a_reason(receiver: Receiver) -> None:  # noqa: F811
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emu:
        emu.add_room("r")
        for who in ("removed", "leaver", "dup", "deleted"):
            emu.join("r", who, tracks=_TRACKS)
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "removed")))
        emu.leave("r", "leaver")
        emu.join("r", "dup", tracks=[])  # same identity joins again: the old session closes
        room_call(emu, lambda r: r.delete_room(rp.DeleteRoomRequest(room="r")))
        events = received(emu, receiver)
    assert _leaving(events, "removed") == _left(_REASON.PARTICIPANT_REMOVED)
    assert _leaving(events, "leaver") == _left(_REASON.CLIENT_INITIATED)
    assert _leaving(events, "dup") == [
        *_left(_REASON.DUPLICATE_IDENTITY),
        ("participant_left", "", 0, _REASON.ROOM_DELETED),  # the new session, no tracks
    ]
    assert _leaving(events, "deleted") == _left(_REASON.ROOM_DELETED)
    left = [e for e in events if e.event == "participant_left" and e.participant.identity == "removed"]
    assert left[0].participant.state == models.ParticipantInfo.DISCONNECTED
    assert [e.event for e in events][-1] == "room_finished"


# ------------------------------------------------------- LiveKit Cloud's token revocation
def _join_token(emu: LiveKitEmulator, room: str, identity: str, nbf: int | None = None) -> str:
    """What the app hands a participant's client; ``nbf`` overrides the minting second."""
    tok = AccessToken(emu.api_key, emu.api_secret).with_identity(identity)
    jwt_ = tok.with_grants(VideoGrants(room_join=True, room=room)).to_jwt()
    if nbf is None:
        return jwt_
    claims: dict[str, Any] = jwt.decode(
        jwt_, emu.api_secret, algorithms=["HS256"], options={"verify_aud": False}
    )
    return jwt.encode({**claims, "nbf": nbf}, emu.api_secret, algorithm="HS256")


def test_cloud_refuses_the_banned_participants_old_token_at_rejoin_without_any_webhook() -> None:
    # livekit_room.proto revoke_token_ts: "invalidate token whose nbf is before this value".
    with LiveKitEmulator(cloud=True) as emu:  # no webhook URL: nothing but the RoomService call
        emu.add_room("r")
        old = _join_token(emu, "r", "troll")
        emu.join("r", "troll", token=old)
        revoke = int(time.time()) + 1
        room_call(
            emu,
            lambda r: r.remove_participant(
                rp.RoomParticipantIdentity(room="r", identity="troll", revoke_token_ts=revoke)
            ),
        )
        with pytest.raises(JoinRefusedError, match="revoked"):
            emu.join("r", "troll", token=old)
        assert emu.participant("r", "troll") is None and emu.webhook_deliveries() == []
        status, body = control(
            emu.url,
            emu.api_secret,
            "POST",
            "participants",
            {"room": "r", "identities": ["troll"], "token": old},
        )
        assert status == 401 and "revoked" in body["error"]
        assert emu.revoked() == {("r", "troll"): revoke}
        # A token minted at or after revoke_token_ts joins; so do other identities and rooms.
        emu.join("r", "troll", token=_join_token(emu, "r", "troll", nbf=revoke))
        emu.join("r", "friend", token=_join_token(emu, "r", "friend"))
        assert {p.identity for p in emu.participants("r")} == {"troll", "friend"}


def test_cloud_default_revocation_is_now_plus_a_minute_and_self_hosted_ignores_it() -> None:
    with LiveKitEmulator(cloud=True) as emu:
        emu.add_room("r")
        emu.join("r", "troll")
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "troll")))
        ((_, ts),) = emu.revoked().items()
        assert abs(ts - (time.time() + 60)) <= 2
        with pytest.raises(JoinRefusedError):
            emu.join("r", "troll")  # a freshly minted token (nbf now) is still before it
        emu.cloud = False
    with LiveKitEmulator(cloud=False) as emu:  # self-hosted: the field is received and ignored
        assert emu.cloud is False
        emu.add_room("r")
        old = _join_token(emu, "r", "troll")
        emu.join("r", "troll", token=old)
        far = int(time.time()) + 3600
        room_call(
            emu,
            lambda r: r.remove_participant(
                rp.RoomParticipantIdentity(room="r", identity="troll", revoke_token_ts=far)
            ),
        )
        assert emu.calls[-1].revoke_token_ts == far and emu.revoked() == {}
        emu.join("r", "troll", token=old)


def test_join_tokens_are_checked_with_the_api_secret() -> None:
    with LiveKitEmulator() as emu:
        emu.add_room("r")
        bad = AccessToken(emu.api_key, "not-the-secret" * 4).with_identity("a")
        for token, what in [
            (bad.with_grants(VideoGrants(room_join=True, room="r")).to_jwt(), "invalid authorization token"),
            (_join_token(emu, "other", "a"), "roomJoin"),
            (_join_token(emu, "r", "b"), "identity"),
        ]:
            with pytest.raises(JoinRefusedError, match=what):
                emu.join("r", "a", token=token)
        assert emu.participants("r") == []
        status, body = control(
            emu.url,
            emu.api_secret,
            "POST",
            "participants",
            {"room": "r", "identities": ["a", "b"], "token": "x"},
        )
        assert (status, body) == (400, {"error": "token: a join token is for exactly one identity"})
        assert build_parser().parse_args(["--cloud"]).cloud and not build_parser().parse_args([]).cloud
        assert control(emu.url, emu.api_secret, "POST", "settings", {"cloud": True})[1]["cloud"] is True
        assert emu.cloud is True


@pytest.mark.parametrize("livekit_emulator", [{"cloud": True}], indirect=True)
def test_the_fixture_takes_constructor_arguments(livekit_emulator: LiveKitEmulator) -> None:
    assert livekit_emulator.cloud and livekit_emulator.mute_unknown_delay == 1.0


# ---------------------------------------------------------------- the real RPC wait
@pytest.mark.timing
def test_calls_to_an_unknown_or_departed_participant_answer_503_after_lifekits_3_s() -> None:
    # 3 psrpc attempts (protocol rpc/typed_api.go DefaultPSRPCConfig MaxAttempts) x the
    # 1 s affinity timeout (psrpc client.go): the default, and still settable.
    async def timed(lk: Any, request: Any, call: str) -> tuple[float, int, str]:
        started = time.monotonic()
        with pytest.raises(TwirpError) as info:
            await getattr(lk.room, call)(request)
        return time.monotonic() - started, info.value.status, info.value.message

    async def all_at_once(emu: LiveKitEmulator) -> list[tuple[float, int, str]]:
        async with LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            return list(
                await asyncio.wait_for(
                    asyncio.gather(
                        timed(
                            lk,
                            rp.MuteRoomTrackRequest(room="r", identity="ghost", track_sid="x", muted=True),
                            "mute_published_track",
                        ),
                        timed(
                            lk,
                            rp.MuteRoomTrackRequest(
                                room="r", identity="gone", track_sid="TR_mic", muted=True
                            ),
                            "mute_published_track",
                        ),
                        timed(
                            lk,
                            rp.UpdateSubscriptionsRequest(room="r", identity="gone", subscribe=True),
                            "update_subscriptions",
                        ),
                    ),
                    10,
                )
            )

    with LiveKitEmulator() as emu:
        assert emu.mute_unknown_delay == 3.0
        emu.add_room("r")
        emu.join("r", "gone", tracks=_TRACKS)
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "gone")))
        answers = asyncio.run(all_at_once(emu))
        emu.mute_unknown_delay = 0.05
        assert emu.mute_unknown_delay == 0.05
    for seconds, status, message in answers:
        assert 2.9 <= seconds < 3.8 and (status, message) == (
            503,
            "twirp error unknown: no response from servers",
        )
    assert build_parser().parse_args([]).mute_unknown_delay_ms == 3000.0


# ------------------------------------------------------- webhook delivery as LiveKit does it
class _Rooms(Receiver):
    """A receiver whose answers depend on the event's room: ``plan[room]`` is a list of
    (status, Retry-After or None, seconds to take) used in turn, then a fast 200."""

    plan: dict[str, list[tuple[int, str | None, float]]]
    arrivals: list[tuple[str, str, float]]


@pytest.fixture
def by_room() -> Iterator[_Rooms]:
    rec = _Rooms()
    rec.plan, rec.arrivals = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            doc = json.loads(body)
            room = doc.get("room", {}).get("name", "")
            rec.hits.append((dict(self.headers), body))
            rec.arrivals.append((room, doc["event"], time.monotonic()))
            steps = rec.plan.get(room) or []
            status, retry_after, seconds = steps.pop(0) if steps else (200, None, 0.0)
            time.sleep(seconds)
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/livekit/webhook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def test_five_attempts_waiting_1_2_4_8_s_and_retry_after_on_429_and_503(by_room: _Rooms) -> None:
    # go-retryablehttp: RetryMax 4, DefaultBackoff 1 s doubled; Retry-After on 429/503 only.
    scale = 0.02
    by_room.plan = {
        "dead": [(500, None, 0.0)] * 5,
        "told": [(503, "3", 0.0), (429, "1", 0.0), (500, "7", 0.0)],
    }
    with LiveKitEmulator(webhook_urls=[by_room.url], webhook_time_scale=scale) as emu:
        assert emu.webhook_time_scale == scale
        emu.add_room("dead")
        emu.add_room("told")
        assert emu.wait_webhooks(10)
        got = {d.room: d for d in emu.webhook_deliveries()}
        received(emu, by_room)  # every attempt signed as LiveKit signs
    dead, told = got["dead"], got["told"]
    assert (dead.attempts, dead.status, dead.delivered) == (5, 500, False)
    assert dead.waits == pytest.approx((1 * scale, 2 * scale, 4 * scale, 8 * scale))
    # 503 Retry-After 3, 429 Retry-After 1, a 500's Retry-After is not read: backoff 4 s.
    assert (told.attempts, told.status, told.delivered) == (4, 200, True)
    assert told.waits == pytest.approx((3 * scale, 1 * scale, 4 * scale))
    times = [t for room, _, t in by_room.arrivals if room == "told"]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3 and all(g >= w - 0.005 for g, w in zip(gaps, told.waits, strict=True))


def test_one_queue_per_room_and_events_too_old_or_too_many_are_dropped(by_room: _Rooms) -> None:
    # resource_url_notifier.go: a queue per room (EventKey), MaxAge 30 s, MaxDepth 200.
    scale = 0.01  # the 30 s age is 0.3 s
    by_room.plan = {"slow": [(200, None, 0.6)]}  # its room_started takes 0.6 s to answer
    with LiveKitEmulator(webhook_urls=[by_room.url], webhook_time_scale=scale) as emu:
        emu.add_room("slow")
        time.sleep(0.05)  # room_started is in flight
        emu.join("slow", "late", tracks=[])  # waits behind it for more than 0.3 s: dropped
        emu.add_room("fast")  # another room's queue is not held up
        assert emu.wait_webhooks(5)
        deliveries = emu.webhook_deliveries()
    by_event = {(d.room, d.event): d for d in deliveries}
    assert by_event[("slow", "participant_joined")].error == "dropped: age"
    assert by_event[("slow", "participant_joined")].attempts == 0
    assert by_event[("fast", "room_started")].delivered
    order = [(room, event) for room, event, _ in by_room.arrivals]
    assert order == [("slow", "room_started"), ("fast", "room_started")]
    assert [(d.room, d.event) for d in deliveries][:2] == [("fast", "room_started"), ("slow", "room_started")]

    by_room.plan = {"crowd": [(200, None, 0.5)]}
    with LiveKitEmulator(webhook_urls=[by_room.url]) as emu:  # real timing: nothing ages out
        emu.add_room("crowd")
        time.sleep(0.05)  # room_started is in flight, the queue is empty
        emu.add_participants("crowd", [f"p{i}" for i in range(250)], tracks=[])
        assert emu.wait_webhooks(20)
        deliveries = emu.webhook_deliveries()
    dropped = [d for d in deliveries if d.error == "dropped: queue is full"]
    sent = [d for d in deliveries if d.delivered]
    assert len(sent) == 1 + 200 and len(dropped) == 50
    assert {d.event for d in dropped} == {"participant_joined"}
    assert [d.event for d in sent[1:]] == ["participant_joined"] * 200


def test_webhook_jwt_claims_are_livekits(receiver: Receiver) -> None:  # noqa: F811
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emu:
        emu.add_room("r")
        (event,) = received(emu, receiver)
    assert event.event == "room_started"
    claims = jwt.decode(
        receiver.hits[0][0]["Authorization"],
        emu.api_secret,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert set(claims) == {"iss", "iat", "nbf", "exp", "sha256"}  # no sub, no video
    assert claims["exp"] - claims["nbf"] == 300 and claims["iat"] == claims["nbf"]


# ------------------------------------------------------------- joins and API tokens
def test_max_participants_is_enforced_on_join() -> None:
    # pkg/rtc/room.go Join: ErrMaxParticipantsExceeded "room has exceeded its max participants".
    with LiveKitEmulator() as emu:
        emu.add_room("r", max_participants=2)
        emu.add_participants("r", ["a", "b"], tracks=[])
        with pytest.raises(RoomFullError, match="room has exceeded its max participants"):
            emu.join("r", "c")
        emu.join("r", "b", tracks=[])  # the same identity replaces its session: still 2
        status, body = control(
            emu.url, emu.api_secret, "POST", "participants", {"room": "r", "identities": ["c"]}
        )
        assert status == 409 and body["error"].startswith("room: room has exceeded its max participants")
        assert sorted(p.identity for p in emu.participants("r")) == ["a", "b"]


def test_the_video_claim_is_decoded_as_go_decodes_it() -> None:
    # Go's encoding/json: keys match the camelCase names case-insensitively, snake_case keys
    # match nothing, and a value of the wrong type fails the token (auth/grants.go VideoGrant).
    with LiveKitEmulator() as emu:
        emu.add_room("r")

        def list_with(video: Any) -> tuple[int, bytes]:
            now = int(time.time())
            claims = {"iss": emu.api_key, "nbf": now, "exp": now + 60, "video": video}
            auth = jwt.encode(claims, emu.api_secret, algorithm="HS256")
            status, _, body = raw_post(emu, "ListRooms", b"", "Bearer " + auth)
            return status, body

        assert list_with({"roomList": True})[0] == 200
        assert list_with({"roomlist": True})[0] == 200  # case-insensitive
        status, body = list_with({"room_list": True})  # ignored: no grant
        assert (status, json.loads(body)["msg"]) == (401, "permissions denied")
        status, body = list_with({"roomList": "yes"})
        assert status == 401 and body.decode() == (
            "invalid authorization token: token is malformed: could not JSON decode claim: json: "
            "cannot unmarshal string into Go struct field ClaimGrants.video.roomList of type bool"
        )
        assert list_with({"roomList": True, "canPublishSources": "camera"})[0] == 401
