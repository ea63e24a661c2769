"""``python -m benchmarks.hops``: the extension's own functions one moderation request passes through.

One ``DELETE /livekit/participant`` (auth on with a configured secret, the memory ban store, the
audit log on, no ``Idempotency-Key``) is sent through Flask's test client to an app whose LiveKit
is the package's stand-in over real HTTP, after one warm-up request. While it runs, a profile
hook (:func:`sys.setprofile`) in the request's thread and in the LiveKit loop thread (where the
client's coroutines run) records each call of a function defined in ``flask_livekit_moderation``
(the stand-in, ``flask_livekit_moderation.testing``, is left out). It prints, per thread, each
distinct function in the order first called with how many times it was called, and the counts.

A coroutine is counted once per resumption (a profile hook sees each resumption as a call), so
the calls of the loop thread depend on how often the client's operation waited; the distinct
functions do not. On Python 3.11 a comprehension is a function of its own (``<dictcomp>``); from
3.12 it is inlined and no longer counted.

Issue 19 counted about 35 functions on main ``00a45ea``; its target is about a third of that.
This script, run against ``00a45ea`` (from a directory holding only ``benchmarks/``, with
``PYTHONPATH`` naming that checkout), prints 39 distinct functions in the request thread and 16
in the LiveKit loop thread, 54 distinct and 85 calls in all.
``tests/test_benchmark_hops_smoke.py`` runs this script and fails when the count grows back.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask

from flask_livekit_moderation import LiveKitModeration, client, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator

PACKAGE = "flask_livekit_moderation"
#: The stand-in: LiveKit's side, not the extension's.
STAND_IN = "flask_livekit_moderation.testing"
SECRET = "s-123"


def _name(frame: FrameType) -> str:
    """``module.Qualified.name`` of the frame's function, without the package prefix."""
    code = frame.f_code
    qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    if "__create_fn__" in qualname and "self" in frame.f_locals:
        # A dataclass's generated __init__: named after its class, not the generator.
        qualname = f"{type(frame.f_locals['self']).__qualname__}.{code.co_name}"
    module = str(frame.f_globals.get("__name__", ""))
    return f"{module.removeprefix(PACKAGE + '.')}.{qualname}"


def _in_loop_thread(function: Any, *args: Any) -> None:
    """Run ``function(*args)`` in the LiveKit loop thread, and wait for it."""
    done = threading.Event()

    def run() -> None:
        function(*args)
        done.set()

    # The client's loop thread is private; a benchmark may look (a profile hook is per thread,
    # and Python before 3.12 has no way to set one in a thread already running).
    client._process_loop().loop.call_soon_threadsafe(run)
    if not done.wait(5):
        raise RuntimeError("the LiveKit loop thread did not answer within 5 s")


def trace_one_delete() -> dict[str, Any]:
    """Send one warm-up and one traced ``DELETE /livekit/participant``; what the trace saw."""
    emulator = LiveKitEmulator().start()
    try:
        emulator.add_room("r", metadata=room_metadata("t"))
        emulator.add_participants("r", ["p1", "p2"])
        app = Flask("host")
        app.config.update(
            LIVEKIT_URL=emulator.url,
            LIVEKIT_API_KEY=emulator.api_key,
            LIVEKIT_API_SECRET=emulator.api_secret,
            LIVEKIT_MODERATION_AUTH_REQUIRED=True,
            LIVEKIT_MODERATION_API_SECRETS=[{"id": "t", "secret": SECRET}],
            LIVEKIT_MODERATION_BAN_STORE="memory://",
        )
        LiveKitModeration(app)
        test_client = app.test_client()
        headers = {"Authorization": f"Bearer {SECRET}"}
        warm = test_client.delete(
            "/livekit/participant", json={"room_name": "r", "participant_identity": "p1"}, headers=headers
        )
        if warm.status_code != 200:
            raise RuntimeError(f"the warm-up request answered {warm.status_code}: {warm.get_data(True)}")

        request_thread = threading.get_ident()
        seen: list[tuple[bool, str]] = []

        def profile(frame: FrameType, event: str, arg: object) -> None:
            if event != "call":
                return
            module = str(frame.f_globals.get("__name__", ""))
            if module.startswith(PACKAGE) and not module.startswith(STAND_IN):
                seen.append((threading.get_ident() == request_thread, _name(frame)))

        _in_loop_thread(sys.setprofile, profile)
        threading.setprofile(profile)  # threads started while the request runs
        sys.setprofile(profile)
        try:
            response = test_client.delete(
                "/livekit/participant", json={"room_name": "r", "participant_identity": "p2"}, headers=headers
            )
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
            _in_loop_thread(sys.setprofile, None)
        return {
            "status": response.status_code,
            "body": response.get_json(),
            "request_thread": _summary([name for mine, name in seen if mine]),
            "other_threads": _summary([name for mine, name in seen if not mine]),
            "total": _summary([name for _, name in seen]),
        }
    finally:
        emulator.stop()


def _summary(names: list[str]) -> dict[str, Any]:
    calls = Counter(names)
    return {
        "distinct": len(calls),
        "calls": len(names),
        "functions": [{"name": name, "calls": count} for name, count in calls.items()],
    }


def _print_block(title: str, block: dict[str, Any]) -> None:
    print(f"{title}: {block['distinct']} distinct functions, {block['calls']} calls")
    for function in block["functions"]:
        times = f"  x{function['calls']}" if function["calls"] > 1 else ""
        print(f"  {function['name']}{times}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    report = trace_one_delete()
    print(f"DELETE /livekit/participant -> {report['status']} {json.dumps(report['body'], sort_keys=True)}")
    print(f"Functions of {PACKAGE} (module.function, package prefix left out), in the order first called.")
    _print_block("request thread", report["request_thread"])
    _print_block("other threads (the LiveKit loop)", report["other_threads"])
    total = report["total"]
    print(f"total: {total['distinct']} distinct functions, {total['calls']} calls")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.out}")
    return 0 if report["status"] == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
