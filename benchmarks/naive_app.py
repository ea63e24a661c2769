"""The reference "naive" implementation: what LiveKit's docs lead a Flask user to write.

An ``async def`` view per route that opens ``async with LiveKitAPI(...)`` for every
request (so a new event loop, ``aiohttp`` session and TCP connection each time) and
awaits the obvious sequence one call after another:

* check the room: ListRooms (exists, owned by the caller) + ListParticipants;
* find the participant: ListParticipants again;
* act: RemoveParticipant, or MutePublishedTrack once the track is seen in the listing.

It checks the same things our routes do (caller token, room ownership, participant and
track exist), so the comparison is about how the calls are made, not what is checked.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from flask import Flask, jsonify, request
from livekit.api import LiveKitAPI, TwirpError
from livekit.protocol.room import (
    ListParticipantsRequest,
    ListRoomsRequest,
    MuteRoomTrackRequest,
    RoomParticipantIdentity,
)


def _tenant_of(token: str, tenants: list[dict[str, str]]) -> str | None:
    for tenant in tenants:
        if hmac.compare_digest(token.encode(), tenant["secret"].encode()):
            return tenant["id"]
    return None


def create_naive_app() -> Flask:
    """The naive app, configured from the same environment variables as ``example_app``."""
    app = Flask(__name__)
    url = os.environ["LIVEKIT_URL"]
    api_key = os.environ["LIVEKIT_API_KEY"]
    api_secret = os.environ["LIVEKIT_API_SECRET"]
    tenants: list[dict[str, str]] = json.loads(os.environ.get("AUTH_API_SECRETS_JSON", "[]"))

    def caller() -> str | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return _tenant_of(token, tenants) if token else None

    def owned(metadata: str, tenant: str) -> bool:
        try:
            return bool(json.loads(metadata or "{}").get("auth_id") == tenant)
        except ValueError:
            return False

    async def check_room(lk: LiveKitAPI, room_name: str, tenant: str) -> bool:
        rooms = await lk.room.list_rooms(ListRoomsRequest(names=[room_name]))
        room = next((r for r in rooms.rooms if r.name == room_name), None)
        if room is None or not owned(room.metadata, tenant):
            return False
        listing = await lk.room.list_participants(ListParticipantsRequest(room=room_name))
        return len(listing.participants) > 0

    async def find_participant(lk: LiveKitAPI, room_name: str, identity: str) -> Any:
        listing = await lk.room.list_participants(ListParticipantsRequest(room=room_name))
        return next((p for p in listing.participants if p.identity == identity), None)

    @app.delete("/livekit/participant")
    async def remove_participant() -> Any:
        tenant = caller()
        if tenant is None:
            return jsonify(error="Unauthorized"), 401
        body = request.get_json(silent=True) or {}
        room_name, identity = body.get("room_name"), body.get("participant_identity")
        if not isinstance(room_name, str) or not isinstance(identity, str):
            return jsonify(error="room_name and participant_identity are required"), 400
        try:
            async with LiveKitAPI(url, api_key, api_secret) as lk:
                if not await check_room(lk, room_name, tenant):
                    return jsonify(error="Participant not found"), 404
                if await find_participant(lk, room_name, identity) is None:
                    return jsonify(error="Participant not found"), 404
                await lk.room.remove_participant(RoomParticipantIdentity(room=room_name, identity=identity))
        except TwirpError as exc:
            return jsonify(error=exc.message), 404 if exc.code == "not_found" else 500
        return jsonify(status="removed", room_name=room_name, participant_identity=identity)

    @app.post("/livekit/participant/mute")
    async def mute_track() -> Any:
        tenant = caller()
        if tenant is None:
            return jsonify(error="Unauthorized"), 401
        body = request.get_json(silent=True) or {}
        room_name, identity = body.get("room_name"), body.get("participant_identity")
        track_sid, muted = body.get("track_sid"), body.get("muted")
        if (
            not isinstance(room_name, str)
            or not isinstance(identity, str)
            or not isinstance(track_sid, str)
            or not isinstance(muted, bool)
        ):
            return jsonify(error="room_name, participant_identity, track_sid and muted are required"), 400
        try:
            async with LiveKitAPI(url, api_key, api_secret) as lk:
                if not await check_room(lk, room_name, tenant):
                    return jsonify(error="Participant not found"), 404
                participant = await find_participant(lk, room_name, identity)
                if participant is None:
                    return jsonify(error="Participant not found"), 404
                if not any(track.sid == track_sid for track in participant.tracks):
                    return jsonify(error="Track not found"), 404
                answer = await lk.room.mute_published_track(
                    MuteRoomTrackRequest(room=room_name, identity=identity, track_sid=track_sid, muted=muted)
                )
        except TwirpError as exc:
            return jsonify(error=exc.message), 500
        return jsonify(
            room_name=room_name, participant_identity=identity, track_sid=track_sid, muted=answer.track.muted
        )

    return app
