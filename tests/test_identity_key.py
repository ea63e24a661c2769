"""The identity key hook (issue 24): bans compared by a host-chosen key, LiveKit called by identity.

With the documented NFKC + casefold + strip example registered (the code block of
``docs/security.md``, run as it is) and ``mallory`` banned, look-alike identities are refused
tokens and removed by the webhook and the reconciler; LiveKit is always asked to remove the
real identity. Without a hook, identities match exactly, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from flask_livekit_moderation import LiveKitModeration, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import Host, point_webhooks, settle
from tests.helpers import ROOT, TOKEN_A

#: Upper case, a trailing space, a zero-width space, fullwidth letters, capitals with a joiner.
LOOK_ALIKES = [
    "Mallory",
    "mallory ",
    "mallory\u200b",
    "\uff4d\uff41\uff4c\uff4c\uff4f\uff52\uff59",
    "MALLORY\u200d",
]


def documented_example(moderation: LiveKitModeration) -> Callable[[str], str]:
    """Run the identity-key example of docs/security.md against ``moderation``; its function."""
    text = (ROOT / "docs" / "security.md").read_text()
    (code,) = re.findall(r"```python\n(# identity-key example.*?)```", text, re.S)
    namespace: dict[str, Any] = {"moderation": moderation}
    exec(compile(code, "docs/security.md", "exec"), namespace)
    folded: Callable[[str], str] = namespace["folded"]
    assert moderation.identity_key_function is folded
    return folded


@pytest.fixture
def room(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room("standup", metadata=room_metadata("tenant-a"))
    return livekit_emulator


def test_the_documented_key_is_what_the_issue_asks(hosts: Callable[..., Host]) -> None:
    folded = documented_example(hosts().moderation)
    assert {folded(identity) for identity in LOOK_ALIKES} == {"mallory"}
    assert all(folded(folded(identity)) == folded(identity) for identity in [*LOOK_ALIKES, "Ǆ ﬁ\u00adx"])
    assert folded("mallory2") != "mallory"


def test_look_alikes_of_a_banned_identity_get_no_token(
    hosts: Callable[..., Host], room: LiveKitEmulator
) -> None:
    host = hosts()
    documented_example(host.moderation)
    assert host.ban("standup", "mallory", token=TOKEN_A).status_code == 201

    for identity in [*LOOK_ALIKES, "mallory"]:
        refused = host.token("standup", identity)
        assert refused.status_code == 403 and refused.json()["code"] == "PARTICIPANT_BANNED", identity
    assert host.token("standup", "mallory2").status_code == 200

    # The listing shows the key the ban is kept under; lifting by any look-alike lifts it.
    listed = host.bans("standup", token=TOKEN_A).json()["bans"]
    assert [ban["participant_identity"] for ban in listed] == ["mallory"]
    assert host.lift("standup", "ＭＡＬＬＯＲＹ", token=TOKEN_A).status_code == 200
    assert host.token("standup", "Mallory").status_code == 200


def test_the_webhook_removes_look_alikes_by_their_real_identity(
    hosts: Callable[..., Host], room: LiveKitEmulator
) -> None:
    host = hosts()
    documented_example(host.moderation)
    point_webhooks(room, host)
    assert host.ban("standup", "mallory", token=TOKEN_A).status_code == 201
    room.join("standup", "bob", tracks=[])

    for identity in LOOK_ALIKES:
        room.clear_calls()
        room.join("standup", identity, tracks=[])
        settle(room)
        assert room.participant("standup", identity) is None, identity
        removals = [c.request for c in room.calls if c.method == "RemoveParticipant"]
        assert [r.identity for r in removals] == [identity]  # type: ignore[union-attr]
    assert room.participant("standup", "bob") is not None
    removed = host.signalled("banned_participant_removed")
    assert [r["participant_identity"] for r in removed] == LOOK_ALIKES


def test_the_reconciler_removes_look_alikes_the_webhook_missed(
    hosts: Callable[..., Host], room: LiveKitEmulator
) -> None:
    host = hosts(LIVEKIT_MODERATION_RECONCILE_INTERVAL=0)
    documented_example(host.moderation)
    # No webhook URL: only the reconciler can find them.
    for identity in [*LOOK_ALIKES, "bob"]:
        room.join("standup", identity, tracks=[])
    # Banned by the moderator under a look-alike: kept under the key, LiveKit asked for "Mallory".
    answer = host.ban("standup", "Mallory", token=TOKEN_A)
    assert answer.status_code == 201 and answer.json()["participant_identity"] == "Mallory"
    assert answer.json()["removed"] is True

    found = host.moderation.reconcile()
    assert sorted(r.participant_identity for r in found.removed) == sorted(LOOK_ALIKES[1:])
    assert [p.identity for p in room.participants("standup")] == ["bob"]


def test_by_default_identities_match_exactly(hosts: Callable[..., Host], room: LiveKitEmulator) -> None:
    host = hosts()
    point_webhooks(room, host)
    assert host.ban("standup", "mallory", token=TOKEN_A).status_code == 201
    assert host.token("standup", "mallory").status_code == 403
    for identity in LOOK_ALIKES:
        assert host.token("standup", identity).status_code == 200, identity
        room.join("standup", identity, tracks=[])
    settle(room)
    assert sorted(p.identity for p in room.participants("standup")) == sorted(LOOK_ALIKES)
    assert host.moderation.reconcile().removed == []
    assert host.lift("standup", "Mallory", token=TOKEN_A).status_code == 404


def test_an_identity_with_an_empty_key_cannot_be_banned(
    hosts: Callable[..., Host], room: LiveKitEmulator
) -> None:
    host = hosts()
    documented_example(host.moderation)
    answer = host.ban("standup", "\u200b \u200d", token=TOKEN_A)
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID_REQUEST"
    assert room.call_names() == []  # refused before LiveKit is asked anything
    assert host.bans("standup", token=TOKEN_A).json()["bans"] == []
