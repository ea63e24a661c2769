"""The moderator console: a signed-in page that moderates the tenant's rooms in a browser.

A moderator signs in as one tenant (a form; ``CONSOLE_ACCOUNTS`` maps each tenant's auth id
to its password). From then on the Flask session cookie is the only credential: the
extension's ``request_loader`` (:func:`signed_in_tenant`) maps the signed-in tenant to its
auth id for every ``/livekit/...`` call the page makes with ``fetch``. No token is ever put in
the page or its JavaScript; callers with a token (curl, other services) are unaffected, since
the loader is only asked when a request carries none.

Cross-site requests: the moderation routes take JSON only (a ``DELETE``/``POST`` with any
other Content-Type is 415 before the caller is looked at), and a cross-site page cannot send
``Content-Type: application/json`` with the user's cookies without a CORS preflight this app
never grants; a cross-site ``<form>`` can only send ``text/plain``, urlencoded or multipart
bodies. So the session cookie alone cannot be abused to moderate. The console's own form
posts (sign in, sign out) are not JSON, so they carry a per-session CSRF token, and the cookie
is ``SameSite=Lax`` (``Secure`` too over HTTPS). The console's pages may not be framed
(``X-Frame-Options: DENY``, CSP ``frame-ancestors 'none'``) and load nothing but this app's
own files (CSP ``default-src 'self'``), so no other page can overlay or drive its buttons.

A session lasts 8 hours at most (``PERMANENT_SESSION_LIFETIME``) and ends at sign-out for
every copy of its cookie: the cookie carries a session id that must still be in the app's
session records (:mod:`example_app.sessions`). Sign-ins are throttled and cost the same
whether the tenant exists or not (:mod:`example_app.signin`); the sign-in form asks for the
tenant as free text, so the public page lists no tenant.

The room picker lists the signed-in tenant's rooms through the extension's pooled LiveKit
client (:meth:`~flask_livekit_moderation.LiveKitModeration.rooms_of`: one ListRooms, kept to
the rooms whose metadata names the tenant).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    current_app,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from flask_livekit_moderation import LiveKitModeration

from .sessions import SessionStore
from .signin import accounts_of, init_signin, retry_after

logger = logging.getLogger("example_app.console")

#: Its templates and static files are the app's own (``example_app/templates``, ``/static``).
console = Blueprint("console", __name__)

#: Session keys: the signed-in tenant (its auth id), the id of its record in the app's
#: session store, and the CSRF token of the console's forms.
_TENANT = "tenant"
_SESSION_ID = "sid"
_CSRF = "csrf_token"
#: Where the app keeps its :class:`~example_app.sessions.SessionStore`.
SESSIONS = "example_app.sessions"
#: How long a sign-in lasts when the host leaves Flask's default (31 days) in place.
SESSION_LIFETIME = timedelta(hours=8)
#: On every console page: no framing, nothing loaded from elsewhere, no inline script or style.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # A signed-in page must not come back from a cache after sign-out.
    "Cache-Control": "no-store",
}
#: Longest room name the extension accepts (the free-text field says so too).
MAX_NAME = 256


@dataclass(frozen=True)
class RoomChoice:
    """One of the tenant's rooms, as the picker shows it."""

    name: str
    topic: str
    participants: int


def accounts_from(value: Any) -> dict[str, str]:
    """``CONSOLE_ACCOUNTS``: a mapping (or its JSON) of tenant auth id -> password."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError("CONSOLE_ACCOUNTS must map tenant ids to non-empty passwords")
    return dict(value)


def _accounts() -> dict[str, str]:
    accounts: dict[str, str] = current_app.config["CONSOLE_ACCOUNTS"]
    return accounts


def sessions_of(app: Flask) -> SessionStore:
    """The session records :func:`init_console` opened for ``app``."""
    store = app.extensions[SESSIONS]
    assert isinstance(store, SessionStore)
    return store


def signed_in_tenant(req: Request) -> str | None:
    """The extension's ``request_loader``: the signed-in tenant's auth id, or ``None`` (401).

    ``req`` is the same request as :data:`flask.request`; the Flask session reads its cookie.
    The cookie's session id must still be in the session records, for the same tenant: a
    session that was signed out or has ended is refused, and so is one naming a tenant that
    is no longer configured.
    """
    tenant, session_id = session.get(_TENANT), session.get(_SESSION_ID)
    if not (isinstance(tenant, str) and isinstance(session_id, str) and tenant in _accounts()):
        return None
    if sessions_of(current_app).tenant_of(session_id) != tenant:
        return None
    return tenant


def _csrf_token() -> str:
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = session[_CSRF] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent = request.form.get(_CSRF, "")
    expected = session.get(_CSRF)
    return isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())


#: Where ``create_app`` keeps its :class:`LiveKitModeration`, for the console and the runner.
MODERATION = "example_app.moderation"


def moderation_of(app: Flask) -> LiveKitModeration:
    """The extension instance ``create_app`` mounted on ``app``."""
    moderation = app.extensions[MODERATION]
    assert isinstance(moderation, LiveKitModeration)
    return moderation


def _owned_rooms(auth_id: str) -> list[RoomChoice]:
    """The tenant's running rooms, by name."""
    return [
        RoomChoice(room.name, _topic(room.metadata), room.num_participants)
        for room in moderation_of(current_app).rooms_of(auth_id)
    ]


