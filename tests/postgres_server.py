"""A real PostgreSQL server for the tests (``benchmarks/postgres.py`` starts it).

Never skipped: without Debian's ``postgresql`` the tests that need it FAIL, saying how to
install it (CI installs it in ``.ci/deps``).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from benchmarks.postgres import PostgresMissing, PostgresServer, postgres_server


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A running server for the block; fails (never skips) when PostgreSQL is not installed.

    The server is stopped with a fast shutdown (SIGINT) before :func:`postgres_server` sends
    its SIGTERM: SIGTERM is PostgreSQL's *smart* shutdown, which waits for every client to
    disconnect, and an app still open at the end of a test (its pool connected) held each
    such test 15 s until the SIGKILL.
    """
    try:
        with postgres_server() as server:
            try:
                yield server
            finally:
                server.process.send_signal(signal.SIGINT)
                try:
                    server.process.wait(15)
                except subprocess.TimeoutExpired:
                    pass  # postgres_server's SIGTERM then SIGKILL follow
    except PostgresMissing as missing:
        pytest.fail(str(missing), pytrace=False)


def empty_database(url: str) -> None:
    """Make the server's database as a fresh server's: no client of an earlier test still
    connected, no table, sequence or type left (the next store creates its tables again)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
