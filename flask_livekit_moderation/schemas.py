"""The schema vocabulary every feature shares: names, strict JSON types, the error body.

Each feature keeps its request and answer schemas beside its views (``participants/schemas.py``,
``bans/schemas.py``); the same classes validate requests and feed the OpenAPI document, so
what is documented is what is enforced.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

#: Longest room name, identity or track SID accepted, in characters.
MAX_NAME_LENGTH = 256
_NOT_UNICODE = "Must be valid Unicode text (no lone surrogates)."


def unicode_text(value: str) -> None:
    """A string that has a UTF-8 form."""
    # JSON can spell lone surrogates ("\ud800"); they have no UTF-8 form, so LiveKit's
    # protobuf strings cannot carry them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(_NOT_UNICODE) from None


def name_text(value: str) -> None:
    """A name's text: something besides whitespace, with a UTF-8 form (:func:`unicode_text`).

    One validator for the two checks every name gets (they cannot both fail: whitespace has a
    UTF-8 form), so each name costs one call.
    """
    if not value.strip():
        raise ValidationError("Must not be empty or only whitespace.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(_NOT_UNICODE) from None


def name(description: str) -> fields.String:
    """A required room name, identity or SID: not blank, at most :data:`MAX_NAME_LENGTH` characters."""
    return fields.String(
        required=True,
        validate=[name_text, validate.Length(max=MAX_NAME_LENGTH)],
        metadata={"description": description, "minLength": 1, "maxLength": MAX_NAME_LENGTH},
    )


class StrictBoolean(fields.Boolean):
    """A JSON boolean and nothing else: no ``"true"``, ``1`` or ``"yes"``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class RequestSchema(Schema):
    """Base for request bodies: unknown fields are ignored, not rejected."""

    class Meta:
        unknown = EXCLUDE


class StrictInteger(fields.Integer):
    """A JSON integer and nothing else: no ``"60"``, ``60.5`` or ``true``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class FlatList(fields.List):  # type: ignore[type-arg]
    """A JSON array whose item errors come out as one flat list of messages, "Item 0: ...",
    so ``details`` stays ``{field: [messages]}`` (marshmallow would nest ``{index: [...]}``)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        try:
            items: list[Any] = super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            if not isinstance(exc.messages, dict):
                raise
            flat = [
                f"Item {index}: {message}"
                for index, messages in sorted(exc.messages.items())
                for message in (messages if isinstance(messages, list) else [str(messages)])
            ]
            raise ValidationError(flat) from None
        return items


def moment(description: str) -> fields.String:
    """A required RFC 3339 date-time string."""
    return fields.String(required=True, metadata={"description": description, "format": "date-time"})


class RoomQuery(RequestSchema):
    """A query string naming one room."""

    room_name = name("LiveKit room name, used exactly as given.")


class ParticipantRequest(RequestSchema):
    """A body naming one participant of one room."""

    room_name = name("LiveKit room name, used exactly as given.")
    participant_identity = name("Identity of the participant.")


class ErrorResponse(Schema):
    """Every error answer."""

    error = fields.String(required=True, metadata={"description": "A sentence for humans."})
    code = fields.String(required=True, metadata={"description": "A stable machine-readable code."})
    details = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Per-field validation messages (INVALID_REQUEST only)."},
    )


#: Longest cursor accepted, in characters (a room name and a key of names, in base64).
MAX_CURSOR_LENGTH = 8192


def cursor(room_name: str, *key: str) -> str:
    """The opaque cursor of a listing of ``room_name`` resuming after the item ``key``.

    The room is inside so that a cursor of one room's listing cannot page another's.
    """
    raw = json.dumps([room_name, *key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def cursor_field(
    how: str = "Leave out for the first page.", max_length: int = MAX_CURSOR_LENGTH
) -> fields.String:
    """The ``cursor`` query parameter of a paged listing; ``how`` ends its description."""
    return fields.String(
        load_default=None,
        validate=validate.Length(max=max_length),
        metadata={"description": "Where to resume: the `next_cursor` of the previous page (opaque). " + how},
    )


def resume(data: dict[str, Any], into: str, read: Callable[[str], Any]) -> None:
    """Replace the loaded ``cursor`` by what ``read`` makes of it, as ``data[into]`` (``None``:
    the first page); 400 for a cursor that is not one of this listing's."""
    text = data.pop("cursor")
    try:
        data[into] = None if text is None else read(text)
    except ValueError:
        raise ValidationError(
            {"cursor": ["Not a cursor of this listing: pass the next_cursor it answered."]}
        ) from None


def read_cursor(text: str, room_name: str, size: int) -> tuple[str, ...]:
    """The key (of ``size`` names) a cursor of ``room_name``'s listing resumes after;
    ``ValueError`` for anything else (not one of ours, or another room's)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        room, *key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise ValueError("not a cursor") from None
    if room != room_name or len(key) != size or not all(isinstance(name, str) for name in key):
        raise ValueError("not a cursor of this listing")
    return tuple(key)
