"""``python -m example_app``: serve the example host app on 127.0.0.1:$PORT (default 5000).

With ``LIVEKIT_URL`` unset, it starts the package's LiveKit stand-in in this process,
seeds demo rooms for two tenants, turns auth on with two demo secrets, opens the moderator
console at ``/`` with a demo sign-in per tenant and prints curl commands to try. Bans are
kept in memory; the stand-in's webhooks go to the app's ``/livekit/webhook``, and banned
participants keep trying to rejoin (:class:`example_app.demo.Rejoiner`). With
``LIVEKIT_URL`` set, it talks to that server and seeds nothing. ``PORT=0`` picks a free port;
the banner names the console's URL and the last line printed before serving the app's.

:func:`running` does all of that but serving, for a test that serves the same app in a
thread and reaches the stand-in directly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_livekit_moderation.testing import LiveKitEmulator

from . import create_app, demo
from .console import moderation_of
from .join import JOIN_HOOK

HOST = "127.0.0.1"
_RULE = "=" * 72


def _stand_in_banner(
    emulator: LiveKitEmulator, rooms: list[demo.DemoRoom], base_url: str, rejoiner: demo.Rejoiner
) -> list[str]:
    lines = [
        _RULE,
        "flask-livekit-moderation example app",
        "",
        f"LiveKit: the BUILT-IN STAND-IN at {emulator.url}, not a real LiveKit server.",
        "It is an in-process imitation of LiveKit's RoomService, seeded with demo rooms,",
        "with remote unmute enabled (on a real server that needs room.enable_remote_unmute: true).",
        "To use a real LiveKit server, run instead:",
        "  LIVEKIT_URL=https://<your-livekit-host> LIVEKIT_API_KEY=<key> LIVEKIT_API_SECRET=<secret> \\",
        '  AUTH_REQUIRED=true AUTH_API_SECRETS_JSON=\'[{"id": "acme", "secret": "<token>"}]\' \\',
        "  python -m example_app",
        "Nothing is seeded then.",
        _RULE,
        "",
        f"Moderator console: {base_url}/  (open it in a browser and sign in as one tenant)",
    ]
    for account, password in demo.DEMO_PASSWORDS.items():
        lines.append(f"  tenant {account:<8} password {password}")
    lines += [
        "",
        "Auth is ON. Demo tokens (send as 'Authorization: Bearer <token>' or '?api_key=<token>'):",
    ]
    for tenant in demo.DEMO_TENANTS:
        owned = ", ".join(room.name for room in rooms if room.owner == tenant["id"])
        lines.append(f"  {tenant['id']:<8} {tenant['secret']:<20} may moderate: {owned}")
    lines += [
        "",
        "Bans are kept in memory while the app runs. The stand-in sends LiveKit's webhooks to",
        *(f"  {url}" for url in emulator.webhook_urls),
        f"each {emulator.webhook_delay:g} s late (as if every connection took that long to come up).",
        f"A banned participant of a demo room tries to rejoin every {rejoiner.interval:g} s with their old",
        "token: the webhook has them removed again, as the console shows. Lift the ban and they stay.",
        "",
        f"{demo.LOCKED_ROOM} starts LOCKED: its guests "
        + ", ".join(name for _, name in demo.DEMO_GUESTS)
        + " knock on it every "
        + f"{demo.KNOCK_INTERVAL:g} s;",
        "admit or deny them in the console's Lobby (sign in as globex). Guest page, to knock yourself:",
        f"  {base_url}/join?room={demo.LOCKED_ROOM}",
    ]
    lines += ["", "Rooms (metadata built with flask_livekit_moderation.room_metadata):"]
    for room in rooms:
        owner = f"auth_id {room.owner}" if room.owner else "no auth_id (no demo token may moderate it)"
        lines.append(f"  {room.name:<14} {owner}; metadata {room.metadata}")
        for identity, tracks in room.tracks.items():
            sids = ", ".join(f"{source} {sid}" for source, sid in tracks.items())
            lines.append(f"    {identity:<6} {sids}")
    lines += ["", "Try these, one per line:", ""]
    for curl in demo.curl_commands(base_url, rooms):
        lines += [f"# {curl.comment}", curl.command, ""]
    return lines


def _real_livekit_banner(app: Flask, base_url: str) -> list[str]:
    settings = moderation_of(app).settings
    lines = [_RULE, "flask-livekit-moderation example app", ""]
    if not settings.livekit_configured:
        lines.append(
            "LiveKit is NOT fully configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
        )
        lines.append("Until then every moderation route answers 500 LIVEKIT_NOT_CONFIGURED.")
    else:
        lines.append(f"LiveKit: the server at {settings.livekit_url} (nothing seeded).")
    if settings.auth_required:
        lines.append(f"Auth is ON with {len(settings.api_secrets)} secret(s) from AUTH_API_SECRETS_JSON.")
        token = "-H 'Authorization: Bearer <token>' "
    else:
        lines.append("Auth is OFF (AUTH_REQUIRED=false): every caller may moderate every room.")
        token = ""
    lines.append(f"Bans are enforced when LiveKit's webhook points at {base_url}{_api_base(app)}/webhook.")
    if app.config["CONSOLE_ACCOUNTS"]:
        accounts = ", ".join(sorted(app.config["CONSOLE_ACCOUNTS"]))
        lines.append(f"Moderator console: {base_url}/  (sign in as {accounts}; CONSOLE_ACCOUNTS_JSON)")
    else:
        lines.append(f"Moderator console: {base_url}/  (no accounts: set CONSOLE_ACCOUNTS_JSON to sign in)")
    lines += [
        _RULE,
        "",
        "# List a room's participants:",
        f"curl -s {token}'{base_url}/livekit/participants?room_name=<room>'",
        "",
    ]
    return lines


def _api_base(app: Flask) -> str:
    return moderation_of(app).settings.url_prefix.rstrip("/") + "/livekit"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds serve_forever, so the stand-in and the socket are closed cleanly.
    raise SystemExit(0)


@dataclass
class Running:
    """The example app, bound but not yet serving, and what the banner says about it."""

    app: Flask
    server: BaseWSGIServer
    base_url: str
    banner: list[str]
    #: The in-process stand-in and its seeded rooms; ``None`` / ``[]`` with ``LIVEKIT_URL`` set.
    emulator: LiveKitEmulator | None
    rooms: list[demo.DemoRoom]
    #: The banned participants' reconnecting apps (with the stand-in only).
    rejoiner: demo.Rejoiner | None = None
    #: The demo guests knocking on the locked demo room (with the stand-in only).
    knocker: demo.Knocker | None = None


@contextmanager
def running(
    port: int,
    *,
    rejoin_interval: float = demo.REJOIN_INTERVAL,
    webhook_delay: float = demo.WEBHOOK_DELAY,
    knock_interval: float = demo.KNOCK_INTERVAL,
) -> Iterator[Running]:
    """Everything ``main`` does but serving: the stand-in (with ``LIVEKIT_URL`` unset), its
    demo rooms, banned participants' rejoins and guests knocking on the locked room, the app,
    its server bound to ``port`` (0: a free one), the banner. ``rejoin_interval``,
    ``webhook_delay`` and ``knock_interval`` (seconds) are for tests."""
    with ExitStack() as stack:
        rooms: list[demo.DemoRoom] = []
        rejoiner = knocker = None
        if os.environ.get("LIVEKIT_URL"):
            app = create_app()
            emulator = None
        else:
            emulator = stack.enter_context(
                LiveKitEmulator(enable_remote_unmute=True, webhook_delay=webhook_delay)
            )
            rooms = demo.seed(emulator)
            app = create_app(
                {
                    "LIVEKIT_URL": emulator.url,
                    "LIVEKIT_API_KEY": emulator.api_key,
                    "LIVEKIT_API_SECRET": emulator.api_secret,
                    "LIVEKIT_MODERATION_AUTH_REQUIRED": True,
                    "LIVEKIT_MODERATION_API_SECRETS": list(demo.DEMO_TENANTS),
                    "CONSOLE_ACCOUNTS": dict(demo.DEMO_PASSWORDS),
                    "CONSOLE_SHOW_PASSWORDS": True,
                    # Never a file in the repository or the working directory.
                    "LIVEKIT_MODERATION_BAN_STORE": "memory://",
                }
            )
        # Bind before printing, so every command printed already works.
        server = make_server(HOST, port, app, threaded=True)
        stack.callback(server.server_close)
        base_url = f"http://{HOST}:{server.server_port}"
        if emulator is None:
            lines = _real_livekit_banner(app, base_url)
        else:
            # As LiveKit's config.yaml would point webhook.urls at the app (known once bound).
            emulator.webhook_urls = [f"{base_url}{_api_base(app)}/webhook"]
            rejoiner = demo.Rejoiner(emulator, moderation_of(app).bans, rooms, rejoin_interval).start()
            stack.callback(rejoiner.stop)
            demo.lock_demo_room(moderation_of(app).bans, rooms)
            knocker = demo.Knocker(app, moderation_of(app), emulator, interval=knock_interval).start()
            stack.callback(knocker.stop)
            app.extensions[JOIN_HOOK] = _joiner(emulator)
            lines = _stand_in_banner(emulator, rooms, base_url, rejoiner)
        yield Running(app, server, base_url, lines, emulator, rooms, rejoiner, knocker)


def _joiner(emulator: LiveKitEmulator) -> Callable[[str, str, str, str], bool]:
    """What a guest's LiveKit client does with the token ``/join`` gave them: join the room
    (``False``: there is no such room running)."""

    def join(room: str, identity: str, name: str, token: str) -> bool:
        if emulator.room(room) is None:
            return False
        if emulator.participant(room, identity) is None:
            emulator.join(room, identity, name=name, tracks=[], token=token)
        return True

    return join


def main() -> int:
    """Run the example app until interrupted; returns the exit status."""
    # INFO shows the extension's audit line per action on stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = int(os.environ.get("PORT") or "5000")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with running(port) as example:
        print("\n".join(example.banner))
        print(f"Serving on {example.base_url} (Ctrl+C to stop)", flush=True)
        try:
            example.server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
