"""A real PostgreSQL server for the tests (``benchmarks/postgres.py`` starts it).

Never skipped: without Debian's ``postgresql`` the tests that need it FAIL, saying how to
install it (CI installs it in ``.ci/deps``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from benchmarks.postgres import PostgresMissing, PostgresServer, postgres_server

TABLES = (
    "livekit_moderation_bans",
    "livekit_moderation_leases",
    "livekit_moderation_idempotency",
    "livekit_moderation_audit",
)


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A running server for the block; fails (never skips) when PostgreSQL is not installed."""
    try:
        with postgres_server() as server:
            yield server
    except PostgresMissing as missing:
        pytest.fail(str(missing), pytrace=False)


def drop_tables(url: str) -> None:
    """Start from an empty database: the next store creates its tables again."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
