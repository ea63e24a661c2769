"""JSON control routes of the emulator, under ``/_emulator/`` (never a twirp path).

They let a process that runs the emulator with ``python -m
flask_livekit_moderation.testing`` seed and inspect it.  Every route but
``GET /_emulator/health`` needs ``Authorization: Bearer <api_secret>``.

========  ==========================  =============================================
GET       health                      ``{"ok": true}``
POST      rooms                       ``{"name", "metadata"?}`` or ``{"rooms": [{"name", "metadata"?}, ...]}``
                                      -> ``{"rooms": [{"name", "sid"}, ...]}``
GET       rooms                       -> ``{"rooms": [{"name", "sid", "metadata", "num_participants",
                                      "num_publishers"}]}``
POST      participants                ``{"room", "identities": [...], "tracks"?: [[type, source], ...],
                                      "metadata"?}``
                                      -> ``{"room", "added", "count"}`` (room must exist)
GET       participants?room=R[&full=1]  -> ``{"room", "count", "identities"[, "participants"]}``
GET       calls[?records=1]           -> ``{"total", "counts": {method: n}[, "calls": [CallRecord...]]}``
                                      (records: the newest ``--max-calls`` only; counts: all)
DELETE    calls                       -> ``{"cleared": n}``
POST      latency                     ``{"seconds"| "ms", "method"?}`` -> ``{"ok": true}``
POST      faults                      ``{"kind": "fail"|"garbage"|"drop"|"hang"|"redirect"|"answer", "method",
                                      "n"?, "code"?, "status"?, "msg"?, "seconds"?, "location"?, "body"?
                                      | "body_base64"?, "content_type"?}`` -> ``{"pending": {method: n}}``
POST      black_hole                  ``{"on": true|false}`` -> ``{"black_hole": bool}``
DELETE    faults                      -> ``{"ok": true}``
POST      reset                       clears rooms, calls and faults -> ``{"ok": true}``
========  ==========================  =============================================
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from .faults import Fault, FaultPlan
from .records import CallLog
from .server import HttpServer
from .state import EmulatorState, UnknownRoomError

__all__ = ["ControlRoutes"]


class _BadRequest(Exception):
    pass


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise _BadRequest("body must be JSON") from None
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


class ControlRoutes:
    """Serves ``/_emulator/<route>`` over the stand-in's parts."""

    def __init__(
        self, state: EmulatorState, faults: FaultPlan, calls: CallLog, server: HttpServer, api_secret: str
    ) -> None:
        self.server = server
        self.state = state
        self.faults = faults
        self.calls = calls
        self.api_secret = api_secret

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
            return _ok({"error": "control routes need 'Authorization: Bearer <api_secret>'"}, 401)
        try:
            return await self._route(request, verb, route)
        except _BadRequest as exc:
            return _ok({"error": str(exc)}, 400)
        except (UnknownRoomError, ValueError, TypeError, KeyError, binascii.Error) as exc:
            return _ok({"error": str(exc)}, 400)

    async def _route(self, request: web.BaseRequest, verb: str, route: str) -> web.Response:
        state = self.state
        if route == "rooms" and verb == "POST":
            data = await _body(request)
            specs = data["rooms"] if "rooms" in data else [data]
            made = [state.add_room(str(s["name"]), str(s.get("metadata", ""))) for s in specs]
            return _ok({"rooms": [{"name": r.name, "sid": r.sid} for r in made]})
        if route == "rooms" and verb == "GET":
            rooms = [
                {
                    "name": r.name,
                    "sid": r.sid,
                    "metadata": r.metadata,
                    "num_participants": r.num_participants,
                    "num_publishers": r.num_publishers,
                }
                for r in state.rooms_list()
            ]
            return _ok({"rooms": rooms})
        if route == "participants" and verb == "POST":
            data = await _body(request)
            room = str(data["room"])
            identities = data["identities"]
            if not isinstance(identities, list):
                raise _BadRequest("identities must be a list")
            added = state.add_participants(
                room,
                [str(i) for i in identities],
                tracks=data.get("tracks"),
                metadata=str(data.get("metadata", "")),
            )
            room_proto = state.room(room)
            return _ok(
                {"room": room, "added": len(added), "count": room_proto.num_participants if room_proto else 0}
            )
        if route == "participants" and verb == "GET":
            room = request.query.get("room", "")
            people = state.participants_of(room)
            out: dict[str, Any] = {
                "room": room,
                "count": len(people),
                "identities": [p.identity for p in people],
            }
            if request.query.get("full") in ("1", "true"):
                out["participants"] = [
                    json_format.MessageToDict(p, preserving_proto_field_name=True) for p in people
                ]
            return _ok(out)
        if route == "calls" and verb == "GET":
            counts = self.calls.counts()
            out = {"total": sum(counts.values()), "counts": counts}
            if request.query.get("records") in ("1", "true"):
                out["calls"] = [c.to_json() for c in self.calls.records()]
            return _ok(out)
        if route == "calls" and verb == "DELETE":
            return _ok({"cleared": self.calls.clear()})
        if route == "latency" and verb == "POST":
            data = await _body(request)
            seconds = float(data["seconds"]) if "seconds" in data else float(data["ms"]) / 1000.0
            self.faults.set_latency(seconds, method=data.get("method"))
            return _ok({"ok": True})
        if route == "faults" and verb == "POST":
            data = await _body(request)
            kind, method, n = data["kind"], str(data["method"]), int(data.get("n", 1))
            if kind == "fail":
                fault = Fault.fail(
                    code=data.get("code", "internal"),
                    status=data.get("status"),
                    msg=data.get("msg", "injected failure"),
                )
            elif kind in ("garbage", "drop"):
                fault = Fault(kind)
            elif kind == "hang":
                fault = Fault("hang", seconds=data.get("seconds"))
            elif kind == "redirect":
                fault = Fault.redirect(
                    str(data.get("location", "http://127.0.0.1:9/elsewhere")), int(data.get("status", 302))
                )
            elif kind == "answer":
                if "body_base64" in data:
                    body = base64.b64decode(str(data["body_base64"]), validate=True)
                else:
                    body = str(data.get("body", "")).encode()
                fault = Fault.answer(
                    int(data.get("status", 200)),
                    body,
                    str(data.get("content_type", "application/protobuf")),
                )
            else:
                raise _BadRequest(f"unknown fault kind {kind!r}")
            self.faults.push(method, fault, n)
            return _ok({"pending": self.faults.pending()})
        if route == "black_hole" and verb == "POST":
            data = await _body(request)
            on = data.get("on")
            if not isinstance(on, bool):
                raise _BadRequest("'on' must be true or false")
            await (self.server.start_black_hole() if on else self.server.end_black_hole())
            return _ok({"black_hole": self.server.black_hole_open})
        if route == "faults" and verb == "DELETE":
            self.faults.clear()
            return _ok({"ok": True})
        if route == "reset" and verb == "POST":
            state.clear()
            self.calls.clear()
            self.faults.clear()
            return _ok({"ok": True})
        return _ok({"error": f"no control route {verb} /_emulator/{route}"}, 404)
