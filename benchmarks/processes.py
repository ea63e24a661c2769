"""The processes a benchmark run needs: the LiveKit stand-in and gunicorn, each on its own.

Both are started with ``subprocess`` from the repository root, wait until they answer,
and stop with SIGTERM (then SIGKILL if they do not exit). ``/proc`` is read for the
workers' open file descriptors, threads and resident memory.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The repository root: gunicorn imports ``benchmarks.apps`` and ``example_app`` from here.
ROOT = Path(__file__).resolve().parent.parent

#: The single tenant the benchmark's caller belongs to, and its secret (the caller's token).
TENANT_ID = "bench-tenant"
TENANT_TOKEN = "bench-token-0123456789abcdef"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ProcStats:
    """What ``/proc/<pid>`` says about one process."""

    pid: int
    fds: int
    threads: int
    rss_kib: int

    def as_dict(self) -> dict[str, int]:
        return {"pid": self.pid, "fds": self.fds, "threads": self.threads, "rss_kib": self.rss_kib}


def proc_stats(pid: int) -> ProcStats:
    """Open fds, threads and RSS (KiB) of process ``pid``, read from ``/proc``."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return ProcStats(
        pid=pid,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
        rss_kib=int(fields["VmRSS"].split()[0]),
    )


#: Clock ticks per second, the unit of /proc/<pid>/stat's CPU times.
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` used so far, all its threads together.

    From ``/proc/<pid>/stat`` (fields 14 and 15), in clock ticks of 10 ms: measure over many
    requests, not one.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    after_name = stat.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / _TICKS


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers, for its master)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return sorted(found)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def http_json(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, Any]:
    """One JSON request with the standard library; returns (status, parsed body or text)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        answer = conn.getresponse()
        raw = answer.read()
    finally:
        conn.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw.decode(errors="replace")


class _ServerProcess:
    """A server subprocess on a free local port: started, awaited, logged and stopped alike."""

    #: Named in errors ("the stand-in exited ...").
    what = "the server"
    #: Seconds SIGTERM gets before SIGKILL.
    stop_timeout = 10.0

    def __init__(self, root: Path = ROOT) -> None:
        #: The checkout whose code runs (another one compares a past version side by side).
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def _spawn(self, command: list[str], ready: Callable[[], bool], timeout: float, env: Any = None) -> None:
        """Start ``command`` and poll ``ready`` until it holds, the process dies, or time runs out."""
        self.proc = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}: {self.log()}")
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.what} did not answer within {timeout}s: {self.log()}")
            time.sleep(0.05)

    def _answers(self, path: str) -> bool:
        return http_json(self.url, "GET", path, timeout=2)[0] == 200

    def log(self) -> str:
        """The last 4000 characters the process wrote."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL if it hangs)."""
        if self.proc is not None:
            _stop(self.proc, self.stop_timeout)
        self._log.close()

    def start(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StandIn(_ServerProcess):
    """The LiveKit stand-in run as ``python -m flask_livekit_moderation.testing``.

    ``latency_ms`` is added to every RoomService call (the simulated network round
    trip). Seeding and inspection go through its ``/_emulator/`` control routes.
    """

    module = "flask_livekit_moderation.testing"
    what = "the stand-in"

    def __init__(self, latency_ms: float = 0.0, extra_args: Sequence[str] = ()) -> None:
        super().__init__()
        self.latency_ms = latency_ms
        self.extra_args = list(extra_args)
        self.api_key = "APIbench"
        self.api_secret = "bench-livekit-secret-" + os.urandom(8).hex()

    def start(self, timeout: float = 30.0) -> StandIn:
        """Start the process and wait until its health route answers."""
        command = [
            sys.executable,
            "-m",
            self.module,
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            "--api-secret",
            self.api_secret,
            "--latency-ms",
            str(self.latency_ms),
            *self.extra_args,
        ]
        self._spawn(command, lambda: self._answers("/_emulator/health"), timeout)
        return self

    def control(self, method: str, route: str, body: Any = None) -> Any:
        """Call one ``/_emulator/<route>`` control route; raises unless it answers 200."""
        status, answer = http_json(
            self.url, method, "/_emulator/" + route, body, {"Authorization": f"Bearer {self.api_secret}"}
        )
        if status != 200:
            raise RuntimeError(f"{method} /_emulator/{route} answered {status}: {answer}")
        return answer

    def seed(
        self, rooms: Sequence[str], per_room: int, metadata: str, prefix: str = "p"
    ) -> list[tuple[str, str]]:
        """Create ``rooms``, each with ``per_room`` participants ``<prefix>0..``; returns the pairs."""
        self.control("POST", "rooms", {"rooms": [{"name": r, "metadata": metadata} for r in rooms]})
        identities = [f"{prefix}{j}" for j in range(per_room)]
        headers = {"Authorization": f"Bearer {self.api_secret}", "Content-Type": "application/json"}
        # One kept-alive connection for the many seeding requests.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            for room in rooms:
                body = json.dumps({"room": room, "identities": identities}).encode()
                conn.request("POST", "/_emulator/participants", body=body, headers=headers)
                answer = conn.getresponse()
                raw = answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"seeding {room} answered {answer.status}: {raw[:500]!r}")
        finally:
            conn.close()
        return [(room, identity) for room in rooms for identity in identities]

    def tracks(self, room: str) -> dict[str, list[str]]:
        """Each participant's published track SIDs in ``room``."""
        answer = self.control("GET", f"participants?room={room}&full=1")
        return {
            p["identity"]: [t["sid"] for t in p.get("tracks", [])] for p in answer.get("participants", [])
        }

    def reset(self) -> None:
        """Forget all rooms, participants, calls and faults."""
        self.control("POST", "reset", {})


@dataclass(frozen=True)
class WorkerSetup:
    """How gunicorn serves the app: gthread workers and threads, optionally ``--preload``."""

    workers: int = 1
    threads: int = 16
    preload: bool = True

    def describe(self) -> str:
        preload = " --preload" if self.preload else ""
        return f"gunicorn -k gthread -w {self.workers} --threads {self.threads}{preload}"


class Gunicorn(_ServerProcess):
    """gunicorn serving ``benchmarks.apps:<factory>()`` against a stand-in, on a free port."""

    what = "gunicorn"
    stop_timeout = 20.0

    def __init__(
        self,
        factory: str,
        stand_in: StandIn,
        setup: WorkerSetup,
        settings: dict[str, str] | None = None,
        root: Path = ROOT,
        *,
        limit_to_threads: bool = True,
    ) -> None:
        super().__init__(root)
        #: Size LIVEKIT_MODERATION_MAX_CONCURRENCY to the thread count (else the app's default).
        self.limit_to_threads = limit_to_threads
        self.factory = factory
        self.stand_in = stand_in
        self.setup = setup
        #: Extension settings (``LIVEKIT_MODERATION_*``) for the app, on top of the defaults below.
        self.settings = settings or {}
        # The default store (SQLite, where bans and the audit log go), in a folder of this run:
        # never the example app's instance folder in the repository.
        self._store = tempfile.TemporaryDirectory(prefix="gunicorn-store-")

    def environment(self) -> dict[str, str]:
        """The environment the app reads its configuration from."""
        return {
            **os.environ,
            "LIVEKIT_URL": self.stand_in.url,
            "LIVEKIT_API_KEY": self.stand_in.api_key,
            "LIVEKIT_API_SECRET": self.stand_in.api_secret,
            "AUTH_REQUIRED": "true",
            "AUTH_API_SECRETS_JSON": json.dumps([{"id": TENANT_ID, "secret": TENANT_TOKEN}]),
            "LIVEKIT_MODERATION_BAN_STORE": f"sqlite:///{self._store.name}/livekit_moderation.sqlite3",
            # Throughput runs let every worker thread wait on LiveKit at once.
            **(
                {"LIVEKIT_MODERATION_MAX_CONCURRENCY": str(self.setup.threads)}
                if self.limit_to_threads
                else {}
            ),
            **self.settings,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")])),
        }

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.setup.workers),
            "--threads",
            str(self.setup.threads),
            # Longer than any pause between phases, so the load generator's idle
            # keep-alive connections are not closed under it.
            "--keep-alive",
            "300",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
        ]
        if self.setup.preload:
            command.append("--preload")
        return [*command, f"benchmarks.apps:{self.factory}()"]

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start gunicorn and wait until every worker is up and ``/noop`` answers.

        Without ``--preload`` a worker imports the app after it forks, so it may not
        be ready yet when it is counted; the benchmarks use ``--preload``.
        """
        self._spawn(
            self.command(),
            lambda: len(self.workers()) == self.setup.workers and self._answers("/noop"),
            timeout,
            env=self.environment(),
        )
        return self

    def stop(self) -> None:
        super().stop()
        self._store.cleanup()

    def workers(self) -> list[int]:
        """The pids of gunicorn's worker processes."""
        assert self.proc is not None
        try:
            return child_pids(self.proc.pid)
        except FileNotFoundError:
            return []

    def worker_stats(self) -> list[ProcStats]:
        """fds, threads and RSS of every worker."""
        return [proc_stats(pid) for pid in self.workers()]
