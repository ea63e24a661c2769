"""The reconciler: removes banned participants whom the webhook did not.

Enforcement must not depend on one event: LiveKit drops webhooks (a room's queue waits at most
30 s, 5 attempts), and the store or LiveKit may be down when one arrives. So every
``LIVEKIT_MODERATION_RECONCILE_INTERVAL`` seconds (default 30; 0: off) a pass looks at every
room with an active ban or a lock (:mod:`..lobby`): one ListRooms for the rooms running and their
owners, then, for each room whose current owner is the ban's or the lock's owner (the webhook's
tenancy rule: a ban or lock never applies to another owner's room of the same name),
ListParticipants and, when a banned participant is present, or one a locked room did not admit,
ListRooms again (still the same room?) and a RemoveParticipant (with the ban's or the lock's
``revoke_token_ts``) for each. With no active ban and no lock a pass makes no LiveKit call at
all. Its calls go through the enforcement lane, never a tenant's share.

In each process the reconciler is a daemon thread started by the first request the process
serves (after a gunicorn fork, never before, never at import); its first pass comes one
interval later. Processes sharing a store take turns through a lease kept in the store: only
its holder reconciles; the holder renews it on each pass, and when the holder stops (it
releases the lease) or dies (the lease expires after two intervals) another takes over within
three intervals. ``flask livekit-moderation reconcile`` runs a pass from the command line
(:mod:`.cli`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask
from livekit.api import TwirpError

from .. import audit, errors, signals
from ..access import room_owner
from ..client import RoomCalls
from ..errors import ModerationError
from ..lobby.model import Admission
from ..lobby.operations import lobby_identity
from ..lobby.store import lobby_store
from . import operations
from .base import BanStore
from .model import Ban
from .webhook import ENFORCE_ACTION, ENFORCE_LOCK_ACTION

if TYPE_CHECKING:
    from ..state import ModerationState

logger = logging.getLogger("flask_livekit_moderation")

#: The lease the processes sharing a store take turns with.
LEASE = "livekit-moderation-reconciler"
#: The lease lasts this many intervals: renewed every interval, so a dead holder is replaced
#: within one more.
LEASE_INTERVALS = 2.0
#: The outcome of a pass that ran to its end.
RECONCILED = "reconciled"


@dataclass
class Removal:
    """One banned participant a pass removed."""

    room_owner: str | None
    room_name: str
    participant_identity: str
    participant_sid: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "room_owner": self.room_owner,
            "room_name": self.room_name,
            "participant_identity": self.participant_identity,
            "participant_sid": self.participant_sid,
        }


@dataclass
class Pass:
    """What one reconciler pass found and did."""

    #: (owner, room) pairs with an active ban.
    rooms: int = 0
    #: Rooms whose participants were listed (running, and still the ban owner's).
    rooms_checked: int = 0
    removed: list[Removal] = field(default_factory=list)
    #: Participants removed from a locked room that had not admitted them.
    unadmitted: list[Removal] = field(default_factory=list)
    #: The LiveKit methods called, in order.
    livekit_calls: list[str] = field(default_factory=list)


async def _running_rooms(lk: RoomCalls) -> dict[str, tuple[str, str]]:
    """Every running room's owner as LiveKit names it now (``""``: none) and sid, by name (one ListRooms)."""
    try:
        rooms = await lk.list_rooms()
    except TwirpError:
        raise errors.LIST_FAILED() from None
    return {room.name: (room_owner(room.metadata) or "", room.sid) for room in rooms}


