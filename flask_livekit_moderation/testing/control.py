"""JSON control routes of the emulator, under ``/_emulator/`` (never a twirp path).

They let a process that runs the emulator with ``python -m
flask_livekit_moderation.testing`` seed, drive and inspect it.  Every route but
``GET /_emulator/health`` needs ``Authorization: Bearer <api_secret>``.  Errors are
``{"error": "<field>: <what is wrong>"}`` with 400 (bad input), 403 (a publish the
participant's permission forbids), 404 (unknown room / participant / track / route).

========  ===========  ===============================================================
GET       health       ``{"ok": true}``
POST      seed         a seed document (see ``seeds.py``) -> ``{"rooms": [{"name", "sid",
                       "participants": {identity: {track: sid}}}]}``
POST      rooms        ``{"name", "metadata"?, "empty_timeout"?, "departure_timeout"?,
                       "max_participants"?}`` or ``{"rooms": [...]}``; an existing room changes
                       only the given fields -> ``{"rooms": [{"name", "sid", "created"}]}``
GET       rooms        -> ``{"rooms": [{"name", "sid", "metadata", "num_participants",
                       "num_publishers"}]}``
DELETE    rooms        ``{"name"}``: close the room (participants leave) -> ``{"closed": bool}``
POST      participants ``{"room", "identities": [...], "tracks"?: [[type, source, name?, muted?, sid?]
                       | {...}], "name"?, "metadata"?, "permission"?, "token"?}`` (room must exist):
                       they join -> ``{"room", "added", "count", "participants": {identity: {track:
                       sid}}}``; ``token`` (one identity): its join JWT, checked with the API secret;
                       401 when invalid or (cloud mode) revoked by RemoveParticipant
                       ``revoke_token_ts``; 409 when the room holds its ``max_participants``
GET       participants ``?room=R[&full=1]`` -> ``{"room", "count", "identities"[, "participants"]}``
POST      leave        ``{"room", "identity"}``: the participant leaves -> ``{"left": true}``
POST      tracks       ``{"room", "identity", "type", "source"?, "name"?, "muted"?, "sid"?}``: the
                       participant publishes a track -> the TrackInfo (403 when not allowed)
POST      unpublish    ``{"room", "identity", "sid"}``: the participant unpublishes it -> ``{"ok": true}``
GET       settings     -> ``{"cloud", "enable_remote_unmute", "mute_unknown_delay", "shuffle",
                       "webhook_urls", "webhook_time_scale"}``
POST      settings     any of those fields -> the settings after the change
GET       calls        ``[?records=1]`` -> ``{"total", "counts": {method: n}, "in_flight"[, "calls": [...]]}``
DELETE    calls        -> ``{"cleared": n}``
POST      latency      ``{"seconds" | "ms", "method"?, "room"?}`` -> ``{"ok": true}``
POST      faults       ``{"kind": "fail"|"garbage"|"drop"|"hang"|"redirect"|"answer", "method",
                       "n"?, "code"?, "status"?, "msg"?, "seconds"?, "location"?, "body"? |
                       "body_base64"?, "content_type"?}`` -> ``{"pending": {method: n}}``
DELETE    faults       -> ``{"ok": true}``
POST      black_hole   ``{"on": true|false}`` -> ``{"black_hole": bool}``
GET       webhooks     ``[?wait=SECONDS]`` -> ``{"deliveries": [{"id", "event", "room", "url", "status",
                       "attempts", "delivered", "error"}]}`` (``wait``: until none is pending)
POST      reset        clears rooms, calls and faults -> ``{"ok": true}``
========  ===========  ===============================================================
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from livekit.protocol import models

from .faults import Fault, FaultPlan
from .records import CallLog
from .roomservice import RoomService
from .seeds import SeedError, apply_seed, parse_permission
from .server import HttpServer
from .state import (
    EmulatorState,
    JoinRefusedError,
    PublishNotAllowedError,
    RoomFullError,
    TrackSpec,
    UnknownParticipantError,
    UnknownRoomError,
)
from .tokens import join_token_nbf
from .webhooks import WebhookSender

__all__ = ["ControlRoutes"]

_MISSING = object()
_KIND_NAMES = {
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    float: "a number",
    int: "an integer",
}


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def field(data: dict[str, Any], key: str, kind: type, default: Any = _MISSING) -> Any:
    """``data[key]`` checked against ``kind`` (numbers: int or float, never bool)."""
    if key not in data:
        if default is _MISSING:
            raise _BadRequest(f"{key}: required")
        return default
    value = data[key]
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
    if isinstance(value, bool) and kind is not bool:
        ok = False
    if not ok:
        raise _BadRequest(f"{key}: expected {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}")
    return float(value) if kind is float else value


def _track_map(p: models.ParticipantInfo) -> dict[str, str]:
    return {t.name or models.TrackSource.Name(t.source).lower(): t.sid for t in p.tracks}


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise _BadRequest("body: must be JSON") from None
    if not isinstance(data, dict):
        raise _BadRequest("body: must be a JSON object")
    return data


Route = Callable[[web.BaseRequest], Awaitable[web.Response]]


class ControlRoutes:
    """Serves ``/_emulator/<route>`` over the stand-in's parts."""

    def __init__(
        self,
        state: EmulatorState,
        service: RoomService,
        faults: FaultPlan,
        calls: CallLog,
        server: HttpServer,
        api_secret: str,
        webhooks: WebhookSender,
    ) -> None:
        self.webhooks = webhooks
        self.state = state
        self.service = service
        self.faults = faults
        self.calls = calls
        self.server = server
        self.api_secret = api_secret
        #: The API key join tokens must name (``iss``); the emulator sets it.
        self.api_key = ""
        #: Extra settings (name -> (getter, setter)) offered by ``/_emulator/settings``.
        self.settings: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
            "cloud": (
                lambda: self.state.cloud,
                lambda v: setattr(self.state, "cloud", _as(v, bool, "cloud")),
            ),
            "enable_remote_unmute": (
                lambda: self.service.enable_remote_unmute,
                lambda v: setattr(self.service, "enable_remote_unmute", _as(v, bool, "enable_remote_unmute")),
            ),
            "mute_unknown_delay": (
                lambda: self.service.mute_unknown_delay,
                lambda v: setattr(self.service, "mute_unknown_delay", _seconds(v, "mute_unknown_delay")),
            ),
            "shuffle": (
                lambda: self.service.shuffle,
                lambda v: setattr(self.service, "shuffle", _as(v, bool, "shuffle")),
            ),
            "webhook_urls": (lambda: self.webhooks.urls, self._set_webhook_urls),
            "webhook_time_scale": (
                lambda: self.webhooks.time_scale,
                lambda v: setattr(self.webhooks, "time_scale", _positive(v, "webhook_time_scale")),
            ),
        }
        self.routes: dict[tuple[str, str], Route] = {
            ("POST", "seed"): self._seed,
            ("POST", "rooms"): self._add_rooms,
            ("GET", "rooms"): self._rooms,
            ("DELETE", "rooms"): self._close_room,
            ("POST", "participants"): self._add_participants,
            ("GET", "participants"): self._participants,
            ("POST", "leave"): self._leave,
            ("POST", "tracks"): self._publish,
            ("POST", "unpublish"): self._unpublish,
            ("GET", "settings"): self._get_settings,
            ("POST", "settings"): self._set_settings,
            ("GET", "calls"): self._calls,
            ("DELETE", "calls"): self._clear_calls,
            ("POST", "latency"): self._latency,
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "black_hole"): self._black_hole,
            ("GET", "webhooks"): self._webhook_deliveries,
            ("POST", "reset"): self._reset,
        }

    def _authorized(self, request: web.BaseRequest) -> bool:
        header = request.headers.get("Authorization", "")
        expected = "Bearer " + self.api_secret
        return hmac.compare_digest(header.encode(), expected.encode())

    async def handle(self, request: web.BaseRequest, route: str) -> web.StreamResponse:
        """Serve one ``/_emulator/<route>`` request."""
        verb = request.method
        if route == "health" and verb == "GET":
            return _ok({"ok": True})
        if not self._authorized(request):
            return _ok({"error": "Authorization: control routes need 'Bearer <api_secret>'"}, 401)
        handler = self.routes.get((verb, route))
        if handler is None:
            return _ok({"error": f"route: no control route {verb} /_emulator/{route}"}, 404)
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _ok({"error": str(exc)}, exc.status)
        except (UnknownRoomError, UnknownParticipantError) as exc:
            return _ok({"error": str(exc)}, 404)
        except RoomFullError as exc:
            return _ok({"error": f"room: {exc}"}, 409)
        except JoinRefusedError as exc:
            return _ok({"error": f"token: {exc}"}, 401)
        except PublishNotAllowedError as exc:
            return _ok({"error": str(exc)}, 403)
        except (SeedError, ValueError, binascii.Error) as exc:
            return _ok({"error": str(exc)}, 400)

    # ------------------------------------------------------------- rooms
    async def _seed(self, request: web.BaseRequest) -> web.Response:
        return _ok(apply_seed(self.state, await _body(request)))

    async def _add_rooms(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        specs = field(data, "rooms", list) if "rooms" in data else [data]
        out = []
        for spec in specs:
            if not isinstance(spec, dict):
                raise _BadRequest(f"rooms: each room is an object, got {spec!r}")
            room, created = self.state.add_room(
                field(spec, "name", str),
                field(spec, "metadata", str, None),
                empty_timeout=field(spec, "empty_timeout", float, None),
                departure_timeout=field(spec, "departure_timeout", float, None),
                max_participants=field(spec, "max_participants", int, None),
            )
            out.append({"name": room.name, "sid": room.sid, "created": created})
        return _ok({"rooms": out})

    async def _rooms(self, request: web.BaseRequest) -> web.Response:
        rooms = [
            {
                "name": r.name,
                "sid": r.sid,
                "metadata": r.metadata,
                "num_participants": r.num_participants,
                "num_publishers": r.num_publishers,
            }
            for r in self.state.rooms_list()
        ]
        return _ok({"rooms": rooms})

    async def _close_room(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        return _ok({"closed": self.state.remove_room(field(data, "name", str))})

    # ------------------------------------------------------ participants
    async def _add_participants(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        room = field(data, "room", str)
        identities = field(data, "identities", list)
        if not all(isinstance(i, str) for i in identities):
            raise _BadRequest("identities: expected a list of strings")
        tracks = field(data, "tracks", list, None)
        permission = None if "permission" not in data else parse_permission(data["permission"])
        token = field(data, "token", str, None)
        nbf = None
        if token is not None:
            if len(identities) != 1:
                raise _BadRequest("token: a join token is for exactly one identity")
            nbf = join_token_nbf(token, self.api_key, self.api_secret, room, identities[0])
        added = self.state.add_participants(
            room,
            identities,
            name=field(data, "name", str, ""),
            tracks=tracks,
            metadata=field(data, "metadata", str, ""),
            permission=permission,
            token_nbf=nbf,
        )
        room_proto = self.state.room(room)
        return _ok(
            {
                "room": room,
                "added": len(added),
                "count": room_proto.num_participants if room_proto else 0,
                "participants": {p.identity: _track_map(p) for p in added},
            }
        )

    async def _participants(self, request: web.BaseRequest) -> web.Response:
        room = request.query.get("room", "")
        people = self.state.participants_of(room)
        out: dict[str, Any] = {"room": room, "count": len(people), "identities": [p.identity for p in people]}
        if request.query.get("full") in ("1", "true"):
            out["participants"] = [
                json_format.MessageToDict(p, preserving_proto_field_name=True) for p in people
            ]
        return _ok(out)

    async def _leave(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        room, identity = field(data, "room", str), field(data, "identity", str)
        if not self.state.remove_participant(room, identity):
            raise _BadRequest(f"identity: {identity!r} is not in room {room!r}", 404)
        return _ok({"left": True})

    async def _publish(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        unknown = set(data) - {"room", "identity", "type", "source", "name", "muted", "sid"}
        if unknown:
            raise _BadRequest(f"{sorted(unknown)[0]}: unknown field")
        spec = TrackSpec(
            type=field(data, "type", str),
            source=field(data, "source", str, "unknown"),
            name=field(data, "name", str, ""),
            muted=field(data, "muted", bool, False),
            sid=field(data, "sid", str, None),
        )
        track = self.state.publish_track(field(data, "room", str), field(data, "identity", str), spec)
        return _ok(json_format.MessageToDict(track, preserving_proto_field_name=True))

    async def _unpublish(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        room, identity, sid = field(data, "room", str), field(data, "identity", str), field(data, "sid", str)
        if not self.state.unpublish_track(room, identity, sid):
            raise _BadRequest(f"sid: {identity!r} has no track {sid!r}", 404)
        return _ok({"ok": True})

    # ----------------------------------------------------------- settings
    def _settings_now(self) -> dict[str, Any]:
        return {name: get() for name, (get, _) in self.settings.items()}

    async def _get_settings(self, request: web.BaseRequest) -> web.Response:
        return _ok(self._settings_now())

    async def _set_settings(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        unknown = set(data) - set(self.settings)
        if unknown:
            raise _BadRequest(f"{sorted(unknown)[0]}: unknown setting; known: {sorted(self.settings)}")
        for name, value in data.items():
            self.settings[name][1](value)
        return _ok(self._settings_now())

    # -------------------------------------------------------- calls, faults
    async def _calls(self, request: web.BaseRequest) -> web.Response:
        counts = self.calls.counts()
        out: dict[str, Any] = {
            "total": sum(counts.values()),
            "counts": counts,
            "in_flight": self.server.in_flight,
        }
        if request.query.get("records") in ("1", "true"):
            out["calls"] = [c.to_json() for c in self.calls.records()]
        return _ok(out)

    async def _clear_calls(self, request: web.BaseRequest) -> web.Response:
        return _ok({"cleared": self.calls.clear()})

    async def _latency(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        if "seconds" in data:
            seconds = field(data, "seconds", float)
        else:
            seconds = field(data, "ms", float) / 1000.0
        self.faults.set_latency(
            seconds, method=field(data, "method", str, None), room=field(data, "room", str, None)
        )
        return _ok({"ok": True})

    async def _add_fault(self, request: web.BaseRequest) -> web.Response:
        data = await _body(request)
        kind, method, n = field(data, "kind", str), field(data, "method", str), field(data, "n", int, 1)
        if kind == "fail":
            status = field(data, "status", int, None)
            fault = Fault.fail(
                field(data, "code", str, "internal"), status, field(data, "msg", str, "injected failure")
            )
        elif kind in ("garbage", "drop"):
            fault = Fault(kind)
        elif kind == "hang":
            fault = Fault("hang", seconds=field(data, "seconds", float, None))
        elif kind == "redirect":
            fault = Fault.redirect(
                field(data, "location", str, "http://127.0.0.1:9/elsewhere"), field(data, "status", int, 302)
            )
        elif kind == "answer":
            if "body_base64" in data:
                body = base64.b64decode(field(data, "body_base64", str), validate=True)
            else:
                body = field(data, "body", str, "").encode()
            fault = Fault.answer(
                field(data, "status", int, 200),
                body,
                field(data, "content_type", str, "application/protobuf"),
            )
        else:
            raise _BadRequest(f"kind: unknown fault kind {kind!r}")
        self.faults.push(method, fault, n)
        return _ok({"pending": self.faults.pending()})

    async def _clear_faults(self, request: web.BaseRequest) -> web.Response:
        self.faults.clear()
        return _ok({"ok": True})

    async def _black_hole(self, request: web.BaseRequest) -> web.Response:
        on = field(await _body(request), "on", bool)
        await (self.server.start_black_hole() if on else self.server.end_black_hole())
        return _ok({"black_hole": self.server.black_hole_open})

    def _set_webhook_urls(self, value: object) -> None:
        urls = _as(value, list, "webhook_urls")
        if not all(isinstance(u, str) for u in urls):
            raise _BadRequest("webhook_urls: expected a list of strings")
        try:
            self.webhooks.urls = urls
        except ValueError as exc:
            raise _BadRequest(f"webhook_urls: {exc}") from None

    async def _webhook_deliveries(self, request: web.BaseRequest) -> web.Response:
        if request.query.get("wait"):
            try:
                timeout = float(request.query["wait"])
            except ValueError:
                raise _BadRequest("wait: expected seconds") from None
            await asyncio.get_running_loop().run_in_executor(None, self.webhooks.wait, timeout)
        return _ok({"deliveries": [asdict(d) for d in self.webhooks.deliveries()]})

    async def _reset(self, request: web.BaseRequest) -> web.Response:
        self.state.clear()
        self.calls.clear()
        self.faults.clear()
        return _ok({"ok": True})


def _as(value: object, kind: type, name: str) -> Any:
    return field({name: value}, name, kind)


def _seconds(value: object, name: str) -> float:
    seconds: float = _as(value, float, name)
    if seconds < 0:
        raise _BadRequest(f"{name}: must be >= 0, got {seconds}")
    return seconds


def _positive(value: object, name: str) -> float:
    number: float = _as(value, float, name)
    if not number > 0:
        raise _BadRequest(f"{name}: must be > 0, got {number}")
    return number
