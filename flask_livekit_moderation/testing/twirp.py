"""Twirp wire format as LiveKit's generated server writes it (``livekit_room.twirp.go``).

Error answers, request decoding by ``Content-Type`` and answer encoding; nothing
here knows about rooms or participants.
"""

from __future__ import annotations

import json
from typing import Any

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
    content_type: str, body: bytes | None, msg_type: type[Message], verb: str, path: str
) -> tuple[Message, bool]:
    """Decode a request body the way ``serve<Method>`` does; returns (message, is_json).

    ``body`` None means it could not be read whole (over the size limit).  An empty
    protobuf body is a valid empty message (``proto.Unmarshal``); an empty JSON body
    is not (``json.Decoder.Decode`` meets EOF).
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("application/protobuf", "application/json") and body is None:
        raise TwirpError("malformed", "failed to read request body")  # handleRequestBodyError
    if kind == "application/protobuf":
        assert body is not None
        try:
            return msg_type.FromString(body), False
        except DecodeError:
            raise TwirpError("malformed", "the protobuf request could not be decoded") from None
    if kind == "application/json":
        assert body is not None
        try:
            return json_format.Parse(body, msg_type(), ignore_unknown_fields=True), True
        except (json_format.ParseError, UnicodeDecodeError):
            raise TwirpError("malformed", "the json request could not be decoded") from None
    raise bad_route(f'unexpected Content-Type: "{content_type}"', verb, path)


def protojson(msg: Message) -> dict[str, Any]:
    """``protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}`` as a dict:
    like json_format with every field printed, plus ``null`` for each unset singular
    message field outside a oneof (google.golang.org/protobuf encoding/protojson)."""
    out = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _add_nulls(msg, out)
    return out


def _add_nulls(msg: Message, out: dict[str, Any]) -> None:
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            if value_fd.message_type is not None:
                for key, value in getattr(msg, fd.name).items():
                    _add_nulls(value, out[fd.name][str(key)])
            continue
        if fd.is_repeated:
            for value, encoded in zip(getattr(msg, fd.name), out.get(fd.name, []), strict=False):
                if isinstance(encoded, dict):
                    _add_nulls(value, encoded)
            continue
        if fd.containing_oneof is not None:
            continue
        if not msg.HasField(fd.name):
            out[fd.name] = None
        elif isinstance(out.get(fd.name), dict) and not fd.message_type.full_name.startswith(
            "google.protobuf."
        ):
            _add_nulls(getattr(msg, fd.name), out[fd.name])


def encode_answer(answer: Message, as_json: bool) -> web.Response:
    """A 200 answer in the request's encoding."""
    if as_json:
        payload = json.dumps(protojson(answer)).encode()
        return web.Response(body=payload, content_type="application/json")
    return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")
