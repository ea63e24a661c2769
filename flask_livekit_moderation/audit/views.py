"""``GET /livekit/audit``: the caller's audit log, newest first, a page at a time."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..pipeline import Answer, Call
from ..routing import Routes
from .schemas import MAX_PAGE, AuditPageSchema, AuditQuery, cursor
from .store import Filter

routes = Routes()


@routes.route(
    "GET",
    "/audit",
    action="list_audit",
    scope="audit",
    operation_id="listAuditLog",
    query=AuditQuery,
    answer=AuditPageSchema,
    answer_description="One page of the caller's audit log, newest first.",
    errors=(
        errors.INVALID_REQUEST,
        errors.MISSING_TOKEN,
        errors.UNAUTHORIZED,
        errors.FORBIDDEN,
        errors.INSUFFICIENT_SCOPE,
        errors.INTERNAL_ERROR,
        errors.BAN_STORE_UNAVAILABLE,
    ),
    status_meaning={503: "The store is unavailable: try again after the `Retry-After` seconds."},
    doc_values={"max_page": MAX_PAGE},
)
def list_audit(call: Call, query: dict[str, Any]) -> Answer:
    """List the audit log: who did what, to whom, when, and what came of it

    One entry per moderation write (remove, mute, room mute, permissions, ban, lift, ...) of
    the caller's credentials, whatever its outcome (refusals and failures too: the error code),
    and per ban enforcement (webhook, reconciler) in the caller's rooms. A caller with an auth
    id sees its own entries only; a caller for all rooms those of callers for all rooms and of
    rooms with no owner. Filters: `room_name`, `action`, `actor`, `since`, `until`. Newest
    first, `limit` at a time (default 100, at most {max_page}); `next_cursor`, passed as
    `cursor` with the same filters, gives the next page (null on the last). Entries are kept
    LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS days (default 90). No LiveKit call.
    """
    log = call.state.audit_log
    limit = query["limit"]
    wanted = Filter(
        owner=call.auth_id or "",
        room_name=query["room_name"],
        action=query["action"],
        actor=query["actor"],
        since=query["since"],
        until=query["until"],
        before=query["before"],
    )
    call.acted = True  # it reads the store: logged like the other listings
    entries = [] if log is None else log.list(wanted, limit + 1)
    more, entries = len(entries) > limit, entries[:limit]
    return Answer(
        {
            "entries": [entry.to_json() for entry in entries],
            "next_cursor": cursor(entries[-1].id) if more else None,
        },
        "listed_audit",
    )
