"""How the console checks a sign-in: password hashes, and throttling of failed attempts.

**Same work for every answer.** Each account's password is hashed once when the app starts
(werkzeug's :func:`~werkzeug.security.generate_password_hash`, its default method), and so is
a dummy password. A sign-in verifies the typed password against the tenant's hash or, for a
tenant that does not exist, against the dummy's: one hash verification with the same method
and parameters either way, so an unknown tenant answers no faster than a wrong password.

**Throttling** (Flask-Limiter, a well-kept library, rather than counters of our own): failed
sign-ins (answers 401) are counted per client address and per account, each against several
windows, so the wait grows with the failures: by default 5 a minute, 20 an hour and 50 a day
per account, 20 a minute, 100 an hour and 500 a day per address. Past a limit, every attempt
(the right password too) answers 429 with ``Retry-After`` until the window ends. Successful
sign-ins are not counted. The limits are ``CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT`` /
``CONSOLE_SIGNIN_LIMIT_PER_ADDRESS`` (Flask-Limiter's notation, ``;`` between windows); the
counters live in ``RATELIMIT_STORAGE_URI`` (default ``memory://``: per process, so with
several workers each counts on its own; ``redis://...`` shares them).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.security import check_password_hash, generate_password_hash

#: Failed sign-ins allowed per account, then per client address, in each window.
DEFAULT_LIMIT_PER_ACCOUNT = "5 per minute; 20 per hour; 50 per day"
DEFAULT_LIMIT_PER_ADDRESS = "20 per minute; 100 per hour; 500 per day"
#: Where the app keeps its :class:`Accounts` and its sign-in :class:`~flask_limiter.Limiter`.
ACCOUNTS = "example_app.accounts"
LIMITER = "example_app.signin_limiter"


class Accounts:
    """The console's accounts, each password kept as a hash only."""

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self._hashes = {tenant: generate_password_hash(password) for tenant, password in passwords.items()}
        # Hashed the same way as the real ones, so verifying it costs the same. With no
        # account there is nothing to tell apart, and no hash to make.
        self._dummy = generate_password_hash(secrets.token_urlsafe(32)) if self._hashes else ""

    def verify(self, tenant: str, password: str) -> bool:
        """Whether ``password`` is ``tenant``'s; one hash verification whether it exists or not."""
        if not self._hashes:
            return False
        known = tenant in self._hashes
        matches = check_password_hash(self._hashes.get(tenant, self._dummy), password)
        return known and matches


def accounts_of(app: Flask) -> Accounts:
    """The accounts :func:`init_signin` hashed for ``app``."""
    accounts = app.extensions[ACCOUNTS]
    assert isinstance(accounts, Accounts)
    return accounts


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _account_key() -> str:
    # Bounded: the field is free text, and the key is stored.
    return "account:" + request.form.get("tenant", "")[:256]


def _address_key() -> str:
    return "address:" + get_remote_address()


def _limit(name: str) -> str:
    value = current_app.config[name]
    assert isinstance(value, str)
    return value


def limiter_of(app: Flask) -> Limiter:
    """The sign-in limiter :func:`init_signin` made for ``app``."""
    limiter = app.extensions[LIMITER]
    assert isinstance(limiter, Limiter)
    return limiter


def retry_after(app: Flask) -> int:
    """Whole seconds until every limit this request breached lets the next attempt through
    (the longest wait: the limiter checks them all rather than stop at the first breach)."""
    breached = [limit.reset_at for limit in limiter_of(app).current_limits if limit.breached]
    if not breached:
        return 60
    return max(1, math.ceil(max(breached) - time.time()))


def init_signin(app: Flask, passwords: Mapping[str, str], endpoint: str) -> None:
    """Hash the accounts' passwords, and throttle failed sign-ins at ``endpoint`` of ``app``.

    A limiter per app (a :class:`~flask_limiter.Limiter` keeps its counters' storage on
    itself), wrapped around the view the app registered for ``endpoint``. With no account
    nobody can sign in: no limiter, and none of its hooks on the app's other routes.
    """
    app.config.setdefault("CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT", DEFAULT_LIMIT_PER_ACCOUNT)
    app.config.setdefault("CONSOLE_SIGNIN_LIMIT_PER_ADDRESS", DEFAULT_LIMIT_PER_ADDRESS)
    # Per process unless the host points it at a shared store (the module's docstring).
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.extensions[ACCOUNTS] = Accounts(passwords)
    if not passwords:
        return
    limiter = Limiter(
        get_remote_address,
        app=app,
        default_limits=[],
        key_prefix="example_app.signin",
        fail_on_first_breach=False,
    )
    app.extensions[LIMITER] = limiter
    # Flask-Limiter's decorator types its wrapper as possibly async; the view is not.
    view: Any = app.view_functions[endpoint]
    view = limiter.limit(
        lambda: _limit("CONSOLE_SIGNIN_LIMIT_PER_ACCOUNT"),
        key_func=_account_key,
        methods=["POST"],
        deduct_when=_failed,
    )(view)
    app.view_functions[endpoint] = limiter.limit(
        lambda: _limit("CONSOLE_SIGNIN_LIMIT_PER_ADDRESS"),
        key_func=_address_key,
        methods=["POST"],
        deduct_when=_failed,
    )(view)


def reset_throttle(app: Flask) -> None:
    """Forget every failed sign-in counted for ``app`` (tests; an operator after an incident)."""
    with app.app_context():
        limiter_of(app).reset()
