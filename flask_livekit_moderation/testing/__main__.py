"""Run the LiveKit stand-in as its own process.

``python -m flask_livekit_moderation.testing [--port N] [--api-key K] [--api-secret S] ...``
(``--help`` lists every option).  Once listening it prints one JSON line
``{"url", "api_key", "api_secret"}`` on stdout and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from . import control, seeds
from .emulator import CLOUD_ENV, SHUFFLE_ENV, LiveKitEmulator
from .seeds import SeedError


def _epilog() -> str:
    """Seed format and control routes, taken from the modules that implement them."""
    seed_doc = (seeds.__doc__ or "").split("\n", 4)[-1]
    routes = [
        line
        for line in (control.__doc__ or "").splitlines()
        if line[:1] in ("G", "P", "D", " ") and line.strip()
    ]
    routes = [line for line in routes if not line.startswith("They") and "``GET /_emulator" not in line]
    return (
        "Seeding: --seed FILE loads a JSON seed before the JSON line is printed.\n"
        + seed_doc
        + "\nControl routes under /_emulator/ (JSON; 'Authorization: Bearer <api_secret>' except health):\n"
        + "\n".join(line for line in routes if not line.startswith("=="))
        + f"\n\n{SHUFFLE_ENV}=1 turns --shuffle on for every stand-in started without an explicit choice.\n"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m flask_livekit_moderation.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_livekit_moderation.testing",
        description="A LiveKit RoomService stand-in over real HTTP. " + (__doc__ or "").split("\n\n")[1],
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--api-key", default=None, help="generated when omitted")
    parser.add_argument("--api-secret", default=None, help="generated when omitted")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every RoomService call")
    parser.add_argument(
        "--mute-unknown-delay-ms",
        type=float,
        default=3000.0,
        help="wait before a call to an unknown participant/room topic answers 503"
        " (default 3000: LiveKit's 3 psrpc attempts x 1 s)",
    )
    parser.add_argument(
        "--enable-remote-unmute", action="store_true", help="LiveKit's room.enable_remote_unmute"
    )
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
    parser.add_argument(
        "--empty-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a room nobody joined closes after SECONDS (LiveKit default 300)",
    )
    parser.add_argument(
        "--departure-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="a room closes SECONDS after its last participant left (LiveKit default 20)",
    )
    parser.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"answer ListRooms/ListParticipants in random order (default: on if {SHUFFLE_ENV}=1)",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="send LiveKit webhooks to URL (repeatable)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply LiveKit's periodic timers: the 1 s room ticker and the 5 s refresh of room"
        " counts, and the webhook waits unless --webhook-time-scale is given (default 1)",
    )
    parser.add_argument(
        "--webhook-time-scale",
        type=float,
        default=None,
        metavar="FACTOR",
        help="multiply the webhook retry waits (1, 2, 4, 8 s), Retry-After and the 30 s age"
        " (default: --time-scale)",
    )
    parser.add_argument(
        "--join-delay-ms",
        type=float,
        default=100.0,
        help="a joining participant is JOINING, then JOINED, then ACTIVE (participant_joined)"
        " this long after it joined (default 100)",
    )
    parser.add_argument(
        "--cloud",
        action="store_true",
        default=None,
        help="behave as LiveKit Cloud: RemoveParticipant's revoke_token_ts refuses older join tokens"
        f" (default: on if {CLOUD_ENV}=1)",
    )
    parser.add_argument("--seed", metavar="FILE", help="JSON seed of rooms, participants and tracks (below)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until SIGTERM/SIGINT; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    seed = None
    if args.seed:
        try:
            with open(args.seed, encoding="utf-8") as f:
                seed = json.load(f)
        except (OSError, ValueError) as exc:
            parser.error(f"--seed {args.seed}: {exc}")

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
        empty_timeout=args.empty_timeout,
        departure_timeout=args.departure_timeout,
        shuffle=args.shuffle,
        webhook_urls=args.webhook,
        cloud=args.cloud,
        webhook_time_scale=args.webhook_time_scale,
        time_scale=args.time_scale,
        join_delay=args.join_delay_ms / 1000.0,
    )
    if seed is not None:
        try:
            emulator.seed(seed)
        except SeedError as exc:
            parser.error(f"--seed {args.seed}: {exc}")
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
