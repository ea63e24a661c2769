"""``flask livekit-moderation reconcile``: a reconciler pass from the command line.

For a cron job or a sidecar next to the app (``flask --app yourapp livekit-moderation reconcile``):

- one pass (the default): prints each participant it removed and a summary line, exit 0; when
  LiveKit or the store is unavailable (or LiveKit refuses), one line on stderr saying so, exit 1.
  A one-off pass takes no lease: it runs even while an app process reconciles.
- ``--every SECONDS``: a pass every SECONDS until SIGTERM or SIGINT (then exit 0), taking the
  reconciler's lease like the app processes do, so that it and they take turns; a failed pass is
  reported on stderr and tried again at the next one.

Every extension instance on the app is reconciled, each with its own store and LiveKit.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from ..errors import ModerationError
from .reconcile import LEASE, LEASE_INTERVALS, Pass, anything_to_enforce, new_holder, run_pass

cli = AppGroup("livekit-moderation", help="LiveKit moderation: bans.")


def _report(name: str, done: Pass) -> None:
    for removal in done.removed:
        owner = "no owner" if removal.room_owner is None else f"owner {removal.room_owner!r}"
        click.echo(f"removed {removal.participant_identity!r} from {removal.room_name!r} ({owner})")
    click.echo(
        f"{name}: {done.rooms} rooms with active bans, {done.rooms_checked} checked, "
        f"{len(done.removed)} banned participants removed"
    )


def _failed(name: str, exc: ModerationError) -> None:
    click.echo(f"error: {name}: {exc.message} ({exc.code}); nothing more was done", err=True)


@cli.command("reconcile")
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Run a pass every SECONDS until SIGTERM (taking turns with the app's reconcilers).",
)
def reconcile_command(every: float | None) -> None:
    """Remove the banned participants present in LiveKit rooms (one pass, or --every SECONDS)."""
    from ..state import app_states

    states = app_states(current_app)
    if not states:
        raise click.ClickException("no LiveKitModeration on this app")
    if every is None:
        ok = True
        for state in states:
            try:
                _report(state.name, run_pass(state))
            except ModerationError as exc:
                _failed(state.name, exc)
                ok = False
        if not ok:
            raise SystemExit(1)
        return

    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    holder = new_holder("cli")
    try:
        while not stop.is_set():
            for state in states:
                try:
                    if not anything_to_enforce(state.bans):
                        continue
                    if state.bans.lease(LEASE, holder, every * LEASE_INTERVALS) != holder:
                        continue  # an app process reconciles now
                    _report(state.name, run_pass(state))
                except ModerationError as exc:
                    _failed(state.name, exc)
            stop.wait(every)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for state in states:
            try:
                state.bans.release(LEASE, holder)
            except ModerationError:
                pass
