"""LiveKit's webhook never acknowledges what it could not check, and does each event's work once.

Over real HTTP: the host app served by werkzeug, the LiveKit stand-in delivering (or the test
posting) LiveKit-signed ``participant_joined`` events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import WEBHOOK, Host, joined, point_webhooks, rejoin, settle, signed
from tests.helpers import TOKEN_A


def _banned_and_back(emu: LiveKitEmulator, host: Host) -> tuple[bytes, dict[str, str]]:
    """troll banned from tenant A's room r, then back in it (no webhook sent): their join, signed."""
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "troll", token=TOKEN_A).status_code == 201
    emu.join("r", "troll", tracks=[])
    emu.clear_calls()
    return signed(emu, joined(emu, "r", "troll"))


def test_the_store_unavailable_is_503_with_retry_after_never_200(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    (tmp_path / "a-file").write_text("")
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/a-file/bans.sqlite3")
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    point_webhooks(emu, host)
    emu.join("r", "troll", tracks=[])  # LiveKit delivers participant_joined, retrying on 503
    assert emu.wait_webhooks(30)
    (delivery,) = [d for d in emu.webhook_deliveries() if d.event == "participant_joined"]
    assert (delivery.status, delivery.delivered) == (503, False)  # never acknowledged
    assert delivery.attempts > 1  # LiveKit tried again, as often as it does, and gave up
    body, headers = signed(emu, joined(emu, "r", "troll"))
    answer = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (503, "BAN_STORE_UNAVAILABLE")
    assert answer.headers["Retry-After"] == "1"
    assert emu.call_names() == []  # nothing was removed on a guess


def test_livekit_unavailable_is_503_with_retry_after_and_the_retry_removes(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    body, headers = _banned_and_back(emu, host)
    emu.fail_next("RemoveParticipant", code="unavailable")
    first = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert (first.status_code, first.json()["code"]) == (503, "LIVEKIT_UNAVAILABLE")
    assert first.headers["Retry-After"].isdigit()
    assert emu.participant("r", "troll") is not None
    # The failed delivery did not mark the event handled: LiveKit's retry does the work.
    again = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert (again.status_code, again.json()["removed"]) == (200, True)
    assert emu.participant("r", "troll") is None
    assert emu.call_names() == ["ListRooms", "RemoveParticipant", "ListRooms", "RemoveParticipant"]


def test_the_same_event_twice_removes_once_even_through_another_worker(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    shared = f"sqlite:///{tmp_path}/shared.sqlite3"
    first_worker = hosts(LIVEKIT_MODERATION_BAN_STORE=shared)
    second_worker = hosts(LIVEKIT_MODERATION_BAN_STORE=shared)
    body, headers = _banned_and_back(emu, first_worker)
    answers = [w.request("POST", WEBHOOK, data=body, headers=headers) for w in (first_worker, second_worker)]
    answers.append(first_worker.request("POST", WEBHOOK, data=body, headers=headers))
    assert [(a.status_code, a.json()["removed"]) for a in answers] == [
        (200, True),
        (200, False),
        (200, False),
    ]
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]  # one removal
    duplicates = [f for f in second_worker.signalled("moderation_finished") if f["outcome"] == "duplicate"]
    assert [(f["action"], f["status"], f["livekit_calls"]) for f in duplicates] == [("enforce_ban", 200, [])]
    # A new join is a new event (a new id): it is removed again.
    rejoin(emu, "r", "troll", tracks=[])
    event = joined(emu, "r", "troll")
    event.id = "EV_second_join"
    body, headers = signed(emu, event)
    again = second_worker.request("POST", WEBHOOK, data=body, headers=headers)
    assert (again.status_code, again.json()["removed"]) == (200, True)


def test_a_delivery_while_the_same_event_is_handled_is_told_to_come_back(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    body, headers = _banned_and_back(emu, host)
    emu.set_latency(1.0, "ListRooms")  # the first delivery is still at LiveKit when the second arrives
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(host.request, "POST", WEBHOOK, data=body, headers=headers)
        time.sleep(0.3)
        second = host.request("POST", WEBHOOK, data=body, headers=headers)
        handled = first.result()
    emu.clear_faults()
    assert (handled.status_code, handled.json()["removed"]) == (200, True)
    assert (second.status_code, second.json()["code"]) == (503, "WEBHOOK_EVENT_IN_PROGRESS")
    assert second.headers["Retry-After"] == "1"
    retried = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert (retried.status_code, retried.json()["removed"]) == (200, False)
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]


def test_livekit_delivering_twice_removes_once(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    host.ban("r", "troll", token=TOKEN_A)
    point_webhooks(emu, host)
    emu.webhook_urls = [host.served.url + WEBHOOK, host.served.url + WEBHOOK]  # each event sent twice
    emu.clear_calls()
    emu.join("r", "troll", tracks=[])
    settle(emu)
    assert emu.participant("r", "troll") is None
    assert emu.call_names().count("RemoveParticipant") == 1
