"""How a route is declared: once, on its view, for both the blueprint and the OpenAPI document.

A feature declares its routes with a :class:`Routes` table and its ``route`` decorator, the way
flask-smorest keeps the documentation on the view::

    routes = Routes()

    @routes.route("DELETE", "/participant", action="remove", scope="remove", body=RemoveParticipantRequest,
                  answer=RemoveParticipantResponse, errors=(*errors.LIVEKIT_ROUTE, ...))
    def remove_participant(call: Call, body: dict[str, Any]) -> Answer:
        \"\"\"Remove a participant from a room

        What the OpenAPI description says.
        \"\"\"

The view's docstring is the operation's summary (first paragraph) and description (the rest).
:mod:`.routes` lists every feature's table; :func:`make_blueprint` mounts them and
:mod:`.openapi` documents them, both from the same :class:`Route` objects.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Response, current_app, request
from marshmallow import Schema
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from . import errors
from .config import SCOPES
from .errors import ErrorCode
from .pipeline import dispatch
from .state import ModerationBlueprint, ModerationState, app_states

if TYPE_CHECKING:
    from .pipeline import Answer, Call

#: A view: the request (:class:`~.pipeline.Call`) and its validated input, to an answer.
View = Callable[["Call", dict[str, Any]], "Answer"]
V = TypeVar("V", bound=View)


@dataclass(frozen=True)
class Route:
    """One route: where it lives, what it takes, what it answers, and what it is called."""

    method: str
    #: The URL rule under ``{url_prefix}/livekit``, e.g. ``/participant``.
    rule: str
    view: View
    #: The action's name in logs, signals and the audit (``"remove"``); ``None`` for a route
    #: that moderates nothing (the OpenAPI document, LiveKit's webhook).
    action: str | None
    operation_id: str
    #: Every error code the route can answer (documented per status).
    errors: tuple[ErrorCode, ...]
    #: The schema of a success's JSON body; ``None``: any JSON object.
    answer: type[Schema] | None = None
    answer_description: str = ""
    #: The JSON body it reads (415 unless sent as JSON), or the query string it reads.
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    #: The status of a success (201 for a creation).
    status: int = 200
    #: Whether the caller is resolved before the view (401/403 when refused).
    caller: bool = True
    #: The scope a caller needs (``config.SCOPES``): without it, 403 ``INSUFFICIENT_SCOPE``
    #: before anything else. Every route with a caller declares one.
    scope: str | None = None
    #: Per-status sentences replacing the generic ones of :mod:`.openapi`.
    status_meaning: Mapping[int, str] = field(default_factory=dict)
    #: OpenAPI keys of the operation set as they are (e.g. the webhook's ``requestBody``).
    openapi: Mapping[str, Any] = field(default_factory=dict)
    #: Values for ``{name}`` fields in the docstring (e.g. a limit defined in code).
    doc_values: Mapping[str, Any] = field(default_factory=dict)
    #: The schema instance that loads ``body`` or ``query`` (built once).
    schema: Schema | None = field(init=False, repr=False, compare=False)
    #: A moderation write (not a read): what the audit log records, whoever asked.
    writes: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.caller and self.scope not in SCOPES:
            raise ValueError(
                f"route {self.method} {self.rule} needs a scope, one of {', '.join(SCOPES)} "
                f"(got {self.scope!r})"
            )
        source = self.body or self.query
        object.__setattr__(self, "schema", None if source is None else source())
        writes = self.action is not None and self.method not in ("GET", "HEAD", "OPTIONS")
        object.__setattr__(self, "writes", writes)

    @property
    def endpoint(self) -> str:
        """The endpoint name within the blueprint (``remove_participant``)."""
        return self.view.__name__

    @property
    def summary(self) -> str:
        """The first paragraph of the view's docstring."""
        return self._paragraphs()[0]

    @property
    def description(self) -> str:
        """The view's docstring after the summary, paragraphs joined as one text."""
        return " ".join(self._paragraphs()[1:])

    def _paragraphs(self) -> list[str]:
        doc = inspect.cleandoc(self.view.__doc__ or "")
        if self.doc_values:
            doc = doc.format_map(self.doc_values)
        return [" ".join(block.split()) for block in doc.split("\n\n") if block.strip()] or [""]


