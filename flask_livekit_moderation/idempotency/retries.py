"""The idempotency step of :func:`~..pipeline.dispatch`, between validation and the view.

Where it runs, and why there:

1. after the content type, the caller and the input are checked: a key belongs to the caller's
   owner (its auth id), so the caller must be known; a request refused before (401, 400, 415)
   costs no store call and keeps nothing, and sending it again is already safe;
2. before the view, so before any LiveKit call: a replayed or refused request (409, 422) never
   reaches LiveKit.

:func:`begin` claims the key (or answers from it); :func:`end`, once the request is answered,
keeps a 2xx or 4xx answer for 24 hours, or releases the key after a 5xx so a retry runs again
(marking it when a write's outcome was unknown: a retried removal then knows that a participant
gone from the caller's room was removed by the earlier attempt).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Response, request

from .. import errors
from ..errors import ModerationError
from .model import (
    CLAIM_MARGIN,
    HEADER,
    KEEP_SECONDS,
    MAX_KEY_LENGTH,
    Kept,
    Verdict,
    fingerprint,
    scope_of,
    valid_key,
)
from .store import Records, records_for

if TYPE_CHECKING:
    from ..pipeline import Call
    from ..routing import Route

logger = logging.getLogger("flask_livekit_moderation")

#: The methods whose routes take an ``Idempotency-Key`` (the others change nothing).
METHODS = frozenset({"POST", "DELETE"})


@dataclass(frozen=True)
class Claim:
    """A request holding its key until it is answered."""

    records: Records
    scope: str
    key: str
    token: str
    #: The key's last attempt ended ``LIVEKIT_OUTCOME_UNKNOWN``: its write may have been done.
    after_unknown: bool


def applies(route: Route) -> bool:
    """Whether ``route`` takes an ``Idempotency-Key``: every POST and DELETE moderation route
    (with a caller; LiveKit's webhook has its own deduplication)."""
    return route.caller and route.method in METHODS


def begin(call: Call, raw: Mapping[str, Any]) -> Response | None:
    """Claim the request's key; the kept answer to replay instead of running it, or ``None``.

    No header: nothing happens. Raises 400 ``INVALID_REQUEST`` for a malformed key, 422
    ``IDEMPOTENCY_KEY_REUSED`` for a key used for another request (``raw``: the request's body
    as sent), 409 ``IDEMPOTENCY_KEY_IN_USE`` while its first request runs, and 503
    ``BAN_STORE_UNAVAILABLE`` when the store fails (nothing was done).
    """
    if not applies(call.route):
        return None
    key = _key()
    if key is None:
        return None
    records = records_for(call.state.bans)
    scope = scope_of(call.auth_id)
    token = uuid.uuid4().hex
    settings = call.state.settings
    # Longest a request can hold its key: waiting for a place, LiveKit's deadline, the store.
    claim_seconds = settings.queue_timeout + settings.timeout + CLAIM_MARGIN
    begun = records.begin(scope, key, fingerprint(request.method, request.path, raw), token, claim_seconds)
    if begun.verdict is Verdict.REUSED:
        raise errors.IDEMPOTENCY_KEY_REUSED()
    if begun.verdict is Verdict.RUNNING:
        raise errors.IDEMPOTENCY_KEY_IN_USE()
    if begun.verdict is Verdict.REPLAY:
        assert begun.kept is not None
        call.replayed = True
        return begun.kept.replay()
    call.idempotency = Claim(records, scope, key, token, begun.after_unknown)
    return None


def end(call: Call, response: Response | None) -> None:
    """Keep the answer of the request holding a key (2xx, 4xx), or release the key (5xx, or an
    exception: ``response`` ``None``).

    A store failure here never changes the answer, which says what was done: it is logged, and
    the claim expires by itself (a retry then runs again).
    """
    claim = call.idempotency
    if claim is None:
        return
    call.idempotency = None
    try:
        if response is not None and response.status_code < 500:
            claim.records.finish(
                claim.scope, claim.key, claim.token, Kept.of(response, call.outcome), KEEP_SECONDS
            )
        else:
            unknown = claim.after_unknown or call.outcome == errors.LIVEKIT_OUTCOME_UNKNOWN.code
            claim.records.release(claim.scope, claim.key, claim.token, unknown=unknown, seconds=KEEP_SECONDS)
    except ModerationError as exc:
        logger.error(
            "idempotency key of %s %s not %s: %s; a retry with it runs again once its claim expires",
            call.route.method,
            call.route.rule,
            "kept" if response is not None and response.status_code < 500 else "released",
            exc.code,
        )


def _key() -> str | None:
    """The request's ``Idempotency-Key`` (``None``: none sent); 400 when it is not 1 to 255
    printable ASCII characters, or sent twice."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1 or not valid_key(values[0]):
        message = f"must be one header of 1 to {MAX_KEY_LENGTH} printable ASCII characters."
        raise errors.INVALID_REQUEST(
            f"Invalid request: the {HEADER} header {message}",
            details={HEADER: [message[0].upper() + message[1:]]},
        )
    return values[0]
