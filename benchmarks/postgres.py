"""A real PostgreSQL server for the tests and the ban benchmark: Debian's ``postgresql``.

``initdb`` into a temporary directory, then ``postgres`` on a free loopback port, trust
authentication for the ``postgres`` user, nothing else on the machine touched. As root, both
run as the ``postgres`` user (PostgreSQL refuses to run as root); the directory is given to
it. ``.ci/deps`` installs the package; its binaries are found on ``PATH`` or under
``/usr/lib/postgresql/<version>/bin``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

INSTALL_HINT = (
    "PostgreSQL is not installed: run `bash .ci/deps` or `apt-get install -y postgresql` "
    "(the PostgreSQL ban-store tests never skip)"
)
#: The server's own settings: fast, since the data is thrown away (no fsync).
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


class PostgresMissing(RuntimeError):
    """No ``initdb``/``postgres`` binary on this machine."""


def binary(name: str) -> str:
    """The path of PostgreSQL's ``name`` (``initdb``, ``postgres``): on PATH, else the newest
    Debian install; :class:`PostgresMissing` when there is none."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if not candidates:
        raise PostgresMissing(INSTALL_HINT)
    return max(candidates, key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running ``postgres``."""

    port: int
    process: subprocess.Popen[bytes]
    directory: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _answers(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_server(timeout: float = 30.0) -> Iterator[PostgresServer]:
    """Start PostgreSQL on 127.0.0.1 and a free port for the block; stop it (SIGTERM: a fast
    shutdown, then SIGKILL) and delete its data afterwards."""
    initdb, postgres = binary("initdb"), binary("postgres")
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    user = None if owner is None else owner.pw_uid
    group = None if owner is None else owner.pw_gid
    extra_groups: list[int] | None = None if owner is None else []
    directory = tempfile.mkdtemp(prefix="postgres-test-")
    try:
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        data = os.path.join(directory, "data")
        done = subprocess.run(
            [initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True,
            check=False,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"initdb failed ({done.returncode}): {why}")
        port = _free_port()
        command = [postgres, "-D", data, "-p", str(port), "-c", "listen_addresses=127.0.0.1"]
        command += ["-c", f"unix_socket_directories={directory}"]
        for setting in SETTINGS:
            command += ["-c", setting]
        log = open(os.path.join(directory, "server.log"), "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, user=user, group=group, extra_groups=extra_groups
        )
        try:
            deadline = time.monotonic() + timeout
            while not _answers(port):
                if process.poll() is not None:
                    raise RuntimeError(f"postgres exited with {process.returncode}: {_tail(directory)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not answer on port {port} within {timeout}s: {_tail(directory)}"
                    )
                time.sleep(0.05)
            yield PostgresServer(port, process, directory)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _tail(directory: str) -> str:
    try:
        with open(os.path.join(directory, "server.log"), "rb") as log:
            return log.read().decode(errors="replace")[-2000:]
    except OSError:
        return ""
