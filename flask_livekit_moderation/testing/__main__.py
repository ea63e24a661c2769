"""Run the LiveKit stand-in as its own process.

``python -m flask_livekit_moderation.testing --port N --api-key K --api-secret S
[--host H] [--latency-ms L] [--mute-unknown-delay-ms D] [--enable-remote-unmute]
[--max-calls N]``

Once listening it prints one JSON line ``{"url", "api_key", "api_secret"}`` on
stdout and serves until SIGTERM or SIGINT.  Seed and inspect it through the
``/_emulator/`` control routes (see ``control.py``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from .emulator import LiveKitEmulator


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flask_livekit_moderation.testing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--api-key", default=None, help="generated when omitted")
    parser.add_argument("--api-secret", default=None, help="generated when omitted")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every RoomService call")
    parser.add_argument(
        "--mute-unknown-delay-ms",
        type=float,
        default=1000.0,
        help="wait before MutePublishedTrack on an unknown participant answers 503",
    )
    parser.add_argument("--enable-remote-unmute", action="store_true")
    parser.add_argument(
        "--max-calls",
        type=int,
        default=100_000,
        help="call records kept for /_emulator/calls (counts are always complete); 0 = all",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        metavar="SECONDS",
        help="idle keep-alive connections are closed after SECONDS (fractions allowed, e.g. 0.05)",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    # Handlers go in before we announce readiness, so a SIGTERM sent right after
    # the JSON line is never lost.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    emulator = LiveKitEmulator(
        api_key=args.api_key,
        api_secret=args.api_secret,
        port=args.port,
        host=args.host,
        latency=args.latency_ms / 1000.0,
        mute_unknown_delay=args.mute_unknown_delay_ms / 1000.0,
        enable_remote_unmute=args.enable_remote_unmute,
        max_calls=args.max_calls or None,
        keepalive_timeout=args.keepalive_timeout,
    )
    emulator.start()
    try:
        print(
            json.dumps({"url": emulator.url, "api_key": emulator.api_key, "api_secret": emulator.api_secret}),
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
