"""Control routes and command line of the stand-in (issue 14, point 5): JSON errors
that name the field, rooms that keep their metadata, participants that leave, tracks
that come and go, settings changed at run time, ``--help`` and ``--seed``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.api import LiveKitAPI
from livekit.protocol import room as rp

from flask_livekit_moderation.testing import (
    LiveKitEmulator,
    PublishNotAllowedError,
    SeedError,
    UnknownParticipantError,
)
from tests.test_emulator import control, remove_req, room_call, twirp_error


@pytest.fixture
def emu() -> Iterator[LiveKitEmulator]:
    with LiveKitEmulator(mute_unknown_delay=2.0, shuffle=False, cloud=False) as emulator:
        yield emulator


def post(emu: LiveKitEmulator, route: str, body: Any, verb: str = "POST") -> tuple[int, Any]:
    return control(emu.url, emu.api_secret, verb, route, body)


@pytest.mark.parametrize(
    "route, body, status, error",
    [
        ("rooms", {}, 400, "name: required"),
        ("rooms", {"name": 5}, 400, "name: expected a string, got 5"),
        ("rooms", {"name": "r", "empty_timeout": "soon"}, 400, "empty_timeout: expected a number"),
        ("rooms", {"rooms": [1]}, 400, "rooms: each room is an object"),
        ("participants", {"identities": ["a"]}, 400, "room: required"),
        ("participants", {"room": "r", "identities": "alice"}, 400, "identities: expected a list"),
        (
            "participants",
            {"room": "r", "identities": ["a"], "tracks": [["hologram"]]},
            400,
            "unknown track type",
        ),
        (
            "participants",
            {"room": "r", "identities": ["a"], "tracks": [[1, 2, 3, 4, 5, 6]]},
            400,
            "1 to 5 values",
        ),
        ("participants", {"room": "r", "identities": ["a"], "tracks": [{"kind": "audio"}]}, 400, "['kind']"),
        (
            "participants",
            {"room": "r", "identities": ["a"], "permission": {"can_fly": True}},
            400,
            "permission",
        ),
        ("participants", {"room": "nowhere", "identities": ["a"]}, 404, "'nowhere' does not exist"),
        ("leave", {"room": "r"}, 400, "identity: required"),
        ("leave", {"room": "r", "identity": "ghost"}, 404, "identity: 'ghost' is not in room 'r'"),
        ("tracks", {"room": "r", "identity": "alice"}, 400, "type: required"),
        ("tracks", {"room": "r", "identity": "alice", "type": "audio", "colour": 1}, 400, "colour: unknown"),
        ("tracks", {"room": "r", "identity": "ghost", "type": "audio"}, 404, "'ghost' is not in room"),
        ("unpublish", {"room": "r", "identity": "alice", "sid": "TR_nope"}, 404, "sid: 'alice' has no track"),
        ("settings", {"remote_unmute": True}, 400, "remote_unmute: unknown setting"),
        ("settings", {"mute_unknown_delay": -1}, 400, "mute_unknown_delay: must be >= 0"),
        ("settings", {"enable_remote_unmute": "yes"}, 400, "enable_remote_unmute: expected true or false"),
        ("faults", {"kind": "fail"}, 400, "method: required"),
        ("faults", {"kind": "explode", "method": "X"}, 400, "kind: unknown fault kind 'explode'"),
        ("latency", {}, 400, "ms: required"),
        ("seed", {"rooms": [{"participants": []}]}, 400, "rooms[0].name: required"),
        (
            "seed",
            {"rooms": [{"name": "s", "participants": [{"identity": "a", "tracks": [{}]}]}]},
            400,
            "tracks[0]",
        ),
    ],
)
def test_errors_name_the_field(
    emu: LiveKitEmulator, route: str, body: dict[str, Any], status: int, error: str
) -> None:
    emu.add_room("r")
    emu.add_participant("r", "alice")
    got_status, answer = post(emu, route, body)
    assert got_status == status and error in answer["error"], answer


def test_body_must_be_a_json_object(emu: LiveKitEmulator) -> None:
    assert post(emu, "rooms", ["r"]) == (400, {"error": "body: must be a JSON object"})


def test_reposting_a_room_changes_only_what_is_given(emu: LiveKitEmulator) -> None:
    status, made = post(emu, "rooms", {"name": "r", "metadata": '{"auth_id": "t1"}'})
    assert status == 200 and made["rooms"][0]["created"] is True
    sid = made["rooms"][0]["sid"]
    status, again = post(emu, "rooms", {"name": "r"})
    assert again["rooms"][0] == {"name": "r", "sid": sid, "created": False}
    assert emu.room("r").metadata == '{"auth_id": "t1"}'  # type: ignore[union-attr]
    post(emu, "rooms", {"name": "r", "max_participants": 3})
    room = emu.room("r")
    assert room is not None and (room.metadata, room.max_participants) == ('{"auth_id": "t1"}', 3)
    assert emu.add_room("r").metadata == '{"auth_id": "t1"}'
    assert emu.add_room("r", metadata="").metadata == ""


def test_leave_unpublish_and_publish_routes(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    status, added = post(
        emu,
        "participants",
        {
            "room": "r",
            "identities": ["alice", "bob"],
            "tracks": [["audio", "microphone", "mic", False, "TR_fixed"]],
        },
    )
    assert status == 200 and added["participants"]["alice"] == {"mic": "TR_fixed"}
    assert post(emu, "unpublish", {"room": "r", "identity": "alice", "sid": "TR_fixed"}) == (
        200,
        {"ok": True},
    )
    assert list(emu.participant("r", "alice").tracks) == []  # type: ignore[union-attr]
    status, track = post(
        emu,
        "tracks",
        {"room": "r", "identity": "alice", "type": "video", "source": "screen_share", "sid": "TR_s"},
    )
    assert status == 200 and (track["sid"], track["source"], track["type"]) == (
        "TR_s",
        "SCREEN_SHARE",
        "VIDEO",
    )
    assert post(emu, "leave", {"room": "r", "identity": "bob"}) == (200, {"left": True})
    assert [p.identity for p in emu.participants("r")] == ["alice"]
    # A participant whose permission forbids the camera cannot publish one.
    post(
        emu,
        "participants",
        {
            "room": "r",
            "identities": ["carol"],
            "tracks": [],
            "permission": {"can_publish": True, "can_publish_sources": ["MICROPHONE"]},
        },
    )
    status, answer = post(
        emu, "tracks", {"room": "r", "identity": "carol", "type": "video", "source": "camera"}
    )
    assert status == 403 and "CAMERA" in answer["error"]
    assert post(emu, "rooms", {"name": "r"}, verb="DELETE") == (200, {"closed": True})
    assert emu.room("r") is None


def test_settings_change_at_run_time(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    mic = emu.add_participant("r", "alice", tracks=[("audio", "microphone", "mic", True)]).tracks[0]
    unmute = rp.MuteRoomTrackRequest(room="r", identity="alice", track_sid=mic.sid, muted=False)
    assert twirp_error(emu, lambda r: r.mute_published_track(unmute)).status == 412
    status, now = post(emu, "settings", {"enable_remote_unmute": True, "mute_unknown_delay": 0.05})
    assert status == 200 and now == {
        "cloud": False,
        "enable_remote_unmute": True,
        "mute_unknown_delay": 0.05,
        "shuffle": False,
        "webhook_urls": [],
        "webhook_time_scale": 1.0,
    }
    assert room_call(emu, lambda r: r.mute_published_track(unmute)).track.muted is False
    started = time.monotonic()
    ghost = rp.MuteRoomTrackRequest(room="r", identity="ghost", track_sid="x", muted=True)
    assert twirp_error(emu, lambda r: r.mute_published_track(ghost)).status == 503
    assert time.monotonic() - started < 1.0  # no longer the 2 s the emulator started with
    assert control(emu.url, emu.api_secret, "GET", "settings")[1]["enable_remote_unmute"] is True
    post(emu, "settings", {"enable_remote_unmute": False})
    assert emu.enable_remote_unmute is False


def test_python_api_for_the_same_actions(emu: LiveKitEmulator) -> None:
    emu.add_room("r")
    emu.join("r", "alice", tracks=[])
    track = emu.publish_track("r", "alice", "audio", "microphone", name="mic", sid="TR_mic")
    assert (track.sid, track.name) == ("TR_mic", "mic")
    assert emu.room("r").num_publishers == 1  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        emu.publish_track("r", "alice", "audio", "microphone", sid="TR_mic")
    assert emu.unpublish_track("r", "alice", "TR_mic") and not emu.unpublish_track("r", "alice", "TR_mic")
    with pytest.raises(UnknownParticipantError):
        emu.publish_track("r", "ghost", "audio", "microphone")
    assert emu.leave("r", "alice") and not emu.leave("r", "alice")
    with pytest.raises(SeedError, match=r"rooms\[0\]\.participants\[0\]\.identity: required"):
        emu.seed({"rooms": [{"name": "s", "participants": [{}]}]})
    assert emu.room("s") is None  # validated before anything was created


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask_livekit_moderation.testing", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_documents_seeding_and_control_routes() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for text in (
        "--seed FILE",
        "--shuffle",
        "--departure-timeout",
        "--keepalive-timeout",
        '"tracks": [{"type": "audio"',
        "POST      leave",
        "POST      settings",
        "POST      faults",
        "LIVEKIT_EMULATOR_SHUFFLE=1",
    ):
        assert text in out.stdout, text


def test_cli_seed_with_fixed_track_sids(tmp_path: Path) -> None:
    seed = {
        "rooms": [
            {
                "name": "standup",
                "metadata": '{"auth_id": "acme"}',
                "participants": [
                    "bob",
                    {
                        "identity": "alice",
                        "tracks": [{"type": "audio", "source": "microphone", "sid": "TR_alice_mic"}],
                    },
                ],
            }
        ]
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask_livekit_moderation.testing", "--seed", str(path), "--shuffle"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())

        async def mute() -> Any:
            async with LiveKitAPI(info["url"], info["api_key"], info["api_secret"]) as lk:
                rooms = await lk.room.list_rooms(rp.ListRoomsRequest())
                answer = await lk.room.mute_published_track(
                    rp.MuteRoomTrackRequest(
                        room="standup", identity="alice", track_sid="TR_alice_mic", muted=True
                    )
                )
                bob = await lk.room.get_participant(remove_req("standup", "bob"))
                return rooms, answer, bob

        rooms, answer, bob = asyncio.run(mute())
        assert [(r.name, r.metadata) for r in rooms.rooms] == [("standup", '{"auth_id": "acme"}')]
        assert answer.track.sid == "TR_alice_mic" and answer.track.muted is True
        assert len(bob.tracks) == 2  # a bare identity publishes microphone + camera
        assert control(info["url"], info["api_secret"], "GET", "settings")[1]["shuffle"] is True
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_rejects_a_bad_seed(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text('{"rooms": [{"name": "r", "participants": [{"identity": "a", "tracks": "none"}]}]}')
    out = run_cli("--seed", str(path))
    assert out.returncode == 2 and "rooms[0].participants[0].tracks: expected a list" in out.stderr
    assert run_cli("--seed", str(tmp_path / "missing.json")).returncode == 2


def test_publish_not_allowed_from_the_python_api(emu: LiveKitEmulator) -> None:
    from livekit.protocol.models import ParticipantPermission

    emu.add_room("r")
    emu.join("r", "viewer", tracks=[], permission=ParticipantPermission(can_subscribe=True))
    with pytest.raises(PublishNotAllowedError):
        emu.publish_track("r", "viewer", "audio", "microphone")
