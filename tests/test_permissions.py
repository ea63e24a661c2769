"""POST /livekit/participant/permissions: change only the fields given, the mute a participant
cannot undo, and the same tenant, error and signal contract as the other routes (issue 12).

LiveKit's UpdateParticipant REPLACES the whole permission (every field not sent becomes false),
and unpublishes the tracks whose source the new permission no longer allows; the stand-in does
both (tests/test_emulator_permissions.py), so what it stores is what a real server would hold.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from livekit.protocol import models
from livekit.protocol import room as room_pb
from livekit.protocol.models import ParticipantPermission, TrackSource

from flask_livekit_moderation import errors, room_metadata, signals
from flask_livekit_moderation.testing import LiveKitEmulator, PublishNotAllowedError
from tests.helpers import MASKED_404, TOKEN_A, TOKEN_B, ServedApp
from tests.test_emulator import room_call

PATH = "/livekit/participant/permissions"

#: A permission with every field a moderator may NOT change set to a non-default value, so
#: a route that sent only the fields it was given would visibly lose them.
RICH = ParticipantPermission(
    can_subscribe=True,
    can_publish=True,
    can_publish_data=True,
    can_update_metadata=True,
    hidden=True,
    can_subscribe_metrics=True,
    can_manage_agent_session=True,
)
MIC_AND_CAM = [("audio", "microphone", "mic", False, "TR_mic"), ("video", "camera", "cam", False, "TR_cam")]


def permissions(
    served: ServedApp, room: str, identity: str, token: str | None = None, **fields: Any
) -> requests.Response:
    body = {"room_name": room, "participant_identity": identity, **fields}
    return served.request("POST", PATH, token, json=body)


def _as_json(permission: ParticipantPermission) -> dict[str, Any]:
    return {
        "can_subscribe": permission.can_subscribe,
        "can_publish": permission.can_publish,
        "can_publish_data": permission.can_publish_data,
        "can_publish_sources": [TrackSource.Name(s).lower() for s in permission.can_publish_sources],
        "can_update_metadata": permission.can_update_metadata,
        "hidden": permission.hidden,
        "can_subscribe_metrics": permission.can_subscribe_metrics,
        "can_manage_agent_session": permission.can_manage_agent_session,
    }


def _stored(emu: LiveKitEmulator, room: str, identity: str) -> models.ParticipantInfo:
    participant = emu.participant(room, identity)
    assert participant is not None
    return participant


def _owned_room(emu: LiveKitEmulator, owner: str = "tenant-a", name: str = "room-a") -> None:
    emu.add_room(name, metadata=room_metadata(owner))
    emu.add_participant(name, "alice", tracks=MIC_AND_CAM, permission=RICH)


# -- only the fields given change ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "changed"),
    [
        ({"can_publish": False}, {"can_publish": False}),
        ({"can_subscribe": False}, {"can_subscribe": False}),
        ({"can_publish_data": False}, {"can_publish_data": False}),
        (
            {"can_publish_sources": ["screen_share", "camera"]},
            {"can_publish_sources": [TrackSource.CAMERA, TrackSource.SCREEN_SHARE]},
        ),
        (
            {"can_publish": True, "can_subscribe": False, "can_publish_sources": ["microphone"]},
            {"can_subscribe": False, "can_publish_sources": [TrackSource.MICROPHONE]},
        ),
    ],
    ids=["can_publish", "can_subscribe", "can_publish_data", "sources", "several"],
)
def test_a_partial_update_keeps_every_field_not_given(tenants, livekit_emulator, given, changed):
    _owned_room(livekit_emulator)
    expected = ParticipantPermission()
    expected.CopyFrom(RICH)
    for name, value in changed.items():
        if name == "can_publish_sources":
            expected.can_publish_sources.extend(value)
        else:
            setattr(expected, name, value)

    answer = permissions(tenants, "room-a", "alice", TOKEN_A, **given)

    assert answer.status_code == 200, answer.text
    stored = _stored(livekit_emulator, "room-a", "alice").permission
    assert stored == expected
    # What was sent is the whole merged permission, not only the fields given.
    update = livekit_emulator.calls[-1]
    assert update.method == "UpdateParticipant" and update.request.permission == expected
    assert update.request.name == "" and update.request.metadata == ""
    assert answer.json()["permission"] == _as_json(expected)
    assert answer.json()["room_name"] == "room-a" and answer.json()["participant_identity"] == "alice"


def test_revoking_publish_keeps_subscriptions_where_a_naive_call_cuts_them(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participants("room-1", ["alice", "bob"], tracks=MIC_AND_CAM[:1])

    answer = permissions(anon, "room-1", "alice", can_publish=False)

    assert answer.status_code == 200
    assert answer.json()["permission"]["can_subscribe"] is True
    assert answer.json()["permission"]["can_publish_data"] is True
    alice = _stored(livekit_emulator, "room-1", "alice")
    assert alice.permission.can_subscribe and not alice.permission.can_publish
    assert list(alice.tracks) == []  # nothing may be published: LiveKit unpublished the mic
    # The pitfall the route avoids: the same change sent as LiveKit's API takes it.
    naive = room_pb.UpdateParticipantRequest(
        room="room-1", identity="bob", permission=ParticipantPermission(can_publish=False)
    )
    cut = room_call(livekit_emulator, lambda rooms: rooms.update_participant(naive))
    assert not cut.permission.can_subscribe and not cut.permission.can_publish_data


def test_revoking_the_microphone_unpublishes_it_until_it_is_granted_again(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice", tracks=MIC_AND_CAM)

    answer = permissions(anon, "room-1", "alice", can_publish_sources=["camera"])

    assert answer.status_code == 200
    assert answer.json()["unpublished_tracks"] == [{"track_sid": "TR_mic", "source": "microphone"}]
    assert answer.json()["permission"]["can_publish_sources"] == ["camera"]
    alice = _stored(livekit_emulator, "room-1", "alice")
    assert [t.sid for t in alice.tracks] == ["TR_cam"]
    with pytest.raises(PublishNotAllowedError):
        livekit_emulator.publish_track("room-1", "alice", "audio", "microphone")
    livekit_emulator.publish_track("room-1", "alice", "video", "camera", sid="TR_cam2")

    again = permissions(anon, "room-1", "alice", can_publish_sources=["camera", "microphone"])

    assert again.status_code == 200 and again.json()["unpublished_tracks"] == []
    assert again.json()["permission"]["can_publish_sources"] == ["camera", "microphone"]
    livekit_emulator.publish_track("room-1", "alice", "audio", "microphone", sid="TR_mic2")
    assert {t.sid for t in _stored(livekit_emulator, "room-1", "alice").tracks} == {
        "TR_cam",
        "TR_cam2",
        "TR_mic2",
    }


def test_an_empty_source_list_allows_every_source_as_in_livekit(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    only_cam = ParticipantPermission()
    only_cam.CopyFrom(RICH)
    only_cam.can_publish_sources.append(TrackSource.CAMERA)
    livekit_emulator.add_participant("room-1", "alice", tracks=MIC_AND_CAM[1:], permission=only_cam)

    answer = permissions(anon, "room-1", "alice", can_publish_sources=[])

    assert answer.status_code == 200
    assert answer.json()["permission"]["can_publish_sources"] == []
    assert _stored(livekit_emulator, "room-1", "alice").permission == RICH
    livekit_emulator.publish_track("room-1", "alice", "video", "screen_share")


def test_the_answer_and_calls_for_an_anonymous_caller(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice", tracks=MIC_AND_CAM)

    answer = permissions(anon, "room-1", "alice", can_subscribe=False)

    assert answer.status_code == 200
    assert answer.json() == {
        "room_name": "room-1",
        "participant_identity": "alice",
        "permission": {
            "can_subscribe": False,
            "can_publish": True,
            "can_publish_data": True,
            "can_publish_sources": [],
            "can_update_metadata": False,
            "hidden": False,
            "can_subscribe_metrics": False,
            "can_manage_agent_session": False,
        },
        "unpublished_tracks": [],
    }
    assert livekit_emulator.call_names() == ["GetParticipant", "UpdateParticipant"]
    get, update = livekit_emulator.calls
    assert (get.request.room, get.request.identity) == ("room-1", "alice")
    assert (update.request.room, update.request.identity) == ("room-1", "alice")
    for call in (get, update):
        assert call.grants.room_admin is True and call.grants.room == "room-1"


def test_a_tenant_reads_beside_the_room_check_then_updates(tenants, livekit_emulator):
    _owned_room(livekit_emulator)
    livekit_emulator.set_latency(0.25)

    answer = permissions(tenants, "room-a", "alice", TOKEN_A, can_publish_sources=["camera"])

    assert answer.status_code == 200
    # Two round trips, not three, on the stand-in's clock: the reads overlap, the update
    # starts once both are answered.
    first, second, update = livekit_emulator.calls
    assert {first.method, second.method} == {"ListRooms", "GetParticipant"}
    assert first.started < second.finished and second.started < first.finished, "not beside each other"
    assert update.method == "UpdateParticipant" and update.started >= max(first.finished, second.finished)
    assert list(first.request.names if first.method == "ListRooms" else second.request.names) == ["room-a"]


# -- the masked 404 -----------------------------------------------------------------------------


def test_foreign_room_no_room_and_no_participant_are_the_same_404_and_change_nothing(
    tenants, livekit_emulator
):
    _owned_room(livekit_emulator, owner="tenant-b", name="room-b")
    _owned_room(livekit_emulator, owner="tenant-a", name="room-a")
    before = _stored(livekit_emulator, "room-b", "alice")

    answers = [
        permissions(tenants, "room-b", "alice", TOKEN_A, can_publish=False),  # tenant-b's room
        permissions(tenants, "no-such-room", "alice", TOKEN_A, can_publish=False),
        permissions(tenants, "room-a", "nobody", TOKEN_A, can_publish=False),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert answers[0].json() == MASKED_404
    assert answers[0].content == answers[1].content == answers[2].content
    assert "UpdateParticipant" not in livekit_emulator.call_names()
    assert _stored(livekit_emulator, "room-b", "alice") == before
    # The owner of room-b may.
    assert permissions(tenants, "room-b", "alice", TOKEN_B, can_publish=False).status_code == 200


def test_a_participant_who_leaves_before_the_update_is_the_masked_404(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    livekit_emulator.set_latency(0.4, method="UpdateParticipant")
    answers: list[requests.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(permissions(anon, "room-1", "alice", can_publish=False))
    )

    sender.start()
    deadline = time.monotonic() + 5
    while "GetParticipant" not in livekit_emulator.call_names() and time.monotonic() < deadline:
        time.sleep(0.01)
    livekit_emulator.leave("room-1", "alice")
    sender.join(10)

    (answer,) = answers
    assert answer.status_code == 404 and answer.json() == MASKED_404
    assert (
        livekit_emulator.calls[-1].method == "UpdateParticipant" and livekit_emulator.calls[-1].status == 404
    )


# -- validation ---------------------------------------------------------------------------------


def test_at_least_one_permission_field_is_required(anon, livekit_emulator):
    answer = permissions(anon, "room-1", "alice")

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "INVALID_REQUEST" and list(body["details"]) == ["_schema"]
    for name in ("can_publish", "can_publish_sources", "can_subscribe", "can_publish_data"):
        assert name in body["error"]
    assert livekit_emulator.calls == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("can_publish", "false"),
        ("can_publish", 0),
        ("can_publish", None),
        ("can_subscribe", "no"),
        ("can_publish_data", 1),
        ("can_publish_sources", "microphone"),
        ("can_publish_sources", ["MICROPHONE"]),
        ("can_publish_sources", ["unknown"]),
        ("can_publish_sources", ["mic"]),
        ("can_publish_sources", ["camera", "camera"]),
        ("can_publish_sources", [None]),
        ("can_publish_sources", None),
        ("can_publish_sources", {"camera": True}),
    ],
)
def test_invalid_permission_fields_are_400_without_calling_livekit(anon, livekit_emulator, field, value):
    answer = permissions(anon, "room-1", "alice", **{field: value})

    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST" and list(answer.json()["details"]) == [field]
    assert livekit_emulator.calls == []
    (messages,) = answer.json()["details"].values()
    assert isinstance(messages, list) and all(isinstance(m, str) for m in messages)  # flat, item errors too


@pytest.mark.parametrize("missing", ["room_name", "participant_identity"])
def test_names_are_required(anon, livekit_emulator, missing):
    body = {"room_name": "room-1", "participant_identity": "alice", "can_publish": False}
    del body[missing]

    answer = anon.request("POST", PATH, json=body)

    assert answer.status_code == 400 and list(answer.json()["details"]) == [missing]


def test_a_body_that_is_not_json_is_415(anon, livekit_emulator):
    answer = anon.request(
        "POST", PATH, data=b'{"room_name": "r", "participant_identity": "a", "can_publish": false}'
    )

    assert answer.status_code == 415 and answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert livekit_emulator.calls == []


# -- LiveKit's refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "code", "expected"),
    [
        ("GetParticipant", "permission_denied", "PERMISSION_UPDATE_FAILED"),
        ("GetParticipant", "unavailable", "LIVEKIT_UNAVAILABLE"),
        ("UpdateParticipant", "invalid_argument", "PERMISSION_UPDATE_FAILED"),
        ("UpdateParticipant", "internal", "LIVEKIT_UNAVAILABLE"),
        ("UpdateParticipant", "unauthenticated", "LIVEKIT_AUTH_FAILED"),
    ],
)
def test_livekit_refusals_answer_their_code(anon, livekit_emulator, method, code, expected):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice", tracks=MIC_AND_CAM)
    livekit_emulator.fail_next(method, code=code)

    answer = permissions(anon, "room-1", "alice", can_publish=False)

    assert (answer.status_code, answer.json()["code"]) == (errors.BY_CODE[expected].status, expected)
    if expected == "LIVEKIT_UNAVAILABLE":
        assert int(answer.headers["Retry-After"]) >= 1
    if method == "GetParticipant":
        assert "UpdateParticipant" not in livekit_emulator.call_names()
    assert _stored(livekit_emulator, "room-1", "alice").permission.can_publish is True


def test_no_update_when_livekit_reports_no_permission(anon, livekit_emulator):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")
    bare = models.ParticipantInfo(identity="alice", sid="PA_bare")
    livekit_emulator.answer_next("GetParticipant", body=bare.SerializeToString())

    answer = permissions(anon, "room-1", "alice", can_publish=False)

    assert (answer.status_code, answer.json()["code"]) == (500, "PERMISSION_UPDATE_FAILED")
    assert "current permission" in answer.json()["error"]
    assert livekit_emulator.call_names() == ["GetParticipant"]


# -- signals and audit --------------------------------------------------------------------------


def test_signals_after_livekit_changed_the_permission(tenants, livekit_emulator):
    _owned_room(livekit_emulator)
    changed: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []

    def on_changed(sender: Any, **data: Any) -> None:
        assert _stored(livekit_emulator, "room-a", "alice").permission.can_publish_sources
        changed.append(data)

    def on_finished(sender: Any, **data: Any) -> None:
        finished.append(data)

    with (
        signals.participant_permissions_changed.connected_to(on_changed, tenants.app),
        signals.moderation_finished.connected_to(on_finished, tenants.app),
    ):
        answer = permissions(tenants, "room-a", "alice", TOKEN_A, can_publish_sources=["camera"])

    assert answer.status_code == 200
    (data,) = changed
    assert data == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",
        "room_name": "room-a",
        "participant_identity": "alice",
        "permission": answer.json()["permission"],
        "previous": _as_json(RICH),
        "unpublished_tracks": [{"track_sid": "TR_mic", "source": "microphone"}],
        "outcome": "permissions_updated",
    }
    (done,) = finished
    assert done["action"] == "permissions" and done["outcome"] == "permissions_updated"
    assert done["status"] == 200 and done["auth_id"] == "tenant-a"
    assert done["participant_identity"] == "alice" and done["room_name"] == "room-a"
    assert sorted(done["livekit_calls"]) == ["GetParticipant", "ListRooms", "UpdateParticipant"]


def test_a_refusal_sends_moderation_refused_and_no_change(tenants, livekit_emulator):
    _owned_room(livekit_emulator, owner="tenant-b", name="room-b")
    changed: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []

    with (
        signals.participant_permissions_changed.connected_to(
            lambda sender, **data: changed.append(data), tenants.app
        ),
        signals.moderation_refused.connected_to(lambda sender, **data: refused.append(data), tenants.app),
    ):
        answer = permissions(tenants, "room-b", "alice", TOKEN_A, can_publish=False)

    assert answer.status_code == 404 and changed == []
    (data,) = refused
    assert data["action"] == "permissions" and data["outcome"] == "PARTICIPANT_NOT_FOUND"
    assert data["room_name"] == "room-b" and data["participant_identity"] == "alice"


def test_the_audit_line_names_the_action(anon, livekit_emulator, caplog):
    livekit_emulator.add_room("room-1")
    livekit_emulator.add_participant("room-1", "alice")

    with caplog.at_level("INFO", logger="flask_livekit_moderation"):
        assert permissions(anon, "room-1", "alice", can_publish_data=False).status_code == 200

    (line,) = [r for r in caplog.records if getattr(r, "moderation_action", None) == "permissions"]
    assert line.moderation_outcome == "permissions_updated"
    assert line.moderation_livekit_calls == ["GetParticipant", "UpdateParticipant"]
