"""Twirp wire format as LiveKit's generated server writes it (``livekit_room.twirp.go``).

Error answers, request decoding by ``Content-Type`` and answer encoding; nothing
here knows about rooms or participants.
"""

from __future__ import annotations

import json

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

__all__ = [
    "TWIRP_STATUS",
    "TwirpError",
    "bad_route",
    "decode_request",
    "encode_answer",
    "error_response",
]

#: Twirp error code -> HTTP status (twitchtv/twirp errors.go ServerHTTPStatusFromErrorCode).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpError(Exception):
    """A twirp error answer; ``delay`` seconds pass before it is sent."""

    def __init__(self, code: str, msg: str, delay: float = 0.0, meta: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.delay = delay
        self.meta = meta

    @property
    def status(self) -> int:
        """The HTTP status twirp sends for :attr:`code`."""
        return TWIRP_STATUS.get(self.code, 500)


def bad_route(msg: str, verb: str, path: str) -> TwirpError:
    """twirp's badRouteError: code bad_route with the offending route in ``meta``."""
    return TwirpError("bad_route", msg, meta={"twirp_invalid_route": f"{verb} {path}"})


def error_response(err: TwirpError, status: int | None = None) -> web.Response:
    """twirp writeError: errors are JSON whatever the request's content type."""
    body: dict[str, object] = {"code": err.code, "msg": err.msg}
    if err.meta:
        body["meta"] = err.meta
    return web.Response(
        status=err.status if status is None else status,
        body=json.dumps(body).encode(),
        content_type="application/json",
    )


def decode_request(
    content_type: str, body: bytes, msg_type: type[Message], verb: str, path: str
) -> tuple[Message, bool]:
    """Decode a request body the way ``serve<Method>`` does; returns (message, is_json)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/protobuf":
        try:
            return msg_type.FromString(body), False
        except DecodeError:
            raise TwirpError("malformed", "the protobuf request could not be decoded") from None
    if kind == "application/json":
        try:
            return json_format.Parse(body or b"{}", msg_type(), ignore_unknown_fields=True), True
        except (json_format.ParseError, UnicodeDecodeError):
            raise TwirpError("malformed", "the json request could not be decoded") from None
    raise bad_route(f'unexpected Content-Type: "{content_type}"', verb, path)


def encode_answer(answer: Message, as_json: bool) -> web.Response:
    """A 200 answer in the request's encoding."""
    if as_json:
        payload = json_format.MessageToJson(
            answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ).encode()
        return web.Response(body=payload, content_type="application/json")
    return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")
