"""Who is calling: the token transports, secret matching and the per-request context."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from flask import current_app, g, request

from . import errors
from .config import ApiSecret, normalize_auth_id

#: A host callback mapping a token to an auth id (``None`` rejects the token).
AuthResolver = Callable[[str], str | None | Awaitable[str | None]]

_G_KEY = "livekit_moderation_auth"


@dataclass(frozen=True)
class AuthContext:
    """The caller of the current request.

    ``auth_id`` is ``None`` for anonymous callers, who may moderate every room
    (the backward-compatible mode); otherwise only rooms whose metadata names it.
    """

    auth_id: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.auth_id is None


ANONYMOUS = AuthContext()


def current_auth() -> AuthContext:
    """The auth context resolved for the current request (anonymous outside one)."""
    return g.get(_G_KEY, ANONYMOUS)


def request_token() -> str | None:
    """The caller's token: a non-empty ``Authorization: Bearer`` first, else ``?api_key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.args.get("api_key") or None


def _encode(value: str) -> bytes:
    # Header values arrive latin-1 decoded and may hold any code point; surrogatepass keeps
    # encoding total so a hostile token can never raise here.
    return value.encode("utf-8", "surrogatepass")


def match_secret(token: str, secrets: tuple[ApiSecret, ...]) -> ApiSecret | None:
    """The configured secret equal to ``token``, compared in constant time.

    Every entry is compared, whatever matched earlier, so timing does not reveal
    which entry (or how many) a token was checked against.
    """
    candidate = _encode(token)
    found = None
    for entry in secrets:
        if hmac.compare_digest(candidate, entry.secret):
            found = entry
    return found


class Authenticator:
    """Turns the request's token into an :class:`AuthContext`, or raises a 401."""

    def __init__(self, required: bool, secrets: tuple[ApiSecret, ...]) -> None:
        self.required = required
        self.secrets = secrets

    def authenticate(self, resolver: AuthResolver | None) -> AuthContext:
        """Resolve the current request's caller (called by the blueprint's hook).

        ``resolver`` is asked only when the token matches none of the secrets.
        """
        if not self.required:
            return ANONYMOUS
        token = request_token()
        if token is None:
            raise errors.missing_token()
        entry = match_secret(token, self.secrets)
        if entry is not None:
            return AuthContext(entry.id)
        if resolver is not None:
            auth_id = current_app.ensure_sync(resolver)(token)
            if auth_id is not None:
                if not isinstance(auth_id, str):
                    raise TypeError("the auth_resolver must return a str or None")
                return AuthContext(normalize_auth_id(auth_id))
        raise errors.unauthorized()


def set_current_auth(context: AuthContext) -> None:
    setattr(g, _G_KEY, context)


# A query string inside a logged request line: from "?" to the next space or quote.
_QUERY_IN_LOG = re.compile(r"\?([^\s\"]*)")


def _redact_query(match: re.Match[str]) -> str:
    pairs = []
    for pair in match.group(1).split("&"):
        key, sep, _ = pair.partition("=")
        # Compare the decoded key: werkzeug reads "api%5Fkey" as "api_key" too.
        pairs.append(f"{key}=[REDACTED]" if sep and unquote_plus(key) == "api_key" else pair)
    return "?" + "&".join(pairs)


class QueryTokenRedactor(logging.Filter):
    """Blanks ``api_key`` values in logged request lines (server access logs).

    ``?api_key=<token>`` puts a caller's secret in the URL, which servers log with every
    request; ``init_app`` attaches this filter to the werkzeug and gunicorn access loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            redacted = _QUERY_IN_LOG.sub(_redact_query, message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


#: Loggers that write request lines: the werkzeug dev server and gunicorn's access log.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


def redact_access_logs() -> None:
    """Attach one :class:`QueryTokenRedactor` to each access logger (idempotent)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryTokenRedactor) for f in logger.filters):
            logger.addFilter(QueryTokenRedactor())
