"""Conformance of the stand-in with LiveKit's clocks and join sequence (issue 26, the rest).

Read from livekit/livekit 788d4c3 and livekit/protocol d74e7cd:

- rooms close on a 1 s ticker (``pkg/service/server.go`` ``backgroundWorker``: ``roomTicker :=
  time.NewTicker(1 * time.Second)`` -> ``RoomManager.CloseIdleRooms``, ``roommanager.go`` 220-228)
  whose ``Room.CloseIfEmpty`` (``pkg/rtc/room.go`` 774-808) compares whole Unix seconds:
  ``time.Now().Unix() - r.LastLeftAt() >= DepartureTimeout`` (or ``CreationTime`` and
  ``EmptyTimeout``), so a room closes within +-1 s of its timeout, always on a tick;
- ``num_participants`` / ``num_publishers`` come from the room's cached proto
  (``room.go`` 68 ``roomUpdateInterval = 5 * time.Second``, 306 ``NewProtoProxy``, 1586-1604
  ``updateProto``); a join or leave only ``MarkDirty(false)`` (room.go 489, 1453), which
  refreshes at once only when the last refresh is over 5 s old, else on the proxy's next
  5 s tick (protocol ``utils/protoproxy.go`` ``MarkDirty``, ``worker``); ``SetMetadata`` is
  ``MarkDirty(true)`` (room.go 846-851). ListRooms reads the store, fed with that proto
  (``roommanager.go`` 596-606, 709-713), and webhooks carry it;
- a participant is JOINING when it enters the room (``participant.go`` 422, room.go Join),
  JOINED once its join response is sent (``participant_signal.go`` 62-65), ACTIVE when its
  primary transport connects (``participant.go`` 2688-2700); ``participant_joined`` is sent
  only then ("a participant is considered joined only when they become active",
  ``pkg/telemetry/events.go`` 108-124, from room.go ``onStateChange`` 1245-1270), and a
  session that never was ACTIVE ends with ``participant_connection_aborted`` instead of
  ``participant_left`` (events.go 185-222).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from livekit.protocol import models
from livekit.protocol import room as rp

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import JoinRefusedError, LiveKitEmulator
from tests.bans_helpers import Host, point_webhooks, settle
from tests.helpers import TOKEN_A
from tests.test_emulator import remove_req, room_call
from tests.test_emulator_issue26 import _join_token
from tests.test_emulator_webhooks import Receiver, received, receiver  # noqa: F401 - the fixture

_State = models.ParticipantInfo.State
_TRACKS = [("audio", "microphone", "mic", False, "TR_mic"), ("video", "camera", "cam", False, "TR_cam")]


def _closing_times(emu: LiveKitEmulator, names: list[str], timeout: float) -> dict[str, float]:
    """Monotonic time each room was first seen gone (polled every 2 ms)."""
    closed: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(names) and time.monotonic() < deadline:
        for name in names:
            if name not in closed and emu.room(name) is None:
                closed[name] = time.monotonic()
        time.sleep(0.002)
    assert set(closed) == set(names), f"rooms still open: {set(names) - set(closed)}"
    return closed


def _on_one_grid(times: list[float], tick: float, slack: float) -> bool:
    first = times[0]
    return all(abs((t - first) / tick - round((t - first) / tick)) * tick <= slack for t in times)


@pytest.mark.timing
def test_rooms_close_on_a_1_s_ticker_with_whole_second_times() -> None:
    with LiveKitEmulator(departure_timeout=1, join_delay=0) as emu:
        assert emu.time_scale == 1.0
        names = ["a", "b", "c"]
        left = {}
        for name in names:
            emu.add_room(name)
            emu.join(name, "x", tracks=[])
        for name in names:  # leaving 0.3 s apart: not on one grid
            emu.leave(name, "x")
            left[name] = time.monotonic()
            time.sleep(0.3)
        closed = _closing_times(emu, names, timeout=4)
    for name in names:  # within +-1 s of the 1 s timeout
        assert 0.0 <= closed[name] - left[name] <= 2.05, (name, closed[name] - left[name])
    # ... and always on a tick of the one ticker
    assert _on_one_grid([closed[n] for n in names], 1.0, 0.06), {n: closed[n] - closed["a"] for n in names}


@pytest.mark.timing
def test_the_ticker_follows_time_scale_counting_whole_ticks() -> None:
    # 0.75 s at a 0.3 s tick is 3 whole ticks: closed 0.6 to 1.2 s after, on the 0.3 s grid.
    # (A 0.1 s tick left 20 ms for a loaded machine's late wake-ups, and CI could miss it.)
    with LiveKitEmulator(empty_timeout=0.75, time_scale=0.3) as emu:
        names = ["a", "b", "c"]
        made = {}
        for name in names:
            emu.add_room(name)
            made[name] = time.monotonic()
            time.sleep(0.1)
        room = emu.room("a")
        assert room is not None and room.empty_timeout == 1  # the proto's whole seconds
        closed = _closing_times(emu, names, timeout=4)
    for name in names:
        assert 0.57 <= closed[name] - made[name] <= 1.35, (name, closed[name] - made[name])
    assert _on_one_grid([closed[n] for n in names], 0.3, 0.06), {n: closed[n] - closed["a"] for n in names}


def _counts(emu: LiveKitEmulator) -> tuple[int, int]:
    (room,) = room_call(emu, lambda r: r.list_rooms(rp.ListRoomsRequest(names=["r"]))).rooms
    return room.num_participants, room.num_publishers


def _at(origin: float, seconds: float) -> None:
    time.sleep(max(0.0, origin + seconds - time.monotonic()))


@pytest.mark.timing
def test_list_rooms_counts_lag_until_the_rooms_periodic_refresh() -> None:
    # time_scale 0.2: the 5 s refresh is 1 s; the proxy ticks 1, 2, 3 s after creation.
    with LiveKitEmulator(time_scale=0.2, join_delay=0) as emu:
        origin = time.monotonic()
        emu.add_room("r")
        emu.join("r", "alice", tracks=_TRACKS)
        live = emu.room("r")
        assert live is not None and (live.num_participants, live.num_publishers) == (1, 1)
        assert _counts(emu) == (0, 0)  # the proto cached at creation
        _at(origin, 0.7)
        assert _counts(emu) == (0, 0)
        _at(origin, 1.2)
        assert _counts(emu) == (1, 1)  # the proxy's first tick
        emu.join("r", "bob", tracks=[])  # refreshed 0.2 s ago: waits for the next tick
        assert _counts(emu) == (1, 1)
        _at(origin, 1.8)
        assert _counts(emu) == (1, 1)
        _at(origin, 2.2)
        assert _counts(emu) == (2, 1)
        _at(origin, 3.3)  # more than an interval since the last refresh: a change shows at once
        emu.leave("r", "bob")
        assert _counts(emu) == (1, 1)
        emu.join("r", "carol", tracks=[])  # dirty again, but a metadata update refreshes at once
        updated = room_call(
            emu, lambda r: r.update_room_metadata(rp.UpdateRoomMetadataRequest(room="r", metadata="m"))
        )
        assert (updated.num_participants, updated.metadata) == (2, "m")
        assert _counts(emu) == (2, 1)


def test_webhook_rooms_carry_the_cached_counts(receiver: Receiver) -> None:  # noqa: F811
    with LiveKitEmulator(webhook_urls=[receiver.url], join_delay=0) as emu:
        emu.add_room("r")
        emu.join("r", "alice", tracks=[])
        emu.leave("r", "alice")
        emu.remove_room("r")
        events = received(emu, receiver)
    assert [(e.event, e.room.num_participants) for e in events] == [
        ("room_started", 0),
        ("participant_joined", 0),
        ("participant_left", 0),
        ("room_finished", 0),
    ]


def _listed(emu: LiveKitEmulator, identity: str) -> models.ParticipantInfo:
    listing = room_call(emu, lambda r: r.list_participants(rp.ListParticipantsRequest(room="r")))
    (p,) = [p for p in listing.participants if p.identity == identity]
    return p


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


@pytest.mark.timing
def test_a_join_is_joining_then_joined_then_active_and_participant_joined_comes_then(
    receiver: Receiver,  # noqa: F811
) -> None:
    assert LiveKitEmulator().join_delay == 0.1
    with LiveKitEmulator(webhook_urls=[receiver.url], join_delay=0.6) as emu:
        emu.add_room("r")
        started = time.monotonic()
        got = emu.join("r", "alice", tracks=_TRACKS, wait=False)
        assert (got.state, list(got.tracks), got.is_publisher) == (_State.JOINING, [], False)
        early = _listed(emu, "alice")
        assert (early.state, list(early.tracks), early.is_publisher) == (_State.JOINING, [], False)
        assert time.monotonic() - started < 0.12  # JOINED after a fifth of the delay
        _wait(lambda: _listed(emu, "alice").state == _State.JOINED)
        assert time.monotonic() - started < 0.6
        assert [e.event for e in received(emu, receiver)] == ["room_started"]  # not joined yet
        _wait(lambda: _listed(emu, "alice").state == _State.ACTIVE)
        assert time.monotonic() - started >= 0.55
        active = _listed(emu, "alice")
        assert [t.sid for t in active.tracks] == ["TR_mic", "TR_cam"] and active.is_publisher
        events = received(emu, receiver)
    assert [(e.event, e.participant.identity, e.track.sid) for e in events] == [
        ("room_started", "", ""),
        ("participant_joined", "alice", ""),
        ("track_published", "alice", "TR_mic"),
        ("track_published", "alice", "TR_cam"),
    ]
    joined = events[1].participant
    assert (joined.state, list(joined.tracks), joined.sid) == (_State.ACTIVE, [], got.sid)


def test_join_waits_for_active_by_default_and_counts_a_joining_participant() -> None:
    with LiveKitEmulator(join_delay=0.05) as emu:
        emu.add_room("r", max_participants=1)
        p = emu.join("r", "alice", tracks=_TRACKS)
        assert p.state == _State.ACTIVE and len(p.tracks) == 2 and p.is_publisher
        emu.remove_participant("r", "alice")
        pending = emu.join("r", "bob", tracks=[], wait=False)
        assert pending.state == _State.JOINING
        with pytest.raises(JoinRefusedError, match="max participants"):  # room.go Join counts it
            emu.join("r", "carol", tracks=[])


def test_a_participant_removed_while_joining_never_becomes_active(receiver: Receiver) -> None:  # noqa: F811
    with LiveKitEmulator(webhook_urls=[receiver.url], join_delay=1.0) as emu:
        emu.add_room("r")
        started = time.monotonic()
        emu.join("r", "alice", tracks=_TRACKS, wait=False)
        room_call(emu, lambda r: r.remove_participant(remove_req("r", "alice")))
        assert time.monotonic() - started < 1.0  # removed while still joining
        time.sleep(1.1)
        assert emu.participant("r", "alice") is None
        events = received(emu, receiver)
    assert [(e.event, e.participant.identity) for e in events] == [
        ("room_started", ""),
        ("participant_connection_aborted", "alice"),
    ]
    aborted = events[1].participant
    assert (aborted.state, aborted.disconnect_reason) == (
        _State.DISCONNECTED,
        models.DisconnectReason.PARTICIPANT_REMOVED,
    )


# ------------------------------------------------------------------ the extension


def test_the_extension_lists_a_joining_participant_and_its_ban_removes_them(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    emu.join_delay = 1.5
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    started = time.monotonic()
    emu.join("r", "troll", tracks=[], wait=False)
    listing = host.request("GET", "/livekit/participants", TOKEN_A, params={"room_name": "r"})
    assert listing.status_code == 200
    (troll,) = listing.json()["participants"]
    assert (troll["identity"], troll["state"]) == ("troll", "joining")
    answer = host.ban("r", "troll", token=TOKEN_A)
    assert answer.status_code == 201 and answer.json()["removed"] is True
    assert time.monotonic() - started < 1.5  # removed while still joining
    time.sleep(1.6)  # past the moment it would have been ACTIVE
    assert emu.participant("r", "troll") is None
    settle(emu)
    hooks = [(d.event, d.status) for d in emu.webhook_deliveries() if d.event.startswith("participant")]
    assert hooks == [("participant_connection_aborted", 200)]  # received; nothing to enforce


def test_the_webhook_removes_a_banned_participant_once_active(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "troll", token=TOKEN_A).status_code == 201
    settle(emu)
    emu.join_delay = 1.0
    emu.join("r", "troll", tracks=[], wait=False)
    settle(emu)  # nothing to deliver yet: LiveKit has not said the participant joined
    assert emu.participant("r", "troll") is not None
    _wait(lambda: emu.participant("r", "troll") is None)
    settle(emu)
    hooks = [(d.event, d.status) for d in emu.webhook_deliveries() if d.event.startswith("participant")]
    assert hooks == [("participant_joined", 200), ("participant_left", 200)]


@pytest.mark.parametrize("livekit_emulator", [{"cloud": True}], indirect=True)
def test_cloud_refuses_a_banned_participants_old_token_at_rejoin_with_no_webhook(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()  # no webhook URL: only the ban route's RemoveParticipant
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    old = _join_token(emu, "r", "troll")
    emu.join("r", "troll", tracks=[], token=old)
    assert host.ban("r", "troll", token=TOKEN_A).status_code == 201
    with pytest.raises(JoinRefusedError, match="revoked"):
        emu.join("r", "troll", tracks=[], token=old)
    assert emu.participant("r", "troll") is None and emu.webhook_urls == []
    assert emu.webhook_deliveries() == []
    ((_, cutoff),) = emu.revoked().items()
    emu.join("r", "troll", tracks=[], token=_join_token(emu, "r", "troll", nbf=cutoff))


def test_the_cloud_env_var_makes_cloud_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_EMULATOR_CLOUD", "1")
    assert LiveKitEmulator().cloud is True and LiveKitEmulator(cloud=False).cloud is False
    monkeypatch.setenv("LIVEKIT_EMULATOR_CLOUD", "0")
    assert LiveKitEmulator().cloud is False


def test_threads_are_not_left_behind_by_joins_in_the_background() -> None:
    before = threading.active_count()
    with LiveKitEmulator(join_delay=0.05) as emu:
        emu.add_room("r")
        for n in range(5):
            emu.join("r", f"p{n}", tracks=[], wait=False)
        _wait(lambda: all(p.state == _State.ACTIVE for p in emu.participants("r")))
    _wait(lambda: threading.active_count() <= before + 1)
