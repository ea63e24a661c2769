"""What is recorded of every moderation request once it is answered: a log line, signals, and
an entry of the audit log.

:func:`finish` runs at the end of :func:`~..pipeline.dispatch`, whatever the outcome: the log
line (for actions that reached LiveKit or a store), ``moderation_refused`` for refusals,
``moderation_finished`` for every request, and an entry of the audit log (:mod:`.store`, kept in
the ban store) for every moderation write of a known caller and every ban enforcement, whether
it succeeded, was refused or failed. Which requests are writes comes from the route table
(:attr:`~..routing.Route.writes`): a new write route is audited with no code of its own.
``views`` serves ``GET /livekit/audit``; ``model`` is the entry, ``store`` the logs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .. import errors, signals
from ..errors import ModerationError
from .model import Entry, new_id
from .store import AuditLog, Filter, open_audit_log

if TYPE_CHECKING:
    from ..pipeline import Call

__all__ = ["AuditLog", "Entry", "Filter", "finish", "new_id", "open_audit_log", "record"]

logger = logging.getLogger("flask_livekit_moderation")

#: Codes that mean "refused": sent as ``moderation_refused`` too.
REFUSALS = frozenset(
    {
        errors.MISSING_TOKEN.code,
        errors.UNAUTHORIZED.code,
        errors.FORBIDDEN.code,
        errors.INSUFFICIENT_SCOPE.code,
        errors.PARTICIPANT_NOT_FOUND.code,
        errors.ROOM_NOT_FOUND.code,
    }
)


def finish(call: Call) -> None:
    """Log and signal what ``call`` did (it is answered, or failed unexpectedly), and keep its
    entry of the audit log."""
    status = 500 if call.status is None else call.status  # None: an exception propagated
    duration_ms = round(((call.answered or call.started) - call.started) * 1000, 3)
    if call.enforcement:
        auth_id = call.owner
    else:
        # Never resolves: a request refused before its caller was asked (415) stays unasked.
        caller = call.caller or call.state.known_caller()
        auth_id = None if caller is None else caller.auth_id
    target = call.target
    actor = None if call.enforcement else call.actor
    livekit_calls = [] if call.calls is None else list(call.calls.made)
    fields: dict[str, Any] = {
        "action": call.action,
        "auth_id": auth_id,
        "actor": actor,
        "room_name": target.get("room_name"),
        "participant_identity": target.get("participant_identity"),
        "track_sid": target.get("track_sid"),
        "outcome": call.outcome,
        "livekit_calls": livekit_calls,
        "duration_ms": duration_ms,
    }
    if call.acted:
        # %r keeps caller-supplied names on one line (no log injection through newlines).
        logger.info(
            "livekit moderation action=%s auth_id=%r actor=%r room=%r identity=%r track=%r outcome=%s "
            "livekit_calls=%s",
            call.action,
            auth_id,
            actor,
            fields["room_name"],
            fields["participant_identity"],
            fields["track_sid"],
            call.outcome,
            ",".join(livekit_calls) or "-",
            extra={
                "moderation_action": call.action,
                "moderation_auth_id": auth_id,
                "moderation_actor": actor,
                "moderation_room": fields["room_name"],
                "moderation_identity": fields["participant_identity"],
                "moderation_track": fields["track_sid"],
                "moderation_outcome": call.outcome,
                "moderation_livekit_calls": livekit_calls,
                "moderation_duration_ms": duration_ms,
            },
        )
    if call.outcome in REFUSALS and signals.moderation_refused.receivers:
        signals.notify(
            signals.moderation_refused,
            auth_id=auth_id,
            actor=actor,
            action=call.action,
            room_name=fields["room_name"],
            participant_identity=fields["participant_identity"],
            track_sid=fields["track_sid"],
            muted=target.get("muted"),
            status=status,
            outcome=call.outcome,
        )
    if signals.moderation_finished.receivers:
        signals.notify(signals.moderation_finished, status=status, **fields)
    # An entry of the audit log: a ban enforcement, or a write of a caller who was known (a
    # request refused before its caller, 401 or 415, names nobody's log).
    audited = call.audited
    if audited is None:
        audited = call.enforcement or (call.route.writes and call.caller is not None)
    if call.state.audit_log is not None and audited:
        _write_entry(call, auth_id, actor, status)


def _write_entry(call: Call, auth_id: str | None, actor: str | None, status: int) -> None:
    target = call.target
    # The rest of the input and what the view reports: the room and the participant have
    # fields of their own.
    details = dict(target)
    details.pop("room_name", None)
    details.pop("participant_identity", None)
    details.update(call.details)
    entry = Entry(
        id=new_id(time.time()),
        owner=auth_id or "",
        actor=actor,
        action=str(call.action),
        room_name=target.get("room_name"),
        participant_identity=target.get("participant_identity"),
        details=details,
        outcome=str(call.outcome),
        status=status,
    )
    record(call.state.audit_log, entry)


def record(log: AuditLog | None, entry: Entry) -> bool:
    """Keep ``entry`` in ``log`` (queued, for the logs written in the background); whether it
    was taken. Never raises: the action is done and answered as it went. A store failure is
    tried once more, then logged at ERROR with the entry (so the log keeps what the store could
    not)."""
    if log is None:
        return False
    for attempt in (1, 2):
        try:
            log.add(entry)
            return True
        except ModerationError:
            if attempt == 2:
                break
        except Exception:  # noqa: BLE001 - a bug here must not turn a done action into a 500
            logger.exception("audit log: the entry could not be written: %r", entry)
            return False
    logger.error("audit log: the store is unavailable; entry lost: %r", entry)
    return False
