"""The guest's page, ``/join``: pick a name, knock on a room, wait, and join once admitted.

It is the host's own join route, as a host app writes one with the extension's Python API
(never the moderator routes): :meth:`~flask_livekit_moderation.LiveKitModeration.knock` says
``admitted``, ``waiting`` or ``denied``; once admitted,
:meth:`~flask_livekit_moderation.LiveKitModeration.participant_token` gives the LiveKit token
(it refuses a banned identity, then one a locked room did not admit). The guest's identity is
made on their first knock and kept in their session, so knocking again is the same person.

With the demo's stand-in, the app also joins the guest into the room with that token
(``app.extensions[JOIN_HOOK]``, set by ``python -m example_app``): a real app's page would hand
the token to the LiveKit client SDK instead.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, current_app, jsonify, render_template, request, session

from flask_livekit_moderation import ModerationError, ParticipantBanned, ParticipantNotAdmitted

from .console import MAX_NAME, moderation_of

join = Blueprint("join", __name__)

#: ``app.extensions`` key of the demo's ``(room, identity, name, token) -> bool`` that joins a
#: guest into the stand-in's room once they have a token (``False``: no such room).
JOIN_HOOK = "example_app.join_hook"
#: Longest display name a guest may pick.
MAX_GUEST_NAME = 64
_GUESTS = "guests"


def _identity(room: str, name: str) -> str:
    """This browser's identity for ``room`` (made from the name on the first knock)."""
    guests: dict[str, str] = session.setdefault(_GUESTS, {})
    if room not in guests:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24] or "guest"
        guests[room] = f"guest-{slug}-{secrets.token_hex(3)}"
        session.modified = True
    return guests[room]


@join.get("/join")
def page() -> Any:
    """The guest's form: a room and a name."""
    return render_template("join.html", room=request.args.get("room", "")[:MAX_NAME], max_name=MAX_GUEST_NAME)


@join.post("/join/knock")
def knock() -> Any:
    """``{"room", "name"}`` -> ``{"status", "identity", ...}``; with ``token`` once admitted."""
    if not request.is_json:
        abort(415)  # JSON only: another site's <form> cannot knock with this browser's session
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400)
    room, name = body.get("room"), body.get("name")
    if not isinstance(room, str) or not room.strip() or len(room) > MAX_NAME:
        return jsonify(error="Pick a room (at most 256 characters)."), 400
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_GUEST_NAME:
        return jsonify(error=f"Pick a name (1 to {MAX_GUEST_NAME} characters)."), 400
    name = name.strip()
    identity = _identity(room, name)
    moderation = moderation_of(current_app)
    try:
        admission = moderation.knock(room, identity, name=name)
        answer: dict[str, Any] = {
            "status": admission.status,
            "identity": identity,
            "name": name,
            "room": room,
        }
        if admission.admitted:
            token = moderation.participant_token(room, identity, name=name)
            answer["token"] = token
            hook: Callable[[str, str, str, str], bool] | None = current_app.extensions.get(JOIN_HOOK)
            answer["joined"] = hook is not None and hook(room, identity, name, token)
    except ParticipantBanned:
        return jsonify(status="banned", identity=identity, name=name, room=room)
    except ParticipantNotAdmitted:  # denied between the knock and the token
        return jsonify(status="denied", identity=identity, name=name, room=room)
    except ModerationError as exc:
        return jsonify(error=exc.message, code=exc.code), exc.status
    return jsonify(answer)


def init_join(app: Flask) -> None:
    """Mount the guest's page on ``app``."""
    app.register_blueprint(join)
