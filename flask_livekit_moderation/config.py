"""Settings read from ``app.config`` (``LIVEKIT_*`` keys), checked once at start-up."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Largest request body accepted, in bytes; larger bodies answer 413.
MAX_BODY_BYTES = 64 * 1024


class ConfigurationError(ValueError):
    """The extension's configuration cannot work; raised by ``init_app``."""


#: Whether every route needs an authenticated caller. Default ``False`` (the seed's open mode:
#: every caller may moderate every room), but left unset with no secret, resolver or request
#: loader, ``init_app`` refuses to start outside debug and testing: open mode is only had by
#: setting it to ``False`` on purpose.
AUTH_REQUIRED_KEY = "LIVEKIT_MODERATION_AUTH_REQUIRED"


#: What the names of an instance's OpenAPI components, security schemes, operations and tag
#: start with, unless ``LiveKitModeration(openapi_prefix=...)`` says otherwise.
DEFAULT_OPENAPI_PREFIX = "LiveKitModeration"
#: What OpenAPI allows in a component name (the prefix is one's first part).
_COMPONENT_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_openapi_prefix(prefix: str) -> str:
    """``prefix`` if it can start OpenAPI component names, else :class:`ValueError`."""
    if not isinstance(prefix, str) or not _COMPONENT_NAME.fullmatch(prefix):
        raise ValueError(
            "openapi_prefix must be letters, digits, '.', '-' or '_' (it starts OpenAPI component "
            f"names), got {prefix!r}"
        )
    return prefix


#: Every scope a credential may hold, and what each allows (``docs/scopes.md``). A credential
#: without ``"scopes"`` holds them all.
SCOPES: dict[str, str] = {
    "read": "list participants and bans (and the lobby)",
    "mute": "mute or unmute a track, mute or unmute a room",
    "permissions": "change a participant's permissions",
    "remove": "remove a participant",
    "ban": "ban a participant, lift a ban",
    "lobby": "lock a room, admit or deny who waits",
    "audit": "read the audit log",
}


def check_scopes(scopes: Any, where: str) -> frozenset[str]:
    """``scopes`` (a list of scope names) as a set; :class:`ConfigurationError` naming ``where`` and
    every unknown name."""
    if isinstance(scopes, (str, bytes)) or not isinstance(scopes, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"{where} must be a list of scope names ({', '.join(SCOPES)})")
    if not all(isinstance(scope, str) for scope in scopes):
        raise ConfigurationError(f"{where} must hold scope names as strings ({', '.join(SCOPES)})")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigurationError(
            f"{where} names unknown scopes: {', '.join(map(repr, unknown))} (known: {', '.join(SCOPES)})"
        )
    return frozenset(scopes)


