"""Server-side records of the console's signed-in sessions, so that signing out ends one.

Flask's session is a signed cookie: on its own, a copy of it stays valid until it expires,
whatever the server does. So a sign-in also writes a record here (a random session id, the
tenant, when it ends) and puts only the id in the cookie; the ``request_loader`` accepts a
cookie only while its record exists and has not ended, and signing out deletes the record.

The records are in a SQLite file (``CONSOLE_SESSION_DB``; by default a new file in a fresh
temporary directory per ``create_app``). Every gunicorn worker of one host opens that same
file, and SQLite's file locks make a write by one process visible to the next read of any
other, so a sign-out in one worker ends the session in all of them. That holds for workers
that share the path: ``--preload`` (one ``create_app``, forked) or ``CONSOLE_SESSION_DB`` set
to one file. Several hosts would need a networked store instead (Redis, PostgreSQL).

The file keeps a SHA-256 of each id, not the id: reading the file gives no cookie's contents.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
import weakref
from datetime import timedelta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    ends_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_ends_at ON console_sessions (ends_at);
"""


def _remove_if_made_by(directory: str, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(directory, ignore_errors=True)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The console's session records in one SQLite file, shared by every process that opens it."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            # A directory of our own, removed with the store (or at interpreter exit) by the
            # process that made it: a forked gunicorn worker exiting must leave it to the rest.
            directory = tempfile.mkdtemp(prefix="example-app-sessions-")
            weakref.finalize(self, _remove_if_made_by, directory, os.getpid())
            path = os.path.join(directory, "sessions.sqlite3")
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One connection per call: cheap for a local file, and safe across threads and forks
        # (a connection opened before gunicorn forks must not be used by the children).
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 10000")
        return db

    def start(self, tenant: str, lifetime: timedelta) -> str:
        """Record a new session of ``tenant`` ending after ``lifetime``; returns its id."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        db = self._connect()
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM console_sessions WHERE ends_at <= ?", (now,))
                db.execute(
                    "INSERT INTO console_sessions (id_hash, tenant, ends_at) VALUES (?, ?, ?)",
                    (_digest(session_id), tenant, now + lifetime.total_seconds()),
                )
        finally:
            db.close()
        return session_id

    def tenant_of(self, session_id: str) -> str | None:
        """The tenant of a live session, or ``None`` once it ended or was never started."""
        db = self._connect()
        try:
            row = db.execute(
                "SELECT tenant FROM console_sessions WHERE id_hash = ? AND ends_at > ?",
                (_digest(session_id), time.time()),
            ).fetchone()
        finally:
            db.close()
        return row[0] if row else None

    def end(self, session_id: str) -> None:
        """End a session (signing out): its cookie is refused from now on, in every process."""
        db = self._connect()
        try:
            with db:
                db.execute("DELETE FROM console_sessions WHERE id_hash = ?", (_digest(session_id),))
        finally:
            db.close()
