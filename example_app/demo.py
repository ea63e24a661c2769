"""Demo data for ``python -m example_app``: two tenants, their rooms, and curl commands.

The rooms are created the way a host app would create its own: each tenant's room gets
metadata built with :func:`flask_livekit_moderation.room_metadata`, so the extension's
access check lets only that tenant's token (or signed-in moderator) moderate it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlencode

from livekit.protocol.models import TrackSource

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator

#: The demo's callers: each secret maps to the auth id whose rooms it may moderate.
DEMO_TENANTS: tuple[dict[str, str], ...] = (
    {"id": "acme", "secret": "demo-acme-secret"},
    {"id": "globex", "secret": "demo-globex-secret"},
)

#: The moderator console's demo sign-ins: tenant (auth id) -> password. Deliberately not
#: the API tokens above: a console session never needs, shows or sends a token.
DEMO_PASSWORDS: dict[str, str] = {
    "acme": "acme-moderator",
    "globex": "globex-moderator",
}

#: A room no tenant owns: with auth on, no demo token may moderate it.
UNOWNED_ROOM = "lobby"

#: Seconds a demo room lives on empty. LiveKit closes a room 20 s after its last participant
#: left (300 s after creation if nobody came); a real meeting room lives as long as the
#: meeting, so the demo keeps its rooms open while it runs, even once everyone was removed.
ROOM_LIFETIME = 7 * 24 * 3600.0

_MIC = ("audio", "microphone", "microphone")
_CAMERA = ("video", "camera", "camera")
_SCREEN = ("video", "screen_share", "screen")


@dataclass(frozen=True)
class DemoRoom:
    """A seeded room: its owner (``None`` = no ``auth_id``) and participants' track SIDs."""

    name: str
    owner: str | None
    metadata: str
    #: identity -> {"microphone": TR_..., "camera": TR_...}
    tracks: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Curl:
    """One ready-to-paste command and what it demonstrates."""

    comment: str
    command: str


def seed(emulator: LiveKitEmulator) -> list[DemoRoom]:
    """Create the demo rooms and their participants in ``emulator``.

    Rooms stay open for :data:`ROOM_LIFETIME` once empty, so removing everyone from a room
    leaves an empty room, as in a meeting that is still scheduled.
    """
    plain = [_MIC, _CAMERA]
    plan = [
        ("acme-standup", "acme", json.dumps({"topic": "Daily stand-up"}), {"alice": plain, "bob": plain}),
        (
            "acme-support",
            "acme",
            json.dumps({"topic": "Customer support"}),
            {"erin": [_MIC, _CAMERA, _SCREEN], "frank": [_MIC]},
        ),
        ("globex-review", "globex", "", {"carol": plain, "dave": plain}),
        (UNOWNED_ROOM, None, json.dumps({"topic": "Open to everyone"}), {"guest": plain}),
    ]
    rooms = []
    for name, owner, extra, people in plan:
        # room_metadata keeps the other keys ("topic") and adds the owner's auth_id.
        metadata = extra if owner is None else room_metadata(owner, extra)
        emulator.add_room(
            name, metadata=metadata, empty_timeout=ROOM_LIFETIME, departure_timeout=ROOM_LIFETIME
        )
        tracks: dict[str, dict[str, str]] = {}
        for identity, published in people.items():
            info = emulator.add_participant(name, identity, name=identity.capitalize(), tracks=published)
            tracks[identity] = {TrackSource.Name(t.source).lower(): t.sid for t in info.tracks}
        rooms.append(DemoRoom(name=name, owner=owner, metadata=metadata, tracks=tracks))
    return rooms


def _secret_of(auth_id: str) -> str:
    return next(t["secret"] for t in DEMO_TENANTS if t["id"] == auth_id)


def _curl(method: str, url: str, token: str | None, body: dict[str, object] | None = None) -> str:
    args = ["curl", "-s"]
    if method != "GET":
        args += ["-X", method]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    args.append(url)
    return " ".join(shlex.quote(arg) for arg in args)


def curl_commands(base_url: str, rooms: list[DemoRoom]) -> list[Curl]:
    """Commands that list, mute, unmute and remove in the seeded rooms, one line each."""
    acme = next(room for room in rooms if room.owner == "acme")
    globex = next(room for room in rooms if room.owner == "globex")
    token = _secret_of("acme")
    mic = acme.tracks["alice"]["microphone"]
    mute_body = {"room_name": acme.name, "participant_identity": "alice", "track_sid": mic, "muted": True}
    livekit = base_url + "/livekit"
    return [
        Curl(
            f"List who is in {acme.name} and their track SIDs (tenant acme):",
            _curl("GET", f"{livekit}/participants?{urlencode({'room_name': acme.name})}", token),
        ),
        Curl(
            "Mute alice's microphone:",
            _curl("POST", f"{livekit}/participant/mute", token, mute_body),
        ),
        Curl(
            "Unmute it again (the built-in stand-in runs with remote unmute enabled):",
            _curl("POST", f"{livekit}/participant/mute", token, {**mute_body, "muted": False}),
        ),
        Curl(
            f"Remove bob from {acme.name}:",
            _curl(
                "DELETE",
                f"{livekit}/participant",
                token,
                {"room_name": acme.name, "participant_identity": "bob"},
            ),
        ),
        Curl(
            "Tenant globex lists its own room, token in the query string:",
            _curl(
                "GET",
                f"{livekit}/participants?"
                + urlencode({"room_name": globex.name, "api_key": _secret_of("globex")}),
                None,
            ),
        ),
        Curl(
            f"Tenant globex may not touch {acme.name}: the same 404 as a room that does not exist:",
            _curl(
                "GET",
                f"{livekit}/participants?{urlencode({'room_name': acme.name})}",
                _secret_of("globex"),
            ),
        ),
        Curl("The OpenAPI document (no token needed):", _curl("GET", f"{livekit}/openapi.json", None)),
    ]
