"""What is recorded of every moderation request once it is answered: a log line and signals.

:func:`finish` runs at the end of :func:`~.pipeline.dispatch`, whatever the outcome: the
audit log line (for actions that reached LiveKit or a store), ``moderation_refused`` for
refusals and ``moderation_finished`` for every request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import errors, signals

if TYPE_CHECKING:
    from .pipeline import Call

logger = logging.getLogger("flask_livekit_moderation")

#: Codes that mean "refused": sent as ``moderation_refused`` too.
REFUSALS = frozenset(
    {
        errors.MISSING_TOKEN.code,
        errors.UNAUTHORIZED.code,
        errors.FORBIDDEN.code,
        errors.PARTICIPANT_NOT_FOUND.code,
        errors.ROOM_NOT_FOUND.code,
    }
)


def finish(call: Call) -> None:
    """Log and signal what ``call`` did (it is answered, or failed unexpectedly)."""
    status = 500 if call.status is None else call.status  # None: an exception propagated
    duration_ms = round(((call.answered or call.started) - call.started) * 1000, 3)
    if call.enforcement:
        auth_id = call.owner
    else:
        # Never resolves: a request refused before its caller was asked (415) stays unasked.
        caller = call.caller or call.state.known_caller()
        auth_id = None if caller is None else caller.auth_id
    target = call.target
    livekit_calls = [] if call.calls is None else list(call.calls.made)
    fields: dict[str, Any] = {
        "action": call.action,
        "auth_id": auth_id,
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
            "livekit moderation action=%s auth_id=%r room=%r identity=%r track=%r outcome=%s "
            "livekit_calls=%s",
            call.action,
            auth_id,
            fields["room_name"],
            fields["participant_identity"],
            fields["track_sid"],
            call.outcome,
            ",".join(livekit_calls) or "-",
            extra={
                "moderation_action": call.action,
                "moderation_auth_id": auth_id,
                "moderation_room": fields["room_name"],
                "moderation_identity": fields["participant_identity"],
                "moderation_track": fields["track_sid"],
                "moderation_outcome": call.outcome,
                "moderation_livekit_calls": livekit_calls,
                "moderation_duration_ms": duration_ms,
            },
        )
    if call.outcome in REFUSALS:
        signals.notify(
            signals.moderation_refused,
            auth_id=auth_id,
            action=call.action,
            room_name=fields["room_name"],
            participant_identity=fields["participant_identity"],
            track_sid=fields["track_sid"],
            muted=target.get("muted"),
            status=status,
            outcome=call.outcome,
        )
    signals.notify(signals.moderation_finished, status=status, **fields)
