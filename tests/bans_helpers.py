"""What the ban tests share: a served host app with its own token route, and LiveKit's webhooks.

The ``hosts`` fixture (``conftest.py``) builds :class:`Host` apps; the rest are plain helpers.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, jsonify, request
from google.protobuf import json_format
from livekit.api import AccessToken
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_moderation import LiveKitModeration, signals
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import ServedApp, livekit_config

WEBHOOK = "/livekit/webhook"
BANS = "/livekit/bans"
WEBHOOK_JSON = "application/webhook+json"
BAN_SIGNALS = {
    "participant_banned": signals.participant_banned,
    "ban_lifted": signals.ban_lifted,
    "banned_participant_removed": signals.banned_participant_removed,
    "livekit_webhook_received": signals.livekit_webhook_received,
    "bans_reconciled": signals.bans_reconciled,
    "moderation_finished": signals.moderation_finished,
    "moderation_refused": signals.moderation_refused,
}


@dataclass
class Host:
    """A served host app with the extension, its own token route, and the signals it sent."""

    served: ServedApp
    moderation: LiveKitModeration
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        return self.served.request(method, path, token, **kwargs)

    def ban(self, room: str, identity: str, seconds: int = 60, token: str | None = None, **extra: Any) -> Any:
        body = {"room_name": room, "participant_identity": identity, "duration_seconds": seconds, **extra}
        return self.request("POST", BANS, token, json=body)

    def bans(self, room: str, token: str | None = None) -> Any:
        return self.request("GET", BANS, token, params={"room_name": room})

    def lift(self, room: str, identity: str, token: str | None = None) -> Any:
        return self.request("DELETE", BANS, token, json={"room_name": room, "participant_identity": identity})

    def token(self, room: str, identity: str, **params: str) -> Any:
        return self.request("GET", "/token", params={"room": room, "identity": identity, **params})

    def signalled(self, name: str) -> list[dict[str, Any]]:
        return [data for signal, data in self.received if signal == name]


def make_host(emulator: LiveKitEmulator, **config: Any) -> tuple[Flask, LiveKitModeration]:
    """A bare host app with the extension and a token route using ``participant_token``."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(emulator))
    app.config.update(config)
    moderation = LiveKitModeration(app)

    @app.get("/token")
    def token() -> Any:  # the host's own token endpoint, as the README shows
        owner = request.args.get("owner")
        jwt = moderation.participant_token(
            request.args["room"], request.args["identity"], name="Guest", owner=owner, can_publish=False
        )
        return jsonify(token=jwt)

    return app, moderation


def point_webhooks(emu: LiveKitEmulator, host: Host) -> None:
    emu.webhook_urls = [host.served.url + WEBHOOK]


def settle(emu: LiveKitEmulator) -> None:
    """Every webhook delivered and every RoomService call it caused answered."""
    assert emu.wait_webhooks(10)
    assert emu.wait_idle()


def utc(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1] + "+00:00")


def signed(
    emu: LiveKitEmulator,
    event: WebhookEvent | bytes,
    *,
    key: str | None = None,
    secret: str | None = None,
    sha256: str | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> tuple[bytes, dict[str, str]]:
    """A webhook signed as LiveKit signs one (webhook/resource_url_notifier.go), or as told."""
    body = event if isinstance(event, bytes) else json_format.MessageToJson(event, indent=None).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = AccessToken(key or emu.api_key, secret or emu.api_secret).with_ttl(ttl)
    if sha256 != "":
        token = token.with_sha256(sha256 or digest)
    return body, {"Authorization": token.to_jwt(), "Content-Type": WEBHOOK_JSON}


def joined(emu: LiveKitEmulator, room: str, identity: str, metadata: str | None = None) -> WebhookEvent:
    """The participant_joined event LiveKit sends for ``identity`` now in ``room``."""
    event = WebhookEvent(event="participant_joined", id="EV_test" + identity, created_at=int(time.time()))
    room_info = emu.room(room)
    assert room_info is not None
    event.room.CopyFrom(room_info)
    if metadata is not None:
        event.room.metadata = metadata
    participant = emu.participant(room, identity)
    assert participant is not None
    event.participant.CopyFrom(participant)
    return event


def rejoin(emu: LiveKitEmulator, room: str, identity: str, **kwargs: Any) -> models.ParticipantInfo:
    """A banned participant joins again, in both of the stand-in's modes.

    Self-hosted LiveKit lets in the token they still hold. LiveKit Cloud (``cloud`` mode,
    ``LIVEKIT_EMULATOR_CLOUD=1``) refuses every token minted before the ban's ``revoke_token_ts``
    (the ban's second + 1), so there they come back with one minted at that second (obtained
    elsewhere): either way the join reaches the app's webhook."""
    cutoff = emu.revoked().get((room, identity))
    if cutoff is not None:
        wait = cutoff - time.time()
        assert wait <= 2, f"revoked until {cutoff}: not a ban's revocation"
        time.sleep(max(0.0, wait))
    return emu.join(room, identity, **kwargs)
