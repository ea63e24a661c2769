"""Demo data for ``python -m example_app``: two tenants, their rooms, and curl commands.

The rooms are created the way a host app would create its own: each tenant's room gets
metadata built with :func:`flask_livekit_moderation.room_metadata`, so the extension's
access check lets only that tenant's token (or signed-in moderator) moderate it.

:class:`Rejoiner` plays the banned participants' own apps, which keep reconnecting;
:class:`Knocker` plays guests knocking on the locked demo room (:data:`LOCKED_ROOM`).
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Flask
from livekit.protocol.models import TrackSource

from flask_livekit_moderation import BanStore, LiveKitModeration, ModerationError, room_metadata, room_owner
from flask_livekit_moderation.lobby import lobby_store
from flask_livekit_moderation.testing import LiveKitEmulator

logger = logging.getLogger("example_app.demo")

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

#: Seconds between a banned participant's attempts to get back in (see :class:`Rejoiner`).
REJOIN_INTERVAL = 6.0
#: Seconds the demo's stand-in holds each webhook back. A real LiveKit lists a participant who
#: connects before it sends their ``participant_joined`` (once their connection is up, usually
#: well under a second); the demo makes that window longer than the console's 2-second
#: refresh, so a moderator sees a banned participant's rejoin before the webhook removes them.
WEBHOOK_DELAY = 2.5

#: The demo room that starts locked, and the guests who knock on it (identity, name).
LOCKED_ROOM = "globex-review"
DEMO_GUESTS: tuple[tuple[str, str], ...] = (("guest-hana", "Hana"), ("guest-omar", "Omar"))
#: Seconds between the demo guests' knocks.
KNOCK_INTERVAL = 4.0

_MIC = ("audio", "microphone", "microphone")
_CAMERA = ("video", "camera", "camera")
_SCREEN = ("video", "screen_share", "screen")
_BY_SOURCE = {"microphone": _MIC, "camera": _CAMERA, "screen_share": _SCREEN}


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


class Rejoiner:
    """The apps of the demo rooms' banned participants: they keep coming back.

    Removing someone does not revoke their LiveKit token, so a banned person's app reconnects.
    Every :attr:`interval` seconds, each identity banned from a demo room who is not in it
    joins again (``emulator.join``, with the tracks they were seeded with). The stand-in then
    sends ``participant_joined`` to the app's ``POST /livekit/webhook``, and the extension
    removes them again. Once their ban is lifted (or ends) their next attempt succeeds and
    they stay. Participants removed without a ban do not come back.

    The ban store is read only to decide who plays a banned person's app; the console learns
    of it all through the moderation routes, like any moderator.
    """

    def __init__(
        self,
        emulator: LiveKitEmulator,
        bans: BanStore,
        rooms: Sequence[DemoRoom],
        interval: float = REJOIN_INTERVAL,
    ) -> None:
        self.emulator = emulator
        self.bans = bans
        self.rooms = list(rooms)
        self._interval = float(interval)
        self._wake = threading.Condition()
        #: Held by an attempt: pause() and forget() wait for the one under way.
        self._attempting = threading.Lock()
        #: (room, identity) of those trying to get back in: banned now, or until recently.
        self._trying: set[tuple[str, str]] = set()
        self._paused = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        """Seconds between attempts; setting it restarts the wait."""
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the rejoin interval must be > 0")
        with self._wake:
            self._interval = float(seconds)
            self._wake.notify_all()

    def start(self) -> Rejoiner:
        """Attempt every :attr:`interval` seconds on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="example_app:rejoiner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (an attempt under way finishes first)."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def pause(self) -> None:
        """No more attempts until :meth:`resume`; returns once one under way is over."""
        self._paused = True
        with self._attempting:
            pass

    def resume(self) -> None:
        """Attempt again, the next one a full interval from now."""
        with self._wake:
            self._paused = False
            self._wake.notify_all()

    def forget(self) -> None:
        """Forget who was trying to get back in (for a demo reseeded from scratch)."""
        with self._attempting:
            self._trying.clear()

    def attempt(self) -> list[tuple[str, str]]:
        """One round: who is banned and away comes back; returns the (room, identity) who joined."""
        with self._attempting:
            return self._round()

    def _round(self) -> list[tuple[str, str]]:
        joined: list[tuple[str, str]] = []
        for room in self.rooms:
            try:
                joined += self._attempt_room(room)
            except Exception as exc:  # noqa: BLE001 - the demo goes on (a closed room, a store error)
                logger.warning("demo: rejoining %r failed (%s)", room.name, type(exc).__name__)
        return joined

    def _attempt_room(self, room: DemoRoom) -> list[tuple[str, str]]:
        live = self.emulator.room(room.name)
        if live is None:
            return []
        owner = room_owner(live.metadata) or ""
        banned = {ban.participant_identity for ban in self.bans.list_bans(owner, room.name)}
        present = {person.identity for person in self.emulator.participants(room.name)}
        self._trying.update((room.name, identity) for identity in banned - present)
        joined = []
        for key in sorted(key for key in self._trying if key[0] == room.name):
            identity = key[1]
            if identity not in banned:
                self._trying.discard(key)  # let in: this attempt is the last
            if identity in present:
                continue  # still in (the webhook is on its way), or back already
            sources = room.tracks.get(identity)
            tracks = [_BY_SOURCE[s] for s in sources if s in _BY_SOURCE] if sources else [_MIC, _CAMERA]
            name = identity.capitalize() if sources else identity
            self.emulator.join(room.name, identity, name=name, tracks=tracks)
            state = "banned: LiveKit's webhook will have them removed" if identity in banned else "not banned"
            logger.info("demo: %r rejoins %r with their old token (%s)", identity, room.name, state)
            joined.append(key)
        return joined

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopped:
                    return
                woken = self._wake.wait(self._interval)
                if self._stopped:
                    return
                if woken:
                    continue  # a new interval, a resume: wait a full one
            with self._attempting:
                if not self._paused:  # checked under the lock pause() waits for
                    self._round()


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
        Curl(
            "The app's own OpenAPI document, with the extension's routes merged in:",
            _curl("GET", f"{base_url}/openapi.json", None),
        ),
    ]


