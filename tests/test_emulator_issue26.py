"""Conformance of the stand-in with LiveKit's source, issue 26: each test drives the
stand-in with livekit-api and validates webhooks with livekit-api's ``WebhookReceiver``.

Facts (livekit/livekit 788d4c3): leaving sends one ``track_unpublished`` per published
track, then ``participant_left`` with EMPTY ``tracks`` and a ``disconnect_reason``
(``pkg/rtc/participant.go`` Close, ``pkg/rtc/types/interfaces.go`` 190-228,
``pkg/service/roommanager.go`` 400/620)."""

from __future__ import annotations

from livekit.protocol import models
from livekit.protocol import room as rp
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation.testing import LiveKitEmulator
from tests.test_emulator import remove_req, room_call
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