class Routes:
    """A feature's routes, in the order declared."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def route(self, method: str, rule: str, **options: Any) -> Callable[[V], V]:
        """Declare the decorated view as ``method rule``; ``options`` are :class:`Route`'s fields."""

        def declare(view: V) -> V:
            self._routes.append(Route(method, rule, view, **options))
            return view

        return declare

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)


def make_blueprint(state: ModerationState) -> ModerationBlueprint:
    """The blueprint of one instance on one app: every route of ``state.routes``."""
    blueprint = ModerationBlueprint(state, __name__)
    blueprint.register_error_handler(InternalServerError, _internal_error)
    blueprint.register_error_handler(TooManyRequests, _rate_limited)
    for route in state.routes:
        # Flask calls dispatch itself, bound to the route; it carries the feature view's names,
        # which the host's middleware reads (Flask-Limiter, Flask-WTF name a view by them).
        view = functools.update_wrapper(functools.partial(dispatch, state, route), route.view)
        blueprint.add_url_rule(route.rule, route.endpoint, view, methods=[route.method])
    # Registration (here or inside a host blueprint registered later) tells the full prefix.
    blueprint.record(lambda setup: state.prefixes.add((setup.url_prefix or "").rstrip("/")))
    return blueprint


def _internal_error(exc: InternalServerError) -> Response:
    # Only reached when Flask does not propagate the exception (not TESTING/DEBUG); Flask has
    # logged it. The answer goes through the ModerationError handler so a host's applies.
    response: Response = current_app.handle_user_exception(errors.INTERNAL_ERROR())  # type: ignore[assignment]
    return response


def _rate_limited(exc: TooManyRequests) -> Response:
    # A host's rate limit (Flask-Limiter raises its RateLimitExceeded, a TooManyRequests, from
    # an app-level before_request hook) on one of the routes: answered in the extension's shape,
    # through the ModerationError handler so a host's own rendering applies too.
    headers = {"Retry-After": str(_retry_after(exc))}
    response: Response = current_app.handle_user_exception(errors.RATE_LIMITED(headers=headers))  # type: ignore[assignment]
    return response


def _retry_after(exc: TooManyRequests) -> int:
    """Whole seconds until the refused caller may try again, at least 1."""
    if isinstance(exc.retry_after, (int, float)):  # raised with TooManyRequests(retry_after=...)
        return max(1, math.ceil(exc.retry_after))
    if exc.retry_after is not None:  # a datetime
        return max(1, math.ceil(exc.retry_after.timestamp() - time.time()))
    # Flask-Limiter: its limiters on the app know when the breached window resets.
    for limiter in current_app.extensions.get("limiter", ()):
        current = getattr(limiter, "current_limit", None)
        if getattr(current, "breached", False):
            reset_at = float(getattr(current, "reset_at", 0.0))
            return max(1, math.ceil(reset_at - time.time()))
    # Else the breached limit's window, the longest the caller can have to wait.
    limit = getattr(getattr(exc, "limit", None), "limit", None)
    expiry = getattr(limit, "get_expiry", None)
    return max(1, int(expiry())) if callable(expiry) else 1


def json_routing_error() -> None:
    """JSON 404/405 for unrouted requests under an instance's prefix (an app-level hook).

    A request that matched no rule belongs to no blueprint, so the blueprint never sees it;
    the app asks this first.
    """
    exc = request.routing_exception
    if not isinstance(exc, HTTPException) or exc.code not in (404, 405):
        return
    for state in app_states(current_app):
        for base in state.prefixes:
            if request.path == base or request.path.startswith(base + "/"):
                allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
                raise errors.BY_HTTP_STATUS[exc.code](headers=allow)


def render_moderation_error(exc: errors.ModerationError) -> Response:
    """The extension's rendering of its errors (the app-level handler ``init_app`` installs)."""
    return exc.to_response()