def _topic(metadata: str) -> str:
    try:
        topic = json.loads(metadata).get("topic", "")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return topic if isinstance(topic, str) else ""


@console.get("/")
def index() -> Any:
    """The console: the room picker and, for ``?room=``, that room's participants."""
    tenant = signed_in_tenant(request)
    if tenant is None:
        return redirect(url_for("console.signin"))
    rooms: list[RoomChoice] = []
    rooms_error = None
    try:
        rooms = _owned_rooms(tenant)
    except Exception as exc:  # noqa: BLE001 - the page still works with a typed room name
        logger.warning("console: listing the rooms failed (%s)", type(exc).__name__)
        rooms_error = "LiveKit did not list the rooms just now; reload to try again, or type a room name."
    room = request.args.get("room", "")[:MAX_NAME]
    if not room and rooms:
        room = rooms[0].name
    return render_template(
        "console.html",
        tenant=tenant,
        rooms=rooms,
        rooms_error=rooms_error,
        room=room,
        owned=room in {r.name for r in rooms},
        api_base=_api_base(),
        csrf_token=_csrf_token(),
    )


def _api_base() -> str:
    # Where this app mounted the extension's routes (LIVEKIT_MODERATION_URL_PREFIX included).
    return moderation_of(current_app).settings.url_prefix.rstrip("/") + "/livekit"


@console.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    """The sign-in form; a right password puts the tenant in the session."""
    accounts = _accounts()
    if request.method == "GET" and signed_in_tenant(request) is not None:
        return redirect(url_for("console.index"))
    error, status, tenant = None, 200, ""
    if request.method == "POST" and not _csrf_ok():
        # No session cookie, or one from before a restart (a new SECRET_KEY): a fresh form.
        error, status = "The form expired: sign in again.", 400
    elif request.method == "POST":
        tenant = request.form.get("tenant", "")[:MAX_NAME]
        password = request.form.get("password", "")
        # One hash verification whether the tenant exists or not (example_app.signin).
        if accounts_of(current_app).verify(tenant, password) and tenant in accounts:
            session.clear()  # a fresh session: a new CSRF token, nothing from before
            session[_TENANT] = tenant
            session[_SESSION_ID] = sessions_of(current_app).start(
                tenant, current_app.permanent_session_lifetime
            )
            return redirect(url_for("console.index"))
        # A 401 is what the sign-in throttle counts.
        error, status = "Wrong tenant or password.", 401
    return _signin_page(tenant, error), status


def _signin_page(tenant: str, error: str | None) -> str:
    accounts = _accounts()
    return render_template(
        "signin.html",
        configured=bool(accounts),
        # Not "tenant": base.html shows "Signed in as" for that one.
        typed_tenant=tenant,
        error=error,
        demo_passwords=current_app.config.get("CONSOLE_SHOW_PASSWORDS") and accounts,
        csrf_token=_csrf_token(),
    )


@console.errorhandler(TooManyRequests)
def throttled(error: TooManyRequests) -> Any:
    """Too many failed sign-ins from this address or for this account: wait, then try again."""
    wait = retry_after(current_app)
    tenant = request.form.get("tenant", "")[:MAX_NAME]
    page = _signin_page(tenant, f"Too many failed sign-ins: try again in {wait} s.")
    return page, 429, {"Retry-After": str(wait)}


@console.post("/signout")
def signout() -> Response:
    """End the session: the page's next call to the routes is a 401."""
    if not _csrf_ok():
        abort(400, "The form expired: reload the page and try again.")
    session_id = session.get(_SESSION_ID)
    if isinstance(session_id, str):
        # Server-side: every copy of this cookie is refused from now on.
        sessions_of(current_app).end(session_id)
    session.clear()
    return redirect(url_for("console.signin"))


@console.after_request
def security_headers(response: Response) -> Response:
    """Every console page: not framable, its own files only (see the module's docstring)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie ``Secure`` on requests that came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        # Behind a TLS-terminating proxy, request.is_secure needs werkzeug's ProxyFix.
        configured = super().get_cookie_secure(app)
        return configured or (has_request_context() and request.is_secure)


def init_console(app: Flask) -> None:
    """Mount the console on ``app`` (its ``CONSOLE_ACCOUNTS`` must already be parsed).

    The session cookie is ``SameSite=Lax`` unless the host chose otherwise (Flask's default
    holds ``None``, so a ``setdefault`` would do nothing), ``Secure`` when
    ``PREFERRED_URL_SCHEME`` is ``https`` or the request came over HTTPS, and a sign-in lasts
    :data:`SESSION_LIFETIME` unless ``PERMANENT_SESSION_LIFETIME`` was changed from Flask's
    31 days. Session records go to ``CONSOLE_SESSION_DB`` (a SQLite file; a temporary one when
    unset).
    """
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("PREFERRED_URL_SCHEME") == "https":
        app.config["SESSION_COOKIE_SECURE"] = True
    if app.permanent_session_lifetime == timedelta(days=31):
        app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.session_interface = ConsoleSessionInterface()
    app.extensions[SESSIONS] = SessionStore(app.config.get("CONSOLE_SESSION_DB") or None)
    app.register_blueprint(console)
    init_signin(app, _accounts_of_config(app), "console.signin")


def _accounts_of_config(app: Flask) -> dict[str, str]:
    accounts: dict[str, str] = app.config["CONSOLE_ACCOUNTS"]
    return accounts
