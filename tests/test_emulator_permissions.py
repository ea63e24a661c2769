"""UpdateParticipant's permission semantics in the stand-in, as LiveKit has them:
the permission is replaced whole (auth/grants.go UpdateFromPermission) and tracks
it no longer allows are unpublished by the server (pkg/rtc/participant.go SetPermission)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol import models
from livekit.protocol import room as rp
from livekit.protocol.models import ParticipantPermission, TrackSource

from flask_livekit_moderation.testing import LiveKitEmulator, PublishNotAllowedError
from tests.test_emulator import remove_req, room_call
from tests.test_emulator_webhooks import Receiver, receiver  # noqa: F401 - pytest fixture


@pytest.fixture
def emu(receiver: Receiver) -> Iterator[LiveKitEmulator]:  # noqa: F811 - the imported fixture
    with LiveKitEmulator(webhook_urls=[receiver.url]) as emulator:
        emulator.add_room("r")
        emulator.join(
            "r",
            "alice",
            tracks=[
                ("audio", "microphone", "mic", False, "TR_mic"),
                ("video", "camera", "cam", False, "TR_cam"),
            ],
        )
        assert emulator.wait_webhooks(5)
        emulator.clear_webhook_deliveries()
        receiver.hits.clear()
        yield emulator


def update(emu: LiveKitEmulator, **fields: object) -> models.ParticipantInfo:
    req = rp.UpdateParticipantRequest(room="r", identity="alice", **fields)  # type: ignore[arg-type]
    return room_call(emu, lambda r: r.update_participant(req))


def unpublished(emu: LiveKitEmulator, rec: Receiver) -> list[str]:
    assert emu.wait_webhooks(5)
    verifier = WebhookReceiver(TokenVerifier(emu.api_key, emu.api_secret))
    events = [verifier.receive(b.decode(), h["Authorization"]) for h, b in rec.hits]
    assert all(e.event == "track_unpublished" and e.participant.identity == "alice" for e in events)
    return sorted(e.track.sid for e in events)


def test_a_joining_participant_has_a_plain_join_tokens_permission(emu: LiveKitEmulator) -> None:
    got = room_call(emu, lambda r: r.get_participant(remove_req("r", "alice")))
    # VideoGrant getters: can_publish / can_subscribe default true, can_publish_data follows
    # can_publish, no source list means every source; the rest false.
    assert got.permission == ParticipantPermission(
        can_subscribe=True, can_publish=True, can_publish_data=True
    )
    assert got.is_publisher and emu.room("r").num_publishers == 1  # type: ignore[union-attr]


def test_permission_is_replaced_whole_and_tracks_go(emu: LiveKitEmulator, receiver: Receiver) -> None:  # noqa: F811
    before = emu.participant("r", "alice")
    assert before is not None
    answer = update(emu, permission=ParticipantPermission(can_subscribe=True))
    # Everything not sent is now false: no publishing at all, so both tracks are unpublished.
    assert answer.permission == ParticipantPermission(can_subscribe=True)
    assert list(answer.tracks) == [] and answer.is_publisher is False
    assert answer.version == before.version + 1
    assert emu.room("r").num_publishers == 0  # type: ignore[union-attr]
    assert unpublished(emu, receiver) == ["TR_cam", "TR_mic"]
    with pytest.raises(PublishNotAllowedError):
        emu.publish_track("r", "alice", "audio", "microphone")


def test_a_source_list_unpublishes_only_the_other_sources(emu: LiveKitEmulator, receiver: Receiver) -> None:  # noqa: F811
    only_mic = ParticipantPermission(
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_publish_sources=[TrackSource.MICROPHONE],
    )
    answer = update(emu, permission=only_mic)
    assert answer.permission == only_mic
    assert [t.sid for t in answer.tracks] == ["TR_mic"] and answer.is_publisher
    assert unpublished(emu, receiver) == ["TR_cam"]
    with pytest.raises(PublishNotAllowedError, match="CAMERA"):
        emu.publish_track("r", "alice", "video", "camera")
    assert emu.publish_track("r", "alice", "audio", "microphone", sid="TR_mic2").sid == "TR_mic2"


def test_same_permission_again_changes_nothing(emu: LiveKitEmulator) -> None:
    same = ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True)
    before = emu.participant("r", "alice")
    answer = update(emu, permission=same)
    assert before is not None and answer.version == before.version and len(answer.tracks) == 2
    assert emu.wait_webhooks(5) and emu.webhook_deliveries() == []


def test_no_permission_in_the_request_keeps_it(emu: LiveKitEmulator) -> None:
    answer = update(emu, metadata="m")
    assert answer.metadata == "m" and answer.permission.can_publish and len(answer.tracks) == 2


def test_every_permission_field_is_carried(emu: LiveKitEmulator) -> None:
    full = ParticipantPermission(
        can_subscribe=True,
        can_publish=True,
        can_publish_data=True,
        hidden=True,
        can_update_metadata=True,
        can_subscribe_metrics=True,
        can_manage_agent_session=True,
    )
    assert update(emu, permission=full).permission == full
    assert emu.participant("r", "alice").permission == full  # type: ignore[union-attr]


def test_restoring_publish_does_not_bring_tracks_back(emu: LiveKitEmulator) -> None:
    update(emu, permission=ParticipantPermission(can_subscribe=True))
    back = update(
        emu, permission=ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True)
    )
    assert list(back.tracks) == [] and back.permission.can_publish
    # participant.go SetPermission: isPublisher = canPublish && IsPublisherEstablished(); the
    # publisher transport of a participant that published stays up, so it is one again.
    assert back.is_publisher and emu.room("r").num_publishers == 1  # type: ignore[union-attr]
    assert emu.publish_track("r", "alice", "video", "camera").source == TrackSource.CAMERA
    assert emu.participant("r", "alice").is_publisher  # type: ignore[union-attr]


def test_granting_publish_to_someone_who_never_published_makes_no_publisher(emu: LiveKitEmulator) -> None:
    emu.join("r", "viewer", tracks=[], permission=ParticipantPermission(can_subscribe=True))
    req = rp.UpdateParticipantRequest(
        room="r", identity="viewer", permission=ParticipantPermission(can_subscribe=True, can_publish=True)
    )
    granted = room_call(emu, lambda r: r.update_participant(req))
    # No publisher transport yet: it becomes a publisher when it publishes.
    assert granted.permission.can_publish and not granted.is_publisher
    room = emu.room("r")
    assert room is not None and room.num_publishers == 1  # alice only
    emu.publish_track("r", "viewer", "audio", "microphone")
    assert emu.participant("r", "viewer").is_publisher  # type: ignore[union-attr]
    assert emu.room("r").num_publishers == 2  # type: ignore[union-attr]


def test_join_with_an_explicit_permission(emu: LiveKitEmulator) -> None:
    viewer = ParticipantPermission(can_subscribe=True)
    info = emu.join("r", "viewer", tracks=[], permission=viewer)
    assert info.permission == viewer and not info.is_publisher
    with pytest.raises(PublishNotAllowedError):
        emu.join("r", "sneaky", tracks=[("audio", "microphone")], permission=viewer)
    assert emu.participant("r", "sneaky") is None