@dataclass(frozen=True)
class ApiSecret:
    """One caller secret: the auth id it grants, its scopes (``None``: all) and who holds it."""

    id: str | None
    secret: bytes = field(repr=False)
    #: The scopes it grants (``None``: every scope, as an entry without ``"scopes"``).
    scopes: frozenset[str] | None = None
    #: Who holds it, as logs, signals and the audit log name the acting moderator.
    actor: str | None = None


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app."""

    #: The LiveKit server's URL (``https://...``, or the ``wss://...`` LiveKit gives; ``http://``
    #: for a local server). Over TLS the server's certificate is verified against OpenSSL's
    #: default trust store (``SSL_CERT_FILE`` names another). Missing (here and in the
    #: environment): the app starts, a WARNING is logged, and the routes answer 500
    #: ``LIVEKIT_NOT_CONFIGURED``.
    livekit_url: str | None
    #: The API key the extension signs its LiveKit calls with (and checks webhooks against).
    livekit_api_key: str | None
    #: The API secret of that key. Never logged nor answered.
    livekit_api_secret: str | None = field(repr=False)
    #: Require an authenticated caller on every route. On with neither secrets, resolver nor
    #: request loader: ``init_app`` raises. Off: ``init_app`` logs a WARNING and every caller may
    #: moderate every room. Left unset with neither secrets, resolver nor request loader,
    #: ``init_app`` raises unless ``app.debug`` or ``app.testing``: open mode only when set to
    #: ``False`` on purpose.
    auth_required: bool
    #: The callers' tokens: a token equal to ``secret`` makes the caller ``id``. An entry without
    #: ``id`` may moderate every room (a WARNING at start); a blank ``id`` is a
    #: ``ConfigurationError``. Secrets are printable ASCII without spaces, as bearer tokens are.
    api_secrets: tuple[ApiSecret, ...]
    #: Seconds allowed for the whole LiveKit work of one request, all its calls together.
    timeout: float
    #: A prefix in front of the routes (``/api/v1`` gives ``/api/v1/livekit/participant``);
    #: ``LiveKitModeration(url_prefix=...)`` wins over it.
    url_prefix: str
    #: Serve the OpenAPI document at ``{prefix}/livekit/openapi.json`` (off: a JSON 404).
    openapi: bool
    #: The most requests per process doing LiveKit work at once (the ceiling of the adaptive
    #: limit); more wait while those ahead are on time, and are answered 503 ``LIVEKIT_BUSY`` when
    #: they are late. Keep it below your worker's thread count.
    max_concurrency: int = 8
    #: The limit follows LiveKit's health: halved when LiveKit fails or is late for several
    #: callers, raised by one per request answered on time, up to ``MAX_CONCURRENCY``. ``False``:
    #: fixed at ``MAX_CONCURRENCY``.
    adaptive_concurrency: bool = True
    #: The part of the limit one caller (a tenant's auth id; every caller without one counts as
    #: one) may hold, rounded up, at least 1: one tenant can never fill it.
    caller_share: float = 0.5
    #: Places per process reserved for ban enforcement (the webhook, the reconciler), which no
    #: request can take.
    enforcement_concurrency: int = 4
    #: The longest a request waits for a place while those ahead of it are on time.
    queue_timeout: float = 5.0
    #: Consecutive LiveKit-unavailable outcomes (per process) that open the app's circuit breaker
    #: (a caller whose own requests pass the deadline opens only that caller's breaker).
    breaker_failures: int = 5
    #: Seconds the open breaker answers 503 without calling LiveKit before it lets one probe
    #: through.
    breaker_cooldown: float = 5.0
    #: Where bans live (also the reconciler's lease and the webhook's handled events):
    #: ``sqlite:///path`` (unset: ``sqlite:///{app.instance_path}/livekit_moderation.sqlite3``),
    #: ``postgresql://...`` (extra ``[postgresql]``), ``redis://`` / ``rediss://`` (extra
    #: ``[redis]``) or ``memory://``. A bad URL is a ``ConfigurationError``; see :doc:`bans`.
    ban_store: str | None = field(default=None, repr=False)
    #: Seconds between the reconciler's passes in each process, which remove banned participants
    #: the webhook missed.
    reconcile_interval: float = 30.0
    #: LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS: days an audit entry is kept (0: no audit log).
    audit_retention_days: int = 90

    @property
    def livekit_configured(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)


def _from_config_or_env(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        value = os.environ.get(key)
    return value or None


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{key} must be a boolean, got {value!r}")


def _api_secrets(value: Any) -> tuple[ApiSecret, ...]:
    key = "LIVEKIT_MODERATION_API_SECRETS"
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            # The message would quote part of the value, which holds secrets.
            raise ConfigurationError(f"{key} is not valid JSON") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"{key} must be a list of {{'id': ..., 'secret': ...}}")
    secrets = []
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{key}[{index}] must be an object with 'id' and 'secret'")
        secret, auth_id = entry.get("secret"), entry.get("id")
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f"{key}[{index}] needs a non-empty string 'secret'")
        if not secret.isascii() or not secret.isprintable() or " " in secret:
            # Bearer tokens are printable ASCII (RFC 6750); anything else arrives differently
            # through a header (latin-1) than through ?api_key (UTF-8) and would half work.
            raise ConfigurationError(f"{key}[{index}]['secret'] must be printable ASCII without spaces")
        if auth_id is not None and not isinstance(auth_id, str):
            raise ConfigurationError(f"{key}[{index}]['id'] must be a string")
        if auth_id is not None and not auth_id.strip():
            # A half-filled entry must not become a key to every tenant's rooms: leaving
            # out "id" is the one explicit way to give a secret access to all rooms.
            raise ConfigurationError(
                f"{key}[{index}]['id'] is blank; leave 'id' out for a secret that may moderate every room"
            )
        scopes = entry.get("scopes")
        if scopes is not None:
            scopes = check_scopes(scopes, f"{key}[{index}]['scopes']")
        actor = entry.get("actor")
        if actor is not None and (
            not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_LENGTH
        ):
            raise ConfigurationError(
                f"{key}[{index}]['actor'] must be a non-blank string of at most {MAX_ACTOR_LENGTH} characters"
            )
        secrets.append(ApiSecret(id=auth_id, secret=secret.encode("utf-8"), scopes=scopes, actor=actor))
    return tuple(secrets)


#: Longest actor label accepted, in characters (it is stored with every audit entry).
MAX_ACTOR_LENGTH = 256
#: Longest audit retention accepted, in days (100 years).
MAX_AUDIT_RETENTION_DAYS = 36_500


#: Largest deadline or cooldown accepted, in seconds: beyond it a value is a mistake (and
#: ``inf`` or ``1e12`` would overflow the event loop's timers on every request).
MAX_SECONDS = 300.0


def _seconds(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds") from None
    if isinstance(value, bool) or not 0 < seconds <= MAX_SECONDS:  # also refuses nan and inf
        raise ConfigurationError(f"{key} must be more than 0 and at most {MAX_SECONDS:g} seconds")
    return seconds


def _share(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number more than 0 and at most 1") from None
    if isinstance(value, bool) or not 0 < share <= 1:  # also refuses nan
        raise ConfigurationError(f"{key} must be a number more than 0 and at most 1")
    return share


def _count(config: Mapping[str, Any], key: str, default: int, meaning_of_zero: str) -> int:
    value = config.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{key} must be a whole number, 0 or more (0: {meaning_of_zero})")
    return value


#: Longest reconciler interval accepted, in seconds (one day).
MAX_RECONCILE_INTERVAL = 86_400.0


def _interval(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds (0: off)") from None
    if isinstance(value, bool) or not 0 <= seconds <= MAX_RECONCILE_INTERVAL:  # also refuses nan and inf
        raise ConfigurationError(f"{key} must be 0 (off) or more, at most {MAX_RECONCILE_INTERVAL:g} seconds")
    return seconds


def load_settings(config: Mapping[str, Any], url_prefix: str | None = None) -> Settings:
    """Read and check the extension's settings from a Flask ``app.config``.

    ``url_prefix``, when given, wins over ``LIVEKIT_MODERATION_URL_PREFIX``.
    """
    prefix = (config.get("LIVEKIT_MODERATION_URL_PREFIX") if url_prefix is None else url_prefix) or ""
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigurationError(
            "the URL prefix (LIVEKIT_MODERATION_URL_PREFIX) must be empty or start with '/'"
        )
    return Settings(
        livekit_url=_from_config_or_env(config, "LIVEKIT_URL"),
        livekit_api_key=_from_config_or_env(config, "LIVEKIT_API_KEY"),
        livekit_api_secret=_from_config_or_env(config, "LIVEKIT_API_SECRET"),
        auth_required=_as_bool(AUTH_REQUIRED_KEY, config.get(AUTH_REQUIRED_KEY, False)),
        # [{"id": tenant or absent (every room), "secret": token, "scopes": [...] (absent: every
        # scope; SCOPES names them), "actor": who holds it (logs, signals, audit)}, ...]
        api_secrets=_api_secrets(config.get("LIVEKIT_MODERATION_API_SECRETS")),
        timeout=_seconds(config, "LIVEKIT_MODERATION_TIMEOUT", 5.0),
        url_prefix=prefix.rstrip("/"),
        openapi=_as_bool("LIVEKIT_MODERATION_OPENAPI", config.get("LIVEKIT_MODERATION_OPENAPI", True)),
        max_concurrency=_count(config, "LIVEKIT_MODERATION_MAX_CONCURRENCY", 8, "no limit"),
        adaptive_concurrency=_as_bool(
            "LIVEKIT_MODERATION_ADAPTIVE_CONCURRENCY",
            config.get("LIVEKIT_MODERATION_ADAPTIVE_CONCURRENCY", True),
        ),
        caller_share=_share(config, "LIVEKIT_MODERATION_CALLER_SHARE", 0.5),
        enforcement_concurrency=_count(
            config, "LIVEKIT_MODERATION_ENFORCEMENT_CONCURRENCY", 4, "no limit for ban enforcement"
        ),
        queue_timeout=_seconds(config, "LIVEKIT_MODERATION_QUEUE_TIMEOUT", 5.0),
        breaker_failures=_count(config, "LIVEKIT_MODERATION_BREAKER_FAILURES", 5, "no circuit breaker"),
        breaker_cooldown=_seconds(config, "LIVEKIT_MODERATION_BREAKER_COOLDOWN", 5.0),
        ban_store=config.get("LIVEKIT_MODERATION_BAN_STORE"),
        reconcile_interval=_interval(config, "LIVEKIT_MODERATION_RECONCILE_INTERVAL", 30.0),
        # Days an entry of the audit log (GET /livekit/audit) is kept in the ban store; 0 keeps
        # no audit log at all (nothing written, the route lists nothing). Default 90.
        audit_retention_days=_retention(config, "LIVEKIT_MODERATION_AUDIT_RETENTION_DAYS", 90),
    )


def _retention(config: Mapping[str, Any], key: str, default: int) -> int:
    days = _count(config, key, default, "no audit log")
    if days > MAX_AUDIT_RETENTION_DAYS:
        raise ConfigurationError(f"{key} must be at most {MAX_AUDIT_RETENTION_DAYS} days")
    return days