async def _remove_banned_present(
    lk: RoomCalls, state: ModerationState, owner: str, room_name: str, sid: str, locked: bool = False
) -> tuple[list[Removal], list[Removal]]:
    """ListParticipants of ``owner``'s room ``room_name`` (LiveKit's room ``sid``), then remove
    each participant with an active ban of ``owner`` there (looked up by the identity's key)
    and, in a ``locked`` room, each one the lobby did not admit; returns (banned removed,
    unadmitted removed).

    Before removing, the room is looked up again (ListRooms): it must still be the same room
    (``sid``), so a room closed and opened again by another owner since the pass's ListRooms is
    left alone, as the webhook leaves one (:func:`~.operations.enforce_ban`).
    """
    try:
        participants = await lk.list_participants(room_name)
    except TwirpError:
        raise errors.LIST_FAILED() from None
    lobby = lobby_store(state.bans)
    banned: list[tuple[Ban, str, str]] = []
    refused: list[tuple[Admission, str, str]] = []
    for participant in participants:
        key = state.identity_key(participant.identity)
        ban = await asyncio.to_thread(state.bans.get, owner, room_name, key)
        if ban is not None:
            banned.append((ban, participant.identity, participant.sid))
            continue
        if locked:
            admission = await asyncio.to_thread(
                lobby.admission, owner, room_name, lobby_identity(state, participant.identity)
            )
            if not admission.admitted:
                refused.append((admission, participant.identity, participant.sid))
    if not banned and not refused:
        return [], []
    try:
        room = await lk.find_room(room_name)
    except TwirpError:
        raise errors.LIST_FAILED() from None
    if room is None or room.sid != sid or (room_owner(room.metadata) or "") != owner:
        return [], []  # no longer the room the bans were checked against
    removed, unadmitted = [], []
    for ban, identity, participant_sid in banned:
        if await operations.remove_banned(lk, ban, room_name, identity):
            removed.append(Removal(ban.room_owner, room_name, identity, participant_sid))
    for admission, identity, participant_sid in refused:
        try:
            await lk.remove_participant(room_name, identity, revoke_token_ts=admission.revoke_token_ts)
        except TwirpError as exc:
            if exc.code == "not_found":
                continue
            raise errors.REMOVAL_FAILED() from None
        unadmitted.append(Removal(admission.room_owner, room_name, identity, participant_sid))
    return removed, unadmitted


def anything_to_enforce(bans: BanStore) -> bool:
    """Whether a pass has anything to do: an active ban, or a locked room (cheap reads)."""
    return bans.any_active() or lobby_store(bans).any_locked()


def reconcile(state: ModerationState, found: Pass | None = None) -> Pass:
    """One pass over ``state``'s store and LiveKit (see the module), noted in ``found``; raises
    the :class:`~..errors.ModerationError` that stopped it (store or LiveKit unavailable, ...),
    ``found`` then telling what was done before."""
    found = Pass() if found is None else found
    banned = state.bans.banned_rooms()
    locks = set(lobby_store(state.bans).locked_rooms())
    found.rooms = len(set(banned) | locks)
    if not banned and not locks:
        return found
    owners: dict[str, set[str]] = defaultdict(set)
    for owner, room_name in (*banned, *locks):
        owners[room_name].add(owner)

    def run(calls: RoomCalls, operation: Any, *args: Any) -> Any:
        try:
            return calls.run(operation, *args)
        finally:
            found.livekit_calls += calls.made

    running = run(RoomCalls(state.client, enforcement=True), _running_rooms)
    for room_name in sorted(owners):
        if room_name not in running:
            continue
        owner, sid = running[room_name]
        # Tenancy: a ban or lock holds only in its owner's room; another owner's room of that
        # name is not touched.
        if owner not in owners[room_name]:
            continue
        found.rooms_checked += 1
        calls = RoomCalls(state.client, enforcement=True)
        locked = (owner, room_name) in locks
        removed, unadmitted = run(calls, _remove_banned_present, state, owner, room_name, sid, locked)
        found.removed += removed
        found.unadmitted += unadmitted
    return found


