"""Conformance of the stand-in with LiveKit's source, issue 26: each test drives the
stand-in with livekit-api and validates webhooks with livekit-api's ``WebhookReceiver``.

Facts (livekit/livekit 788d4c3): leaving sends one ``track_unpublished`` per published
track, then ``participant_left`` with EMPTY ``tracks`` and a ``disconnect_reason``
(``pkg/rtc/participant.go`` Close, ``pkg/rtc/types/interfaces.go`` 190-228,
``pkg/service/roommanager.go`` 400/620)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from livekit.api import AccessToken, VideoGrants
from livekit.protocol import models
from livekit.protocol import room as rp
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation.testing import JoinRefusedError, LiveKitEmulator
from flask_livekit_moderation.testing.__main__ import build_parser
from tests.test_emulator import control, remove_req, room_call
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
    with LiveKitEmulator() as emu:  # self-hosted: the field is received and ignored
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
