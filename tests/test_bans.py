"""Bans over real HTTP: the routes, LiveKit's webhooks removing banned joiners, the token helper.

The host app is served by a threaded werkzeug server; the LiveKit stand-in sends its
LiveKit-signed webhooks to it. Each test asserts the HTTP answers, what the stand-in saw
(its RoomService calls, who is in the room) and the signals sent.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from livekit.api import TokenVerifier
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation import (
    ModerationError,
    ParticipantBanned,
    room_metadata,
)
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import (
    BANS,
    WEBHOOK,
    WEBHOOK_JSON,
    Host,
    joined,
    point_webhooks,
    rejoin,
    settle,
    signed,
    utc,
)
from tests.helpers import MASKED_404, MASKED_ROOM_404, TOKEN_A, TOKEN_B

# -- the end-to-end ---------------------------------------------------------------


def test_a_ban_sticks_until_it_expires(hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator) -> None:
    emu = livekit_emulator
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("standup", metadata=room_metadata("tenant-a"))
    emu.join("standup", "troll", tracks=[])
    settle(emu)
    emu.clear_calls()

    answer = host.ban("standup", "troll", seconds=2, token=TOKEN_A, reason="spam")
    now = datetime.now(timezone.utc)

    assert answer.status_code == 201
    body = answer.json()
    expires = utc(body.pop("expires_at"))
    assert body == {
        "room_name": "standup",
        "participant_identity": "troll",
        "reason": "spam",
        "removed": True,
    }
    assert timedelta(seconds=1.5) < expires - now <= timedelta(seconds=2)
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]
    assert emu.participant("standup", "troll") is None
    settle(emu)  # participant_left reaches the app: nothing to do
    emu.clear_calls()

    # They rejoin with the token they still hold: LiveKit's webhook makes the app remove them,
    # with no request from the host.
    rejoin(emu, "standup", "troll", tracks=[])
    settle(emu)
    assert emu.participant("standup", "troll") is None
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]
    (removed,) = host.signalled("banned_participant_removed")
    assert removed["room_owner"] == "tenant-a" and removed["participant_identity"] == "troll"
    assert removed["reason"] == "spam" and removed["event_id"].startswith("EV_")
    (finished,) = [f for f in host.signalled("moderation_finished") if f["action"] == "enforce_ban"]
    assert (finished["auth_id"], finished["outcome"], finished["status"]) == ("tenant-a", "removed", 200)
    assert finished["livekit_calls"] == ["ListRooms", "RemoveParticipant"]
    # The host's token endpoint refuses them.
    refused = host.token("standup", "troll")
    assert refused.status_code == 403 and refused.json()["code"] == "PARTICIPANT_BANNED"

    # After the expiry they may come back, and stay.
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    emu.clear_calls()
    emu.join("standup", "troll", tracks=[])
    settle(emu)
    assert emu.participant("standup", "troll") is not None
    assert emu.call_names() == []  # the webhook arrived; the store said "no ban"; no LiveKit call
    assert (
        emu.webhook_deliveries()[-1].event == "participant_joined" and emu.webhook_deliveries()[-1].delivered
    )
    issued = host.token("standup", "troll")
    assert issued.status_code == 200
    claims = TokenVerifier(emu.api_key, emu.api_secret).verify(issued.json()["token"])
    assert claims.video is not None
    assert (claims.identity, claims.name, claims.video.room, claims.video.room_join) == (
        "troll",
        "Guest",
        "standup",
        True,
    )
    assert claims.video.can_publish is False
    assert host.bans("standup", TOKEN_A).json()["bans"] == []


# -- tenancy ------------------------------------------------------------------------------


def test_tenant_b_can_neither_see_lift_nor_trigger_tenant_a_bans(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "troll", token=TOKEN_A).json()["removed"] is False
    settle(emu)
    emu.clear_calls()

    listed = host.bans("r", TOKEN_B)
    lifted = host.lift("r", "troll", TOKEN_B)
    banned = host.ban("r", "someone", token=TOKEN_B)
    for answer in (lifted, banned):
        assert answer.status_code == 404 and answer.json() == MASKED_404
    # The listing is about the room: its refusal is worded for the room.
    assert listed.status_code == 404 and listed.json() == MASKED_ROOM_404
    assert lifted.content == banned.content == host.lift("r", "nobody", TOKEN_A).content
    # B's refused listing asked LiveKit whose room it is; the lift read only B's own bans.
    assert emu.call_names() == ["ListRooms", "ListRooms"]
    # A room that is not B's reads exactly like a room that does not exist.
    assert listed.content == host.bans("nowhere", TOKEN_B).content
    assert [b["participant_identity"] for b in host.bans("r", TOKEN_A).json()["bans"]] == ["troll"]

    # The room closes; tenant B creates a room of the same name, and troll joins it.
    emu.remove_room("r")
    emu.add_room("r", metadata=room_metadata("tenant-b"))
    settle(emu)
    emu.clear_calls()
    emu.join("r", "troll", tracks=[])
    settle(emu)
    assert emu.participant("r", "troll") is not None  # A's ban is not B's
    assert emu.call_names() == []
    assert host.bans("r", TOKEN_B).json() == {"room_name": "r", "bans": [], "next_cursor": None}
    # A's ban is kept (it outlives A's room) and A still sees it; B's token route lets troll in.
    assert [b["room_owner"] for b in host.bans("r", TOKEN_A).json()["bans"]] == ["tenant-a"]
    assert host.token("r", "troll").status_code == 200
    assert host.token("r", "troll", owner="tenant-a").status_code == 403


def test_a_replayed_event_of_a_room_that_changed_hands_removes_nobody(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    old = joined(emu, "r", "troll")  # what LiveKit signed while the room was A's
    assert host.ban("r", "troll", token=TOKEN_A).json()["removed"] is True
    emu.remove_room("r")
    emu.add_room("r", metadata=room_metadata("tenant-b"))
    rejoin(emu, "r", "troll", tracks=[])
    emu.clear_calls()

    with caplog.at_level(logging.WARNING, logger="flask_livekit_moderation"):
        body, headers = signed(emu, old)
        answer = host.request("POST", WEBHOOK, data=body, headers=headers)

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "received",
        "event": "participant_joined",
        "id": old.id,
        "removed": False,
    }
    assert emu.participant("r", "troll") is not None
    assert emu.call_names() == ["ListRooms"]  # the room is B's now: no RemoveParticipant
    assert "no longer that owner's" in caplog.text
    finished = host.signalled("moderation_finished")[-1]
    assert (finished["action"], finished["outcome"], finished["auth_id"]) == (
        "enforce_ban",
        "room_changed",
        "tenant-a",
    )
    assert host.signalled("banned_participant_removed") == []


def test_forged_unsigned_and_tampered_webhooks_do_nothing(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    assert host.ban("r", "troll", token=TOKEN_A).status_code == 201
    rejoin(emu, "r", "troll", tracks=[])  # no webhook URL yet: nobody removes them
    event = joined(emu, "r", "troll")
    body, good = signed(emu, event)
    tampered = body.replace(b'"troll"', b'"trolx"')
    attempts: dict[str, tuple[bytes, dict[str, str]]] = {
        "unsigned": (body, {"Content-Type": WEBHOOK_JSON}),
        "wrong secret": signed(emu, event, secret="not-the-secret-0123456789abcdefghij"),
        "wrong key": signed(emu, event, key="APIsomeoneelse"),
        "Bearer prefix": (body, {**good, "Authorization": "Bearer " + good["Authorization"]}),
        "no sha256 claim": signed(emu, event, sha256=""),
        "hash of another body": signed(emu, event, sha256=base64.b64encode(b"x" * 32).decode()),
        "tampered body": (tampered, good),
        "expired": signed(emu, event, ttl=timedelta(minutes=-3)),
        "not utf-8": signed(emu, body + b"\xff"),
        "not a token": (body, {**good, "Authorization": "garbage"}),
    }
    emu.clear_calls()
    for name, (data, headers) in attempts.items():
        answer = host.request("POST", WEBHOOK, data=data, headers=headers)
        assert answer.status_code == 401, name
        assert answer.json() == {
            "error": "The webhook is not signed by this server's LiveKit API key and secret.",
            "code": "WEBHOOK_UNAUTHORIZED",
        }, name
    as_json = host.request("POST", WEBHOOK, data=body, headers={**good, "Content-Type": "application/json"})
    form = host.request("POST", WEBHOOK, data=body, headers={**good, "Content-Type": "text/plain"})
    huge = host.request("POST", WEBHOOK, *(), data=signed(emu, b" " * (256 * 1024 + 1))[0], headers=good)
    huge_signed = signed(emu, b"{" + b" " * (256 * 1024) + b"}")
    huge2 = host.request("POST", WEBHOOK, data=huge_signed[0], headers=huge_signed[1])
    garbage = signed(emu, b'{"event": 42}')
    not_an_event = host.request("POST", WEBHOOK, data=garbage[0], headers=garbage[1])
    assert (as_json.status_code, form.status_code) == (415, 415)
    assert as_json.json()["code"] == "UNSUPPORTED_MEDIA_TYPE" and WEBHOOK_JSON in as_json.json()["error"]
    assert (huge.status_code, huge2.status_code) == (413, 413) and huge2.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert (not_an_event.status_code, not_an_event.json()["code"]) == (400, "INVALID_REQUEST")
    # None of them did anything.
    assert emu.calls == [] and emu.participant("r", "troll") is not None
    assert host.signalled("livekit_webhook_received") == []
    assert [f["action"] for f in host.signalled("moderation_finished")] == ["ban"]

    # The genuine delivery removes them; delivered again (LiveKit retries), it does nothing.
    first = host.request("POST", WEBHOOK, data=body, headers=good)
    again = host.request("POST", WEBHOOK, data=body, headers=good)
    assert first.json()["removed"] is True and again.json()["removed"] is False
    assert (first.status_code, again.status_code) == (200, 200)
    assert emu.participant("r", "troll") is None
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]
    assert len(host.signalled("banned_participant_removed")) == 1
    assert [s["removed"] for s in host.signalled("livekit_webhook_received")] == [True, False]


def test_a_webhook_signed_for_another_livekit_does_nothing(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    # Another deployment's LiveKit (its own key and secret) sends to this app's URL.
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    host.ban("r", "troll", token=TOKEN_A)
    rejoin(emu, "r", "troll", tracks=[])
    emu.clear_calls()
    with LiveKitEmulator() as other:
        other.add_room("r", metadata=room_metadata("tenant-a"))
        other.join("r", "troll", tracks=[])
        body, headers = signed(other, joined(other, "r", "troll"))
        answer = host.request("POST", WEBHOOK, data=body, headers=headers)
    assert answer.status_code == 401 and emu.calls == [] and emu.participant("r", "troll") is not None


# -- the routes ---------------------------------------------------------------------------


def test_ban_routes(hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))

    for bad in ({"duration_seconds": 0}, {"duration_seconds": 31_536_001}, {"duration_seconds": "60"},
                {"duration_seconds": True}, {"duration_seconds": 1.5}, {"reason": "x" * 513},
                {"duration_seconds": None}):  # fmt: skip
        answer = host.ban("r", "troll", token=TOKEN_A, **bad)
        assert answer.status_code == 400 and answer.json()["code"] == "INVALID_REQUEST", bad
        assert set(answer.json()["details"]) == set(bad), bad
    missing = host.request("POST", BANS, TOKEN_A, json={"room_name": "r", "participant_identity": "x"})
    assert missing.json()["details"] == {"duration_seconds": ["Missing data for required field."]}
    text = host.request("POST", BANS, TOKEN_A, data="{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert host.ban("r", "troll", token=None).status_code == 401
    assert emu.calls == []

    # Absent participant: recorded, removed false; a whole year and 512 characters are fine.
    first = host.ban("r", "troll", seconds=31_536_000, token=TOKEN_A, reason="r" * 512)
    assert first.status_code == 201 and first.json()["removed"] is False
    assert emu.call_names() == ["ListRooms", "RemoveParticipant"]
    # Banning again replaces the expiry and the reason.
    second = host.ban("r", "troll", seconds=60, token=TOKEN_A)
    assert second.json()["reason"] is None
    (listed,) = host.bans("r", TOKEN_A).json()["bans"]
    assert listed["expires_at"] == second.json()["expires_at"] and listed["reason"] is None
    assert listed["room_owner"] == "tenant-a" and utc(listed["banned_at"]) < utc(listed["expires_at"])
    host.ban("r", "flash", seconds=1, token=TOKEN_A)
    assert [b["participant_identity"] for b in host.bans("r", TOKEN_A).json()["bans"]] == ["flash", "troll"]
    time.sleep(1.05)
    assert [b["participant_identity"] for b in host.bans("r", TOKEN_A).json()["bans"]] == ["troll"]

    # A room that is not running cannot be banned from; its bans are still listed and lifted.
    emu.clear_calls()
    assert host.ban("gone", "troll", token=TOKEN_A).json() == MASKED_404
    assert emu.call_names() == ["ListRooms"]
    emu.remove_room("r")
    assert [b["participant_identity"] for b in host.bans("r", TOKEN_A).json()["bans"]] == ["troll"]
    lifted = host.lift("r", "troll", TOKEN_A)
    assert lifted.status_code == 200
    assert lifted.json() == {"status": "lifted", "room_name": "r", "participant_identity": "troll"}
    assert host.lift("r", "troll", TOKEN_A).json() == MASKED_404
    assert host.lift("r", "flash", TOKEN_A).json() == MASKED_404  # expired: nothing to lift
    assert host.bans("r", TOKEN_A).json() == MASKED_ROOM_404  # no bans left and no such room


def test_callers_for_all_rooms_and_rooms_with_no_owner(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    shared = f"sqlite:///{tmp_path}/shared.sqlite3"
    admin = hosts(LIVEKIT_MODERATION_AUTH_REQUIRED=False, LIVEKIT_MODERATION_BAN_STORE=shared)
    tenants = hosts(LIVEKIT_MODERATION_BAN_STORE=shared)
    point_webhooks(emu, admin)
    emu.add_room("lobby")  # no owner: only callers for all rooms reach it
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("lobby", "troll", tracks=[])
    settle(emu)

    lobby = admin.ban("lobby", "troll")
    assert lobby.status_code == 201 and lobby.json()["removed"] is True
    assert tenants.ban("lobby", "x", token=TOKEN_A).json() == MASKED_404
    settle(emu)
    rejoin(emu, "lobby", "troll", tracks=[])
    settle(emu)
    assert emu.participant("lobby", "troll") is None  # enforced for a room with no owner too
    (listed,) = admin.bans("lobby").json()["bans"]
    assert listed["room_owner"] is None

    # A ban made by a caller for all rooms belongs to the room's owner: tenant A sees it.
    admin.ban("r", "troll")
    assert [b["room_owner"] for b in tenants.bans("r", TOKEN_A).json()["bans"]] == ["tenant-a"]
    # The room changes hands; B bans troll too. The admin sees and lifts both owners' bans.
    emu.remove_room("r")
    emu.add_room("r", metadata=room_metadata("tenant-b"))
    tenants.ban("r", "troll", token=TOKEN_B)
    assert [b["room_owner"] for b in admin.bans("r").json()["bans"]] == ["tenant-a", "tenant-b"]
    assert admin.lift("r", "troll").status_code == 200
    assert [s["room_owner"] for s in admin.signalled("ban_lifted")] == ["tenant-a", "tenant-b"]
    assert tenants.bans("r", TOKEN_A).json() == MASKED_ROOM_404
    assert tenants.bans("r", TOKEN_B).json() == {"room_name": "r", "bans": [], "next_cursor": None}


def test_signals_and_audit_lines(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = livekit_emulator
    host = hosts()
    point_webhooks(emu, host)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    settle(emu)
    with caplog.at_level(logging.INFO, logger="flask_livekit_moderation"):
        host.ban("r", "troll", seconds=60, token=TOKEN_A, reason="spam")
        settle(emu)
        rejoin(emu, "r", "troll", tracks=[])
        settle(emu)
        host.bans("r", TOKEN_A)
        host.lift("r", "troll", TOKEN_A)
        host.lift("r", "troll", TOKEN_B)

    (banned,) = host.signalled("participant_banned")
    expires = banned.pop("expires_at")
    assert expires.tzinfo is not None and expires > datetime.now(timezone.utc)
    assert banned == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",
        "room_name": "r",
        "participant_identity": "troll",
        "room_owner": "tenant-a",
        "reason": "spam",
        "removed": True,
        "outcome": "banned",
    }
    (lifted,) = host.signalled("ban_lifted")
    assert lifted == {
        "auth_id": "tenant-a",
        "actor": "tenant-a",
        "room_name": "r",
        "participant_identity": "troll",
        "room_owner": "tenant-a",
        "outcome": "lifted",
    }
    (refused,) = host.signalled("moderation_refused")
    assert (refused["action"], refused["auth_id"], refused["outcome"]) == (
        "lift_ban",
        "tenant-b",
        "PARTICIPANT_NOT_FOUND",
    )
    finished = [
        (f["action"], f["auth_id"], f["outcome"], f["status"]) for f in host.signalled("moderation_finished")
    ]
    assert finished == [
        ("ban", "tenant-a", "banned", 201),
        ("enforce_ban", "tenant-a", "removed", 200),
        ("list_bans", "tenant-a", "listed_bans", 200),
        ("lift_ban", "tenant-a", "lifted", 200),
        ("lift_ban", "tenant-b", "PARTICIPANT_NOT_FOUND", 404),
    ]
    # Every verified webhook, and only those, is signalled: the joins, the removals' departures.
    events = [
        (s["event"], s["participant_identity"], s["removed"])
        for s in host.signalled("livekit_webhook_received")
    ]
    assert events == [
        ("room_started", None, False),
        ("participant_joined", "troll", False),
        ("participant_left", "troll", False),
        ("participant_joined", "troll", True),
        ("participant_left", "troll", False),
    ]
    assert all(
        isinstance(s["webhook_event"], WebhookEvent) for s in host.signalled("livekit_webhook_received")
    )
    audit = [r.getMessage() for r in caplog.records if r.getMessage().startswith("livekit moderation")]
    assert [line.split()[2] for line in audit] == [
        "action=ban",
        "action=enforce_ban",
        "action=list_bans",
        "action=lift_ban",
        "action=lift_ban",
    ]
    assert "livekit_calls=ListRooms,RemoveParticipant" in audit[1] and "auth_id='tenant-a'" in audit[1]


# -- failures -----------------------------------------------------------------------------


def test_an_unreachable_store_refuses_everything_and_removes_nobody(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Path
) -> None:
    emu = livekit_emulator
    (tmp_path / "a-file").write_text("")
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=f"sqlite:///{tmp_path}/a-file/bans.sqlite3")
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.join("r", "troll", tracks=[])
    emu.clear_calls()
    body, headers = signed(emu, joined(emu, "r", "troll"))
    answers = [
        host.ban("r", "troll", token=TOKEN_A),
        host.bans("r", TOKEN_A),
        host.lift("r", "troll", TOKEN_A),
        host.request("POST", WEBHOOK, data=body, headers=headers),
        host.token("r", "troll", owner="tenant-a"),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()["code"]) == (503, "BAN_STORE_UNAVAILABLE")
        assert answer.headers["Retry-After"] == "1"
    assert emu.call_names() == ["ListRooms"]  # the ban's room check; never a removal
    assert emu.participant("r", "troll") is not None


def test_livekit_failing_during_enforcement_makes_livekit_deliver_again(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    host.ban("r", "troll", token=TOKEN_A)
    point_webhooks(emu, host)
    emu.fail_next("RemoveParticipant", code="unavailable")
    emu.join("r", "troll", tracks=[])
    settle(emu)
    delivery = [d for d in emu.webhook_deliveries() if d.event == "participant_joined"][-1]
    assert (delivery.attempts, delivery.status, delivery.delivered) == (2, 200, True)
    assert emu.participant("r", "troll") is None
    outcomes = [(f["outcome"], f["status"]) for f in host.signalled("moderation_finished")][-2:]
    assert outcomes == [("LIVEKIT_UNAVAILABLE", 503), ("removed", 200)]


def test_participant_token_and_active_ban(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    emu = livekit_emulator
    host = hosts()
    app, moderation = host.served.app, host.moderation
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    host.ban("r", "troll", token=TOKEN_A, reason="spam")
    emu.clear_calls()
    with app.app_context():
        found = moderation.active_ban("r", "troll")
        assert found is not None and (found.owner, found.reason) == ("tenant-a", "spam")
        assert emu.call_names() == ["ListRooms"]  # the owner, from LiveKit
        assert moderation.active_ban("r", "troll", owner="tenant-a") == found
        assert moderation.active_ban("r", "troll", owner="tenant-b") is None
        assert emu.call_names() == ["ListRooms"]  # owner given: the store only
        with pytest.raises(ParticipantBanned) as caught:
            moderation.participant_token("r", "troll")
        assert caught.value.ban == found and caught.value.status == 403
        assert moderation.active_ban("not-running", "troll") is None  # no owner: rooms without one
        token = moderation.participant_token("r", "alice", ttl_seconds=60, can_subscribe=False)
        claims = TokenVerifier(emu.api_key, emu.api_secret).verify(token)
        assert claims.video is not None
        assert claims.identity == "alice" and claims.video.room == "r" and claims.video.can_subscribe is False
        with pytest.raises(ValueError):
            moderation.participant_token("r", "alice", ttl_seconds=86_401)
        with pytest.raises(TypeError):
            moderation.participant_token("r", "alice", room="other")
        emu.fail_next("ListRooms", code="unavailable")
        with pytest.raises(ModerationError) as down:
            moderation.active_ban("r", "troll")  # LiveKit down: an error, never "no ban"
        assert down.value.code == "LIVEKIT_UNAVAILABLE"