def run_pass(state: ModerationState) -> Pass:
    """:func:`reconcile`, logged and signalled (``bans_reconciled``, and
    ``banned_participant_removed`` per removal); needs an app context. Re-raises its error."""
    started = time.perf_counter()
    done = Pass()
    outcome = RECONCILED
    try:
        return reconcile(state, done)
    except ModerationError as exc:
        outcome = exc.code
        logger.warning("ban reconciler: pass stopped: %s (%s)", exc.message, exc.code)
        raise
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        for removal in done.removed:
            logger.warning(
                "ban reconciler removed banned %r from %r (owner %r): no webhook had",
                removal.participant_identity,
                removal.room_name,
                removal.room_owner,
            )
            _audit(state, ENFORCE_ACTION, removal)
            signals.notify(
                signals.banned_participant_removed,
                room_owner=removal.room_owner,
                room_name=removal.room_name,
                participant_identity=removal.participant_identity,
                participant_sid=removal.participant_sid,
                event_id=None,
                expires_at=None,
                reason=None,
                source="reconciler",
                outcome="removed",
            )
        for removal in done.unadmitted:
            logger.warning(
                "ban reconciler removed %r from the locked room %r (owner %r): not admitted, no webhook had",
                removal.participant_identity,
                removal.room_name,
                removal.room_owner,
            )
            _audit(state, ENFORCE_LOCK_ACTION, removal)
            signals.notify(
                signals.unadmitted_participant_removed,
                room_owner=removal.room_owner,
                room_name=removal.room_name,
                participant_identity=removal.participant_identity,
                participant_sid=removal.participant_sid,
                event_id=None,
                source="reconciler",
                outcome="removed",
            )
        if done.removed or done.unadmitted or outcome != RECONCILED:
            logger.info(
                "ban reconciler: %d rooms with bans, %d checked, %d removed, livekit_calls=%s, %.1f ms",
                done.rooms,
                done.rooms_checked,
                len(done.removed),
                ",".join(done.livekit_calls) or "-",
                duration_ms,
            )
        signals.notify(
            signals.bans_reconciled,
            rooms=done.rooms,
            rooms_checked=done.rooms_checked,
            livekit_calls=list(done.livekit_calls),
            removed=[removal.as_dict() for removal in done.removed],
            unadmitted=[removal.as_dict() for removal in done.unadmitted],
            duration_ms=duration_ms,
            outcome=outcome,
        )


def _audit(state: ModerationState, action: str, removal: Removal) -> None:
    """The audit log's entry of one of the reconciler's removals (no actor: nobody asked)."""
    audit.record(
        state.audit_log,
        audit.Entry(
            id=audit.new_id(time.time()),
            owner=removal.room_owner or "",
            actor=None,
            action=action,
            room_name=removal.room_name,
            participant_identity=removal.participant_identity,
            details={"source": "reconciler", "participant_sid": removal.participant_sid},
            outcome="removed",
        ),
    )


def new_holder(kind: str) -> str:
    """A lease holder name unique to this process and call: host, pid, random."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Reconciler:
    """The reconciler of one extension instance on one app, in each process (see the module)."""

    def __init__(self, app: Flask, state: ModerationState) -> None:
        # Weak: the thread must not keep a dropped app (one per test) alive.
        self._app = weakref.ref(app)
        self.state = state
        self.interval = state.settings.reconcile_interval
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.holder = ""
        #: This process took the lease at least once (so it has one to give back).
        self._leased = False

    @property
    def lease_seconds(self) -> float:
        return self.interval * LEASE_INTERVALS

    def ensure_started(self) -> None:
        """Start this process's thread unless it runs (called on every request: one comparison)."""
        if self._pid == os.getpid() or not self.interval:
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child gets a holder name of its own: its parent's would share the lease.
            self._pid, self.holder, self._stop = os.getpid(), new_holder("app"), threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop,), name="livekit-moderation-reconciler", daemon=True
            )
            self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            app = self._app()
            if app is None:
                return
            with app.app_context():
                self.tick()
            del app

    def tick(self) -> Pass | None:
        """One pass if this process holds (or takes) the lease and a ban is active; in an app context."""
        try:
            if not anything_to_enforce(self.state.bans):
                return None  # nothing to do: no lease taken, no LiveKit call
            if self.state.bans.lease(LEASE, self.holder, self.lease_seconds) != self.holder:
                return None  # another process reconciles
            self._leased = True
            return run_pass(self.state)
        except ModerationError as exc:
            logger.warning(
                "ban reconciler: %s (%s); trying again in %gs", exc.message, exc.code, self.interval
            )
        except Exception:  # noqa: BLE001 - the thread must outlive a bug in one pass
            logger.exception("ban reconciler: the pass failed")
        return None

    def stop(self, release: bool = True, wait: bool = True) -> None:
        """Stop this process's thread and, with ``release``, give up the lease so another
        process takes over at its next pass. ``wait``: wait a little for a pass under way."""
        with self._lock:
            if self._pid != os.getpid():
                return
            self._stop.set()
            thread, self._thread, self._pid = self._thread, None, None
            leased, self._leased = self._leased, False
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(self.state.settings.timeout + 1)
        if release and leased:
            try:
                self.state.bans.release(LEASE, self.holder)
            except ModerationError:
                pass  # it expires by itself
