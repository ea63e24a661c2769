"""LiveKit's token revocation: every RemoveParticipant done for a ban carries ``revoke_token_ts``.

The stand-in records the field as LiveKit receives it (``CallRecord.revoke_token_ts``); the
cutoff is the ban's start, rounded up past its second (README, "Keeping removed participants
out"). The reconciler's removals are checked in ``test_reconcile.py``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import requests
from livekit import api

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import Host, point_webhooks, rejoin, settle, utc
from tests.helpers import TOKEN_A


def removals(emu: LiveKitEmulator) -> list[tuple[str, int | None]]:
    return [
        (getattr(c.request, "identity", ""), c.revoke_token_ts)
        for c in emu.calls
        if c.method == "RemoveParticipant"
    ]


def test_the_ban_route_and_the_webhook_revoke_tokens_from_before_the_ban(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    settle(emu)
    emu.clear_calls()

    before = time.time()
    answer = host.ban("r", "troll", token=TOKEN_A)
    after = time.time()
    assert answer.status_code == 201 and answer.json()["removed"] is True
    (listed,) = host.bans("r", TOKEN_A).json()["bans"]
    cutoff = math.floor(utc(listed["banned_at"]).timestamp()) + 1
    assert math.floor(before) < cutoff <= math.floor(after) + 1
    settle(emu)

    rejoin(emu, "r", "troll", tracks=[])  # back with the token they still hold: the webhook removes them
    settle(emu)
    assert emu.participant("r", "troll") is None
    # Both removals revoke the same tokens: those signed up to the ban's second.
    assert removals(emu) == [("troll", cutoff), ("troll", cutoff)]
    # A removal that is not a ban's revokes nothing explicitly (LiveKit's default applies).
    emu.join("r", "alice", tracks=[])
    emu.clear_calls()
    body = {"room_name": "r", "participant_identity": "alice"}
    assert host.request("DELETE", "/livekit/participant", TOKEN_A, json=body).status_code == 200
    assert removals(emu) == [("alice", None)]


def test_banning_again_moves_the_cutoff(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    host.ban("r", "troll", token=TOKEN_A)
    first = removals(emu)[-1][1]
    time.sleep(max(0.0, (first or 0) - time.time()) + 0.01)  # the next second
    emu.join("r", "troll", tracks=[])
    host.ban("r", "troll", token=TOKEN_A)
    second = removals(emu)[-1][1]
    assert first is not None and second is not None and second > first


def test_the_stand_in_reports_the_field_on_its_control_route(livekit_emulator: LiveKitEmulator) -> None:
    emu = livekit_emulator
    emu.add_room("r")
    emu.join("r", "troll", tracks=[])

    async def remove() -> None:
        async with api.LiveKitAPI(emu.url, emu.api_key, emu.api_secret) as lk:
            await lk.room.remove_participant(
                api.RoomParticipantIdentity(room="r", identity="troll", revoke_token_ts=1_900_000_000)
            )

    asyncio.run(remove())
    calls = requests.get(emu.url + "/_emulator/calls?records=1", timeout=10,
                         headers={"Authorization": f"Bearer {emu.api_secret}"}).json()["calls"]  # fmt: skip
    assert [(c["method"], c["revoke_token_ts"]) for c in calls] == [("RemoveParticipant", 1_900_000_000)]
    assert emu.calls[0].revoke_token_ts == 1_900_000_000
