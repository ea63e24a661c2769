"""A real Redis server for the tests: Debian's ``redis-server`` on a free loopback port.

Never skipped: without ``redis-server`` the tests that need it FAIL, saying how to install it
(CI installs it in ``.ci/run``). Each server runs in a temporary directory, persists nothing,
and is stopped (SIGTERM, then SIGKILL) when its block ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

INSTALL_HINT = (
    "redis-server is not installed: run `bash .ci/deps` or `apt-get install -y redis-server` "
    "(the Redis ban-store tests never skip)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RedisServer:
    """A running ``redis-server``."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def empty_redis(server: RedisServer) -> None:
    """Make ``server`` as a fresh one: every key of every database gone, no client of an
    earlier test still connected."""
    client = redis.Redis.from_url(server.url, socket_timeout=10)
    try:
        client.flushall()
        client.client_kill_filter(_type="normal", skipme=True)
    finally:
        client.close()


@contextmanager
def redis_server(
    port: int | None = None, timeout: float = 10.0, args: Sequence[str] = ()
) -> Iterator[RedisServer]:
    """Start ``redis-server`` on 127.0.0.1 and ``port`` (default: a free one); fail (never
    skip) if it is missing. ``args`` come after the defaults (and so override them)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    with tempfile.TemporaryDirectory(prefix="redis-test-") as directory:
        port = port or free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                directory,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while not _answers(port):
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with {process.returncode} on port {port}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer on port {port} within {timeout}s")
                time.sleep(0.02)
            yield RedisServer(port, process)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
