"""The "DIY" reference: what a careful developer writes by hand, without the extension.

One persistent ``LiveKitAPI`` per worker thread, on that thread's own event loop (no thread
handoff, no new connection per request), making the same LiveKit calls our routes make, in the
same shape (README "LiveKit calls per request"):

* remove: ListRooms (the room is the caller's), then RemoveParticipant;
* mute: ListRooms and GetParticipant at once, then MutePublishedTrack.

It checks what our routes check (caller token, room ownership, participant and track) and
answers the same JSON, but has none of the rest: no deadline across calls, no outage guard
or admission, no stale-connection retry, no signals, logs or body validation beyond the keys.
It is the CPU floor our routes are compared with (``python -m benchmarks --cpu-rounds``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
from typing import Any

from flask import Flask, jsonify, request
from livekit.api import LiveKitAPI, TwirpError
from livekit.protocol.room import (
    ListRoomsRequest,
    MuteRoomTrackRequest,
    RoomParticipantIdentity,
)

_NOT_FOUND = ({"error": "Participant not found.", "code": "PARTICIPANT_NOT_FOUND"}, 404)


def create_diy_app() -> Flask:
    """The DIY app, configured from the same environment variables as ``example_app``."""
    app = Flask(__name__)
    url = os.environ["LIVEKIT_URL"]
    api_key = os.environ["LIVEKIT_API_KEY"]
    api_secret = os.environ["LIVEKIT_API_SECRET"]
    tenants: list[dict[str, str]] = json.loads(os.environ.get("AUTH_API_SECRETS_JSON", "[]"))
    local = threading.local()

    def livekit() -> tuple[asyncio.AbstractEventLoop, LiveKitAPI]:
        if not hasattr(local, "loop"):
            local.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(local.loop)
            local.api = local.loop.run_until_complete(_make_api(url, api_key, api_secret))
        return local.loop, local.api

    def caller() -> str | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        for tenant in tenants:
            if token and hmac.compare_digest(token.encode(), tenant["secret"].encode()):
                return tenant["id"]
        return None

    async def owned(lk: LiveKitAPI, room_name: str, tenant: str) -> bool:
        rooms = await lk.room.list_rooms(ListRoomsRequest(names=[room_name]))
        for room in rooms.rooms:
            if room.name == room_name:
                try:
                    return bool(json.loads(room.metadata or "{}").get("auth_id") == tenant)
                except ValueError:
                    return False
        return False

    @app.delete("/livekit/participant")
    def remove() -> Any:
        tenant = caller()
        if tenant is None:
            return jsonify({"error": "Unauthorized.", "code": "UNAUTHORIZED"}), 401
        body = request.get_json()
        room_name, identity = body["room_name"], body["participant_identity"]
        loop, lk = livekit()

        async def run() -> bool:
            if not await owned(lk, room_name, tenant):
                return False
            try:
                await lk.room.remove_participant(RoomParticipantIdentity(room=room_name, identity=identity))
            except TwirpError:
                return False
            return True

        if not loop.run_until_complete(run()):
            body, status = _NOT_FOUND
            return jsonify(body), status
        return jsonify({"status": "removed", "room_name": room_name, "participant_identity": identity})

    @app.post("/livekit/participant/mute")
    def mute() -> Any:
        tenant = caller()
        if tenant is None:
            return jsonify({"error": "Unauthorized.", "code": "UNAUTHORIZED"}), 401
        body = request.get_json()
        room_name, identity, track_sid = body["room_name"], body["participant_identity"], body["track_sid"]
        loop, lk = livekit()

        async def run() -> bool | None:
            ownership = asyncio.ensure_future(owned(lk, room_name, tenant))
            lookup = asyncio.ensure_future(
                lk.room.get_participant(RoomParticipantIdentity(room=room_name, identity=identity))
            )
            try:
                participant = await lookup
            except TwirpError:
                await ownership
                return None
            if not await ownership or not any(t.sid == track_sid for t in participant.tracks):
                return None
            answer = await lk.room.mute_published_track(
                MuteRoomTrackRequest(
                    room=room_name, identity=identity, track_sid=track_sid, muted=body["muted"]
                )
            )
            return answer.track.muted

        muted = loop.run_until_complete(run())
        if muted is None:
            body, status = _NOT_FOUND
            return jsonify(body), status
        return jsonify(
            {"room_name": room_name, "participant_identity": identity, "track_sid": track_sid, "muted": muted}
        )

    return app


async def _make_api(url: str, api_key: str, api_secret: str) -> LiveKitAPI:
    # LiveKitAPI opens its aiohttp session on the running loop: made inside it.
    return LiveKitAPI(url, api_key, api_secret)
