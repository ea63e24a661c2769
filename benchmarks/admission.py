"""Admission under load (issue 20): healthy bursts, and a raid of banned rejoins.

``python -m benchmarks.admission [--against REV]`` serves the example app with gunicorn
``-k gthread -w 2 --threads 8`` at the extension's default settings (of the code run) against the LiveKit
stand-in (healthy, in its own process), then:

- **burst**: for each mix (remove, list, mute, mixed) and each number of concurrent clients
  (8, 16, 32, 64), ``--requests`` requests over kept-alive connections; prints the answers
  by status, how many were 503, throughput and p50/p99 latency.
- **raid**: ``--raiders`` banned identities rejoin a room and their signed
  ``participant_joined`` webhooks arrive ``--deliveries`` at a time; prints how many
  deliveries were answered 503 and how many banned participants stayed.

``--against REV`` runs the same against another commit (a temporary git worktree), side by
side: the figures of the code before a change, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from google.protobuf import json_format
from livekit.api import AccessToken
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation import room_metadata

from .load import percentile
from .processes import ROOT, TENANT_ID, TENANT_TOKEN, Gunicorn, StandIn, WorkerSetup

SETUP = WorkerSetup(workers=2, threads=8, preload=True)
MIXES = ("remove", "list", "mute", "mixed")
ROOM = "burst-room"


@dataclass
class Burst:
    """One mix at one concurrency: what came back and how fast."""

    mix: str
    clients: int
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        values = sorted(self.latencies)
        total = sum(self.statuses.values())
        refused = sum(n for status, n in self.statuses.items() if status.startswith("503"))
        return {
            "mix": self.mix,
            "clients": self.clients,
            "requests": total,
            "503": refused,
            "503_pct": 100.0 * refused / total if total else 0.0,
            "req_per_s": total / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "answers": dict(self.statuses),
        }


class Items:
    """What the mixes act on: participants to remove (once each), tracks to mute, the room."""

    def __init__(self, stand_in: StandIn, participants: int) -> None:
        stand_in.seed([ROOM], participants, room_metadata(TENANT_ID))
        tracks = stand_in.tracks(ROOM)
        identities = sorted(tracks)
        # Nobody is muted who may be removed meanwhile: a mute of someone who left waits out
        # LiveKit's RPC timeout and answers 503, which says nothing about admission.
        self._mutes = [(identity, tracks[identity][0]) for identity in identities[1::2] if tracks[identity]]
        self._removable = iter(identities[0::2])
        self._mute_index = 0

    def request(self, mix: str, n: int) -> tuple[str, str, bytes | None]:
        """The method, path and body of the ``n``-th request of ``mix``."""
        kind = MIXES[n % 3] if mix == "mixed" else mix
        body: dict[str, Any]
        if kind == "remove":
            body = {"room_name": ROOM, "participant_identity": next(self._removable)}
            return "DELETE", "/livekit/participant", json.dumps(body).encode()
        if kind == "mute":
            identity, sid = self._mutes[self._mute_index % len(self._mutes)]
            self._mute_index += 1
            body = {
                "room_name": ROOM,
                "participant_identity": identity,
                "track_sid": sid,
                # Muting again is a mute all the same (an unmute needs remote unmute enabled).
                "muted": True,
            }
            return "POST", "/livekit/participant/mute", json.dumps(body).encode()
        return "GET", f"/livekit/participants?room_name={ROOM}", None


async def _burst(base: str, items: Items, mix: str, clients: int, requests: int) -> Burst:
    result = Burst(mix, clients)
    planned = [items.request(mix, n) for n in range(requests)]
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}", "Content-Type": "application/json"}
    queue = iter(planned)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def client() -> None:
            for method, path, body in queue:
                started = time.perf_counter()
                async with session.request(method, base + path, data=body, headers=headers) as answer:
                    raw = await answer.read()
                result.latencies.append(time.perf_counter() - started)
                code = "" if answer.status == 200 else " " + str(json.loads(raw).get("code"))
                result.statuses[f"{answer.status}{code}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


@dataclass
class Raid:
    raiders: int
    deliveries: int
    answers: Counter[str] = field(default_factory=Counter)
    stayed: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "raiders": self.raiders,
            "concurrent_deliveries": self.deliveries,
            "answers": dict(self.answers),
            "503": sum(n for s, n in self.answers.items() if s.startswith("503")),
            "banned_stayed": self.stayed,
        }


def _signed(stand_in: StandIn, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
    # As LiveKit signs a webhook (livekit/protocol webhook/resource_url_notifier.go).
    body = json_format.MessageToJson(event, indent=None).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = AccessToken(stand_in.api_key, stand_in.api_secret).with_sha256(digest).to_jwt()
    return body, {"Authorization": token, "Content-Type": "application/webhook+json"}


async def _raid(base: str, stand_in: StandIn, raiders: int, deliveries: int) -> Raid:
    result = Raid(raiders, deliveries)
    room = "raided"
    metadata = room_metadata(TENANT_ID)
    stand_in.control("POST", "rooms", {"rooms": [{"name": room, "metadata": metadata}]})
    identities = [f"raider-{i}" for i in range(raiders)]
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for identity in identities:
            body = {"room_name": room, "participant_identity": identity, "duration_seconds": 600}
            async with session.post(base + "/livekit/bans", json=body, headers=headers) as answer:
                assert answer.status == 201, await answer.text()
        stand_in.control("POST", "participants", {"room": room, "identities": identities})
        signed = []
        for identity in identities:
            event = WebhookEvent(event="participant_joined", id=f"EV_{identity}", created_at=int(time.time()))
            event.room.name, event.room.metadata = room, metadata
            event.participant.identity, event.participant.sid = identity, f"PA_{identity}"
            signed.append(_signed(stand_in, event))
        pending = iter(signed)

        async def deliverer() -> None:
            for body, hook_headers in pending:
                async with session.post(base + "/livekit/webhook", data=body, headers=hook_headers) as answer:
                    await answer.read()
                    result.answers[str(answer.status)] += 1

        await asyncio.gather(*(deliverer() for _ in range(deliveries)))
    result.stayed = int(stand_in.control("GET", f"participants?room={room}")["count"])
    return result


@contextlib.contextmanager
def _checkout(rev: str | None) -> Iterator[Path]:
    """The repository root, or a temporary worktree of ``rev``."""
    if rev is None:
        yield ROOT
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def run(
    root: Path, mixes: list[str], requests: int, clients: list[int], raiders: int, deliveries: int
) -> dict[str, Any]:
    """The bursts of ``mixes`` and the raid against the code of ``root``."""
    bursts = []
    with tempfile.TemporaryDirectory() as tmp:
        # The extension's defaults: of this checkout's code, or of the commit compared with.
        settings = {"LIVEKIT_MODERATION_BAN_STORE": f"sqlite:///{tmp}/bans.sqlite3"}
        for mix in mixes:
            for n in clients:
                # A fresh stand-in and app per cell: removes consume participants, and no cell
                # inherits what the one before taught the app about LiveKit.
                with (
                    StandIn() as stand_in,
                    Gunicorn(
                        "ours", stand_in, SETUP, settings, root=root, limit_to_threads=False
                    ) as gunicorn,
                ):
                    items = Items(stand_in, 2 * requests if mix in ("remove", "mixed") else 200)
                    bursts.append(asyncio.run(_burst(gunicorn.url, items, mix, n, requests)).row())
        with (
            StandIn() as stand_in,
            Gunicorn("ours", stand_in, SETUP, settings, root=root, limit_to_threads=False) as gunicorn,
        ):
            raid = asyncio.run(_raid(gunicorn.url, stand_in, raiders, deliveries)).row()
    return {"bursts": bursts, "raid": raid}


def _print(label: str, figures: dict[str, Any]) -> None:
    print(f"\n{label}: {SETUP.describe()}, LiveKit stand-in healthy (0 ms)")
    print(f"{'mix':>8} {'clients':>8} {'503':>6} {'503 %':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for row in figures["bursts"]:
        print(
            f"{row['mix']:>8} {row['clients']:>8} {row['503']:>6} {row['503_pct']:>6.1f}% "
            f"{row['req_per_s']:>8.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}"
        )
    raid = figures["raid"]
    print(
        f"raid: {raid['raiders']} banned rejoins, {raid['concurrent_deliveries']} deliveries at once: "
        f"answers {raid['answers']}, banned participants left in the room: {raid['banned_stayed']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mixes", default=",".join(MIXES), help="bursts to run, comma-separated (none: ''")
    parser.add_argument("--requests", type=int, default=600, help="requests per mix and concurrency")
    parser.add_argument("--clients", default="8,16,32,64", help="concurrent clients, comma-separated")
    parser.add_argument("--raiders", type=int, default=300)
    parser.add_argument("--deliveries", type=int, default=32)
    parser.add_argument("--against", metavar="REV", help="also run the code of this commit, side by side")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    report: dict[str, Any] = {}
    runs: list[tuple[str, str | None]] = [("this checkout", None)]
    if args.against:
        runs.insert(0, (f"at {args.against}", args.against))
    for label, rev in runs:
        with _checkout(rev) as root:
            mixes = [mix for mix in args.mixes.split(",") if mix]
            report[label] = run(root, mixes, args.requests, clients, args.raiders, args.deliveries)
        _print(label, report[label])
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
