"""Who is calling: token transports, secret matching, the host's callbacks, the request's caller.

Resolution order for one request, when auth is required:

1. a token (``Authorization: Bearer`` first, else ``?api_key``): a configured secret, else
   the host's ``auth_resolver(token)``;
2. no token: the host's ``request_loader(request)`` (a session/cookie app maps its signed-in
   user to a tenant here).

A callback returns an auth id (``str``), ``None`` (reject: 401), :data:`ALL_ROOMS`, or an
:class:`AuthContext` (an auth id with scopes and an actor). The
result is cached on ``flask.g`` so the callbacks run at most once per request, whoever asks
first: the extension's routes, an app-level ``before_request`` or another extension
(:func:`~.state.current_auth`).
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from flask import Request, current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from . import errors
from .config import SCOPES, ApiSecret
from .errors import ModerationError

logger = logging.getLogger("flask_livekit_moderation")


class _AllRooms:
    """Type of :data:`ALL_ROOMS`."""

    _instance: _AllRooms | None = None

    def __new__(cls) -> _AllRooms:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_ROOMS"

    def __reduce__(self) -> str:
        return "ALL_ROOMS"


#: Returned by a resolver or request loader for a caller who may moderate every room
#: (the seed's backward-compatible anonymous mode, granted only when the host says so).
ALL_ROOMS: Final = _AllRooms()

#: What a resolver or loader may return: an auth id, ``None`` (reject), :data:`ALL_ROOMS`, or an
#: :class:`AuthContext` (auth id, scopes, actor).
Resolution: TypeAlias = "str | None | _AllRooms | AuthContext"
#: Maps a caller's token to a :data:`Resolution` (sync or ``async def``).
AuthResolver: TypeAlias = Callable[[str], "Resolution | Awaitable[Resolution]"]
#: Maps a request that carries no token to a :data:`Resolution` (sync or ``async def``).
RequestLoader: TypeAlias = Callable[[Request], "Resolution | Awaitable[Resolution]"]


@dataclass(frozen=True)
class AuthContext:
    """The caller of the current request, as :func:`current_auth` returns it.

    ``is_authenticated`` is ``False`` when the request's credentials are missing or
    invalid (its moderation routes answer 401). An authenticated caller with an
    ``auth_id`` may moderate only rooms whose metadata names it; one without
    (``auth_id is None``) may moderate every room.

    A resolver or request loader may return one to give the caller ``scopes`` (a subset of
    ``config.SCOPES``: ``read``, ``mute``, ``permissions``, ``remove``, ``ban``, ``lobby``,
    ``audit``; ``None``: every scope) and an ``actor`` (who acts, as logs,
    signals and the audit log name them; ``None``: the auth id).
    """

    auth_id: str | None = None
    is_authenticated: bool = True
    #: What the caller may do (``None``: everything); a route needing another scope answers 403.
    scopes: frozenset[str] | None = None
    #: Who acts (a moderator's name, a bot's); ``None``: the auth id stands for them.
    actor: str | None = None

    @property
    def is_anonymous(self) -> bool:
        """An authenticated caller with no auth id: may moderate every room."""
        return self.is_authenticated and self.auth_id is None

    def allows(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return self.scopes is None or scope in self.scopes

    @functools.cached_property
    def acting(self) -> str | None:
        """The acting moderator: the actor, else the auth id (``None`` for neither).

        Computed once per context: a configured secret's lives as long as the app.
        """
        return self.actor if self.actor is not None else self.auth_id


ANONYMOUS = AuthContext()
UNAUTHENTICATED = AuthContext(None, is_authenticated=False)


class SecretTable:
    """The configured caller secrets, matched in constant time whatever their number.

    Secrets are indexed by an HMAC of their value under a key drawn at start-up, so a token
    is hashed once and looked up in a dict: the time taken does not depend on how many
    secrets exist nor on how much of a secret a token gets right.
    """

    def __init__(self, secrets: tuple[ApiSecret, ...]) -> None:
        self._key = os.urandom(32)
        #: Each secret's value and the caller it authenticates (built once: a context is immutable).
        self._by_digest = {
            hmac.digest(self._key, entry.secret, "sha256"): (
                entry.secret,
                AuthContext(entry.id, scopes=entry.scopes, actor=entry.actor),
            )
            for entry in secrets
        }

    def __len__(self) -> int:
        return len(self._by_digest)

    def match(self, token: str) -> AuthContext | None:
        """The caller whose configured secret equals ``token``, or ``None``."""
        # Header values arrive latin-1 decoded and may hold any code point; surrogatepass keeps
        # encoding total so a hostile token can never raise here.
        candidate = token.encode("utf-8", "surrogatepass")
        found = self._by_digest.get(hmac.digest(self._key, candidate, "sha256"))
        # The digest already decided; comparing the values too costs nothing and rules out
        # any doubt about collisions.
        if found is not None and hmac.compare_digest(candidate, found[0]):
            return found[1]
        return None


class Authenticator:
    """Turns one request's credentials into an :class:`AuthContext`, or a refusal, for the
    extension instance ``name``."""

    def __init__(
        self,
        name: str,
        required: bool,
        secrets: tuple[ApiSecret, ...],
        resolver: Callable[[], AuthResolver | None],
        loader: Callable[[], RequestLoader | None],
    ) -> None:
        self.name = name
        self.required = required
        self.secrets = SecretTable(secrets)
        # Read through the extension at request time, so callbacks registered by
        # decorator after init_app still apply.
        self._resolver = resolver
        self._loader = loader

    def caller(self) -> tuple[AuthContext, ModerationError | None]:
        """The current request's caller, resolved at most once per request (cached on ``g``,
        whoever asks first), and the error a moderation route answers when it is refused."""
        cache: dict[str, tuple[AuthContext, ModerationError | None]] = g.setdefault(_G_KEY, {})
        found = cache.get(self.name)
        if found is not None:
            return found
        try:
            if not self.required:
                found = (ANONYMOUS, None)
            else:
                # The token: a non-empty "Authorization: Bearer" first, else ?api_key.
                scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
                bearer = credentials.strip() if scheme.lower() == "bearer" else ""
                token = bearer or request.args.get("api_key") or None
                caller = None if token is None else self.secrets.match(token)
                found = (caller if caller is not None else self._from_host(token), None)
        except ModerationError as refusal:
            found = (UNAUTHENTICATED, refusal)
        cache[self.name] = found
        return found

    def _from_host(self, token: str | None) -> AuthContext:
        """The caller of a token no secret matches (the host's ``auth_resolver``), or of a request
        without one (its ``request_loader``)."""
        if token is not None:
            resolver = self._resolver()
            if resolver is None:
                raise errors.UNAUTHORIZED()
            return _context(_ask(resolver, token), errors.UNAUTHORIZED)
        loader = self._loader()
        if loader is None:
            raise errors.MISSING_TOKEN()
        return _context(_ask(loader, request._get_current_object()), errors.MISSING_TOKEN)  # type: ignore[attr-defined]


def _ask(callback: Callable[[str], object] | Callable[[Request], object], argument: object) -> object:
    """Run a host callback (sync or async); turn what it raises into the extension's answer."""
    try:
        return current_app.ensure_sync(callback)(argument)
    except Unauthorized:
        raise errors.UNAUTHORIZED() from None
    except Forbidden:
        raise errors.FORBIDDEN() from None
    except ModerationError:
        raise
    except Exception as exc:
        if _propagates():
            raise
        # Only the type: a message or traceback may quote the token (KeyError(token)).
        logger.error("the auth resolver or request loader raised %s", type(exc).__name__)
        raise errors.INTERNAL_ERROR() from None


def _propagates() -> bool:
    # Flask's own rule for unexpected exceptions (Flask.handle_exception).
    propagate = current_app.config.get("PROPAGATE_EXCEPTIONS")
    if propagate is None:
        return bool(current_app.testing or current_app.debug)
    return bool(propagate)


def _misbehaved(problem: str) -> ModerationError:
    """A callback's answer the extension cannot use: raised as such when Flask propagates
    exceptions (tests, debug), else logged (never the value: it may be a token) and 500."""
    if _propagates():
        raise TypeError(f"an auth resolver or request loader {problem}")
    logger.error("the auth resolver or request loader %s", problem)
    return errors.INTERNAL_ERROR()


def _checked(context: AuthContext) -> AuthContext:
    """An :class:`AuthContext` a callback returned, if it can be used as a caller."""
    if not context.is_authenticated:
        raise errors.UNAUTHORIZED()
    if context.auth_id is not None and (not isinstance(context.auth_id, str) or not context.auth_id.strip()):
        raise errors.UNAUTHORIZED()  # as a blank id: never access to every room
    if context.scopes is not None:
        if isinstance(context.scopes, str) or not isinstance(context.scopes, (set, frozenset, list, tuple)):
            raise _misbehaved("returned an AuthContext whose scopes are not a set of scope names")
        unknown = sorted(str(scope) for scope in set(context.scopes) - set(SCOPES))
        if unknown:
            raise _misbehaved(f"returned an AuthContext with unknown scopes: {', '.join(unknown)}")
        context = AuthContext(context.auth_id, scopes=frozenset(context.scopes), actor=context.actor)
    if context.actor is not None and not isinstance(context.actor, str):
        raise _misbehaved("returned an AuthContext whose actor is not a string")
    return context


def _context(resolved: object, refusal: errors.ErrorCode) -> AuthContext:
    if resolved is ALL_ROOMS:
        return ANONYMOUS
    if resolved is None:
        raise refusal()
    if isinstance(resolved, AuthContext):
        return _checked(resolved)
    if not isinstance(resolved, str):
        if _propagates():
            raise TypeError(
                f"an auth resolver or request loader must return a str, None, ALL_ROOMS or an AuthContext, "
                f"not {type(resolved).__name__}"
            )
        logger.error(
            "the auth resolver or request loader returned a %s, not a str, None or ALL_ROOMS",
            type(resolved).__name__,
        )
        raise errors.INTERNAL_ERROR()
    if not resolved.strip():
        # A half-provisioned tenant row must never become access to every room.
        raise errors.UNAUTHORIZED()
    return AuthContext(resolved)


_G_KEY = "_livekit_moderation_callers"


def known_caller(name: str) -> AuthContext | None:
    """The caller already resolved for instance ``name`` in this request, without resolving."""
    found = g.get(_G_KEY, {}).get(name)
    return None if found is None else found[0]


def _any_spelling(name: str) -> str:
    # Each character as itself or percent-encoded: werkzeug decodes the key, so "api%5Fkey" and
    # "%61pi_key" carry a token too.
    return "".join(f"(?:{re.escape(char)}|%{ord(char):02x})" for char in name)


# "api_key=<value>" anywhere in a message, not only after a "?": a malformed request line
# ("...?room_name=acme standup&api_key=tok HTTP/1.1") is logged split, quoted or repr'd by the
# servers. The value runs to the next space or "&" (what ends it in a URL); a quote does not end
# it, so a token with a raw quote in it is blanked whole.
_API_KEY_IN_LOG = re.compile(rf"(?i)({_any_spelling('api_key')})=[^\s&]*")


def redact(text: str) -> str:
    """``text`` with every ``api_key=<value>`` blanked to ``api_key=[REDACTED]``."""
    return _API_KEY_IN_LOG.sub(r"\1=[REDACTED]", text)


class QueryTokenRedactor(logging.Filter):
    """Blanks ``api_key`` values anywhere in a log record: its message and its traceback.

    ``?api_key=<token>`` puts a caller's secret in the URL, which servers log with every
    request, and with every malformed request line they refuse. ``init_app`` attaches this
    filter to the loggers in :data:`REDACTED_LOGGERS`, in the process that serves (under
    gunicorn: each worker, after gunicorn set its loggers up).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: the redacted traceback is what they write.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: The loggers whose records can carry a request's URL: the werkzeug dev server, gunicorn's
#: error log (malformed request lines, "Error handling request <uri>") and access log, and the
#: extension's own.
REDACTED_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access", "flask_livekit_moderation")


def redact_access_logs() -> None:
    """Attach one :class:`QueryTokenRedactor` to each of :data:`REDACTED_LOGGERS` (idempotent).

    A filter on a logger sees only the records made on that logger, whatever handler writes
    them (gunicorn's own, a ``logconfig_dict``, the root's): that is why it is attached to the
    loggers and not to a handler.
    """
    for name in REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, QueryTokenRedactor) for f in target.filters):
            target.addFilter(QueryTokenRedactor())
