"""What the lobby tests share: a served host app with its own join routes (knock, token)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from flask import Flask, jsonify, request

from flask_livekit_moderation import LiveKitModeration, signals
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import BAN_SIGNALS, Host
from tests.helpers import livekit_config, serve

LOCK = "/livekit/room/lock"
LOBBY = "/livekit/lobby"
ADMIT = "/livekit/lobby/admit"
DENY = "/livekit/lobby/deny"
LOBBY_SIGNALS = {
    **BAN_SIGNALS,
    "room_locked": signals.room_locked,
    "room_unlocked": signals.room_unlocked,
    "lobby_knocked": signals.lobby_knocked,
    "lobby_admitted": signals.lobby_admitted,
    "lobby_denied": signals.lobby_denied,
    "unadmitted_participant_removed": signals.unadmitted_participant_removed,
}


def make_lobby_app(emulator: LiveKitEmulator, **config: Any) -> tuple[Flask, LiveKitModeration]:
    """A bare host app with the extension and the host's own join routes: ``/knock`` (the
    lobby) and ``/token`` (``participant_token``), as a host app writes them."""
    app = Flask("host")
    app.config.update(TESTING=True, **livekit_config(emulator))
    app.config.update(config)
    moderation = LiveKitModeration(app)

    @app.post("/knock")
    def knock() -> Any:
        body = request.get_json()
        admission = moderation.knock(
            body["room"], body["identity"], name=body.get("name"), owner=body.get("owner")
        )
        return jsonify(status=admission.status, knocked_at=str(admission.knocked_at))

    @app.get("/token")
    def token() -> Any:
        jwt = moderation.participant_token(
            request.args["room"], request.args["identity"], owner=request.args.get("owner")
        )
        return jsonify(token=jwt)

    return app, moderation


class LobbyHost(Host):
    """A :class:`~tests.bans_helpers.Host` with the lobby's requests."""

    def lock(self, room: str, locked: bool = True, token: str | None = None) -> Any:
        return self.request("POST", LOCK, token, json={"room_name": room, "locked": locked})

    def lobby(self, room: str, token: str | None = None, **params: Any) -> Any:
        return self.request("GET", LOBBY, token, params={"room_name": room, **params})

    def admit(self, room: str, *identities: str, token: str | None = None) -> Any:
        return self.request(
            "POST", ADMIT, token, json={"room_name": room, "participant_identities": list(identities)}
        )

    def deny(self, room: str, *identities: str, token: str | None = None) -> Any:
        return self.request(
            "POST", DENY, token, json={"room_name": room, "participant_identities": list(identities)}
        )

    def knock(self, room: str, identity: str, name: str | None = None, owner: str | None = None) -> Any:
        body = {"room": room, "identity": identity, "name": name, "owner": owner}
        return self.request("POST", "/knock", json=body)


@contextmanager
def lobby_hosts(emulator: LiveKitEmulator) -> Iterator[Callable[..., LobbyHost]]:
    """Build served lobby hosts (each records the signals it sent); closed with the block."""
    stack = ExitStack()

    def build(**config: Any) -> LobbyHost:
        app, moderation = make_lobby_app(emulator, **config)
        stack.callback(moderation.close)
        host = LobbyHost(stack.enter_context(serve(app)), moderation)
        for name, signal in LOBBY_SIGNALS.items():

            def receiver(sender: Any, _name: str = name, **data: Any) -> None:
                host.received.append((_name, data))

            signal.connect_via(app)(receiver)
        return host

    with stack:
        yield build
