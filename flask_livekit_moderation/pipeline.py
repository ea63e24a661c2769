"""One request to a moderation route, top to bottom, in one place: :func:`dispatch`.

content type -> caller -> its scope -> validation -> idempotency key (:mod:`.idempotency`: a
replay, or the key claimed) -> the view (its LiveKit operation) -> the answer and its signals ->
the key's answer kept or released, and the request's record (:mod:`.audit`: log line, signals,
audit log entry), whatever happened. What the request is and did lives in one :class:`Call`;
errors are :class:`~.errors.ModerationError`, rendered by the app's handler for them (the
host's, when it registered one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blinker import NamedSignal
from flask import Response, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from . import audit, errors, idempotency, signals
from .auth import AuthContext
from .client import RoomCalls
from .config import MAX_BODY_BYTES
from .errors import ModerationError

if TYPE_CHECKING:
    from .bans.stores import BanStore
    from .routing import Route
    from .state import ModerationState


@dataclass
class Answer:
    """What a view answers: the success's JSON body, its outcome, and the signals it sends."""

    body: dict[str, Any]
    #: The outcome logged and signalled (``"removed"``, ``"muted"``, ...).
    outcome: str
    #: Sent after the body is serialised, so a receiver cannot change the answer.
    signals: list[tuple[NamedSignal, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Call:
    """One request to a moderation route: who asked, for what, and what came of it."""

    state: ModerationState
    route: Route
    started: float
    #: The action recorded (the route's; the webhook names its enforcement); ``None``: nothing to record.
    action: str | None = None
    caller: AuthContext | None = None
    #: The caller's auth id (``None``: every room, or no caller).
    auth_id: str | None = None
    #: The acting moderator: the caller's actor, else its auth id (``None``: neither, or no caller).
    actor: str | None = None
    #: The validated input: room, participant, track, ...
    target: Mapping[str, Any] = field(default_factory=dict)
    calls: RoomCalls | None = None
    outcome: str | None = None
    status: int | None = None
    answered: float | None = None
    #: The action reached LiveKit or a store (or found LiveKit unconfigured): an audit line is logged.
    acted: bool = False
    #: For an enforcement (no caller): the room owner it acted for.
    owner: str | None = None
    enforcement: bool = False
    #: What the audit log entry says beyond the input (a view's counts, an enforcement's source).
    details: dict[str, Any] = field(default_factory=dict)
    #: Whether an audit log entry is written (``None``: as the route table says, see :mod:`.audit`).
    audited: bool | None = None

    #: The ``Idempotency-Key`` this request holds until answered (:mod:`.idempotency`).
    idempotency: idempotency.Claim | None = None
    #: The answer is the kept answer of an earlier request with the same key (nothing was done).
    replayed: bool = False

    def livekit(self) -> RoomCalls:
        """The request's LiveKit calls (recorded for the audit line); enforcement on its own lane."""
        self.acted = True
        self.calls = RoomCalls(self.state.client, self.auth_id, enforcement=self.enforcement)
        return self.calls

    def bans(self) -> BanStore:
        """The ban store, for an action that reads or writes it."""
        self.acted = True
        return self.state.bans


def dispatch(state: ModerationState, route: Route) -> Response:
    """Serve one request to ``route`` of ``state``'s blueprint."""
    call = Call(state, route, time.perf_counter(), action=route.action)
    response: Response | None = None
    try:
        if route.body is not None and not request.is_json:
            # Before anything that depends on the caller: a cross-site form post
            # (text/plain, no CORS preflight) must never reach the resolver or LiveKit.
            raise errors.UNSUPPORTED_MEDIA_TYPE()
        if route.caller:
            caller, refusal = state.authenticator.caller()
            if refusal is not None:
                raise refusal
            call.caller, call.auth_id, call.actor = caller, caller.auth_id, caller.acting
            # Before the input is read and before LiveKit: the answer is the same whatever the room.
            if route.scope is not None and not caller.allows(route.scope):
                raise errors.insufficient_scope(route.scope)
        raw, data = _input(route)
        call.target = data
        # Safe retries: after the caller (a key is per owner), before any LiveKit call.
        if idempotency.HEADER in request.headers:
            replay = idempotency.begin(call, raw)
            if replay is not None:
                call.outcome, call.status = "replayed", replay.status_code
                return replay
        answer = route.view(call, data)
        call.outcome = answer.outcome
        response = jsonify(answer.body)
        response.status_code = route.status
        call.status = response.status_code
        for signal, fields in answer.signals:
            if not signal.receivers:  # the common case: nobody listens
                continue
            if route.caller:  # a moderator's action: every signal names who acted
                fields = {**fields, "actor": call.actor}
            signals.notify(signal, **fields)
    except ModerationError as exc:
        call.outcome = exc.code
        response = current_app.make_response(current_app.handle_user_exception(exc))
        call.status = response.status_code
    except Exception:
        call.outcome = errors.INTERNAL_ERROR.code
        raise
    finally:
        call.answered = time.perf_counter()
        if call.idempotency is not None:
            idempotency.end(call, response)
        if call.action is not None:
            audit.finish(call)
    return response


def _input(route: Route) -> tuple[dict[str, Any], dict[str, Any]]:
    """The route's body (a JSON object of at most ``MAX_BODY_BYTES``) or query string as sent,
    and validated by its schema (400/413 when not)."""
    if route.schema is None:
        return {}, {}
    if route.body is None:
        raw = request.args.to_dict(flat=True)
    else:
        body = read_body(MAX_BODY_BYTES)
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            raise errors.body_not_an_object() from None
        if not isinstance(raw, dict):
            raise errors.body_not_an_object()
    try:
        valid: dict[str, Any] = route.schema.load(raw)
    except ValidationError as exc:
        raise errors.invalid_fields(exc.messages_dict) from None
    return raw, valid


def read_body(limit: int, too_large: str | None = None) -> bytes:
    """The raw request body; 413 ``PAYLOAD_TOO_LARGE`` (saying ``too_large``) when over ``limit`` bytes."""
    if (request.content_length or 0) > limit:
        raise errors.PAYLOAD_TOO_LARGE(too_large)
    try:
        raw = request.stream.read(limit + 1)
    except HTTPException as exc:  # the host's MAX_CONTENT_LENGTH, or a broken upload
        raise errors.BY_HTTP_STATUS.get(exc.code or 400, errors.INVALID_REQUEST)() from None
    if len(raw) > limit:
        raise errors.PAYLOAD_TOO_LARGE(too_large)
    return raw
