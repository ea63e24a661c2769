"""The built wheel, alone in a fresh venv at the dependency floors, imports and serves a request.

Run by ``.ci/floors.sh`` with that venv's Python, from outside the checkout, so what is imported
is the installed wheel and nothing of the source tree: a module or data file the wheel forgot
fails here. The request goes to the package's own LiveKit stand-in over real HTTP.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from flask import Flask

import flask_livekit_moderation
from flask_livekit_moderation import LiveKitModeration, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator

installed = Path(sysconfig.get_paths()["purelib"]).resolve()
source = Path(flask_livekit_moderation.__file__).resolve()
assert source.is_relative_to(installed), f"imported {source}, not the wheel under {installed}"
assert flask_livekit_moderation.__version__ != "0.0.0", "no package metadata: not the installed wheel"

with LiveKitEmulator() as emulator:
    emulator.add_room("standup", metadata=room_metadata("acme"))
    emulator.add_participant("standup", "alice")
    app = Flask("wheel_smoke")
    app.config.update(
        LIVEKIT_URL=emulator.url,
        LIVEKIT_API_KEY=emulator.api_key,
        LIVEKIT_API_SECRET=emulator.api_secret,
        LIVEKIT_MODERATION_AUTH_REQUIRED=True,
        LIVEKIT_MODERATION_API_SECRETS=[{"id": "acme", "secret": "wheel-smoke-token"}],
        LIVEKIT_MODERATION_BAN_STORE="memory://",
        LIVEKIT_MODERATION_RECONCILE_INTERVAL=0,
    )
    moderation = LiveKitModeration(app)
    client = app.test_client()
    auth = {"Authorization": "Bearer wheel-smoke-token"}
    listed = client.get("/livekit/participants?room_name=standup", headers=auth)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [p["identity"] for p in listed.get_json()["participants"]] == ["alice"]
    removed = client.delete(
        "/livekit/participant", json={"room_name": "standup", "participant_identity": "alice"}, headers=auth
    )
    assert removed.status_code == 200 and emulator.participant("standup", "alice") is None
    document = client.get("/livekit/openapi.json")
    assert document.status_code == 200 and "/livekit/participants" in document.get_json()["paths"]
    moderation.close()

version = flask_livekit_moderation.__version__
print(f"[wheel] flask-livekit-moderation {version} from {source}: listed, removed, openapi.json")