def lock_demo_room(bans: BanStore, rooms: Sequence[DemoRoom]) -> None:
    """Lock :data:`LOCKED_ROOM` as a moderator's ``POST /livekit/room/lock`` would: whoever is
    in it now is admitted."""
    room = next(room for room in rooms if room.name == LOCKED_ROOM)
    lobby_store(bans).lock(room.owner or "", room.name, sorted(room.tracks))


class Knocker:
    """The demo guests' join pages: they knock on :data:`LOCKED_ROOM` every :attr:`interval`
    seconds (:meth:`~flask_livekit_moderation.LiveKitModeration.knock`, as the app's ``/join``
    does), and once a moderator admits one, they get a token from ``participant_token()`` and
    join the room with it. A denied guest stops knocking; an admitted one who is removed knocks
    again (a lock admits them still, unless denied since)."""

    def __init__(
        self,
        app: Flask,
        moderation: LiveKitModeration,
        emulator: LiveKitEmulator,
        guests: Sequence[tuple[str, str]] = DEMO_GUESTS,
        interval: float = KNOCK_INTERVAL,
        room: str = LOCKED_ROOM,
    ) -> None:
        self.app, self.moderation, self.emulator = app, moderation, emulator
        self.guests = list(guests)
        self.room = room
        self.interval = interval
        self.given_up: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Knocker:
        """Knock every :attr:`interval` seconds on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="example_app:knocker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def knock(self) -> list[tuple[str, str]]:
        """One round: each guest not in the room knocks; returns (identity, status) of each knock."""
        live = self.emulator.room(self.room)
        if live is None:
            return []
        owner = room_owner(live.metadata) or ""
        present = {person.identity for person in self.emulator.participants(self.room)}
        knocked: list[tuple[str, str]] = []
        with self.app.app_context():
            for identity, name in self.guests:
                if identity in present or identity in self.given_up:
                    continue
                admission = self.moderation.knock(self.room, identity, name=name, owner=owner)
                knocked.append((identity, admission.status))
                if admission.status == "denied":
                    self.given_up.add(identity)
                    logger.info("demo: %r was denied entry to %r and stops knocking", identity, self.room)
                elif admission.admitted:
                    token = self.moderation.participant_token(self.room, identity, name=name, owner=owner)
                    self.emulator.join(self.room, identity, name=name, tracks=[_MIC], token=token)
                    logger.info("demo: %r was admitted and joins %r", identity, self.room)
        return knocked

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.knock()
            except (ModerationError, KeyError, PermissionError) as exc:
                logger.warning("demo: knocking on %r failed (%s)", self.room, type(exc).__name__)
