"""The example app run as production runs it, each server in its own process: gunicorn, the
werkzeug dev server (``flask run``) and Debian's nginx in front, all on loopback ports.

Used by the deployment and log-redaction tests (issue 24); the LiveKit stand-in is
:class:`benchmarks.processes.StandIn`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.processes import ROOT, StandIn, _ServerProcess, free_port

#: The nginx configuration the deployment guide ships: the tests serve exactly this file.
NGINX_SITE = ROOT / "docs" / "deploy" / "nginx.conf"
#: The tenant of the served example app, and its caller secret.
TENANT, TOKEN = "acme", "tok-acme-4c1d2e9f7a"


def address_of(url: str) -> tuple[str, int]:
    """The (host, port) of ``http://host:port``."""
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None, url
    return address.hostname, address.port


def app_environment(stand_in: StandIn) -> dict[str, str]:
    """The example app's environment, as the README's deployment command sets it."""
    return {
        **os.environ,
        "LIVEKIT_URL": stand_in.url,
        "LIVEKIT_API_KEY": stand_in.api_key,
        "LIVEKIT_API_SECRET": stand_in.api_secret,
        "AUTH_REQUIRED": "true",
        "AUTH_API_SECRETS_JSON": json.dumps([{"id": TENANT, "secret": TOKEN}]),
        # Every write is recorded in the audit log, kept in the ban store: a file of this run,
        # never the example app's instance folder in the repository.
        "LIVEKIT_MODERATION_BAN_STORE": "sqlite:///"
        + os.path.join(tempfile.mkdtemp(prefix="served-store-"), "livekit_moderation.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


class ServedApp(_ServerProcess):
    """The example app under ``command`` (``{port}`` in it is the free port), output kept whole."""

    def __init__(self, what: str, command: Sequence[str], stand_in: StandIn) -> None:
        super().__init__()
        self.what = what
        self._command = [part.replace("{port}", str(self.port)) for part in command]
        self.stand_in = stand_in

    def start(self, timeout: float = 60.0) -> ServedApp:
        self._spawn(
            self._command, lambda: self._answers("/healthz"), timeout, env=app_environment(self.stand_in)
        )
        return self

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """Stop it and keep its output readable."""
        if self.proc is not None:
            from benchmarks.processes import _stop

            _stop(self.proc, self.stop_timeout)


def gunicorn(stand_in: StandIn, *options: str) -> ServedApp:
    """The README's ``gunicorn -k gthread -w 2 --threads 16 'example_app:create_app()'`` on a free
    loopback port, ``options`` added."""
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "16"]
    command += ["-b", "127.0.0.1:{port}", *options, "example_app:create_app()"]
    return ServedApp("gunicorn", command, stand_in)


def connections_held(app: ServedApp) -> dict[int, int]:
    """How many established connections to ``app``'s port each of its worker processes holds
    (the master's children, read from ``/proc``): the kernel hands a burst of connections to
    whichever worker accepts first, rarely evenly."""
    assert app.proc is not None
    workers = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:  # the process ended while we looked
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == app.proc.pid:
            workers.append(int(entry))
    established = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == app.port and fields[3] == "01":  # 01: ESTABLISHED
            established[fields[9]] = True
    held = {}
    for worker in workers:
        sockets = set()
        try:
            descriptors = os.listdir(f"/proc/{worker}/fd")
        except OSError:  # the worker ended
            continue
        for fd in descriptors:
            try:
                target = os.readlink(f"/proc/{worker}/fd/{fd}")
            except OSError:  # closed while we looked
                continue
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
        held[worker] = len(sockets & established.keys())
    return held


def flask_run(stand_in: StandIn) -> ServedApp:
    """The werkzeug development server: ``flask --app 'example_app:create_app()' run``."""
    command = [sys.executable, "-m", "flask", "--app", "example_app:create_app()", "run", "--port", "{port}"]
    return ServedApp("flask run", command, stand_in)


def nginx_config(site: str, listen_port: int, upstream_port: int, workdir: Path) -> str:
    """A complete nginx.conf for an unprivileged nginx in ``workdir`` around the shipped ``site``,
    its listen address, upstream and log directory moved to the test's (nothing else changed)."""
    moved = {
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/var/log/nginx/": f"{workdir}/",
    }
    for shipped, here in moved.items():
        assert site.count(shipped) == 1, f"the shipped site changed: {shipped!r}"
        site = site.replace(shipped, here)
    (workdir / "site.conf").write_text(site)
    # What Debian's /etc/nginx/nginx.conf would give, pointed at the temporary directory.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {workdir / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
{temp}
    include {workdir / "site.conf"};
}}
"""


@contextmanager
def nginx(upstream_port: int, workdir: Path) -> Iterator[tuple[str, Path]]:
    """Debian's nginx serving the shipped site in front of ``upstream_port``; yields its URL and
    its access log."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(NGINX_SITE.read_text(), port, upstream_port, workdir))
    access_log = workdir / "livekit-moderation.access.log"
    directives = f"daemon off; pid {workdir / 'nginx.pid'}; error_log {workdir / 'error.log'} warn;"
    proc = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(config), "-g", directives],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen within 20 s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", access_log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
