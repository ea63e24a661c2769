"""Seed files: a JSON description of rooms, participants and tracks.

Used by ``python -m flask_livekit_moderation.testing --seed FILE``, the
``POST /_emulator/seed`` control route and :meth:`LiveKitEmulator.seed`::

    {"rooms": [
      {"name": "standup", "metadata": "{\\"auth_id\\": \\"acme\\"}",
       "empty_timeout": 300, "departure_timeout": 20, "max_participants": 0,
       "participants": [
         "bob",
         {"identity": "alice", "name": "Alice", "metadata": "",
          "permission": {"can_publish": true, "can_subscribe": true, "can_publish_data": true,
                         "can_publish_sources": ["MICROPHONE"]},
          "tracks": [{"type": "audio", "source": "microphone", "name": "mic",
                      "muted": false, "sid": "TR_alice_mic"}]}]}]}

Only ``name`` / ``identity`` are required.  A participant given as a bare string, or
without ``tracks``, publishes a microphone and a camera track; ``"tracks": []`` is a
non-publisher.  ``sid`` fixes a track's SID so a scripted test needs no look-up;
``permission`` uses ``ParticipantPermission``'s JSON names (default: what a plain
join token grants).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from livekit.protocol import models

from .state import EmulatorState, TrackLike, as_spec

__all__ = ["SeedError", "apply_seed", "parse_permission"]


class SeedError(ValueError):
    """A seed that does not describe rooms; the message names the offending field."""


def _get(
    obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None
) -> Any:
    if key not in obj:
        if default is _REQUIRED:
            raise SeedError(f"{where}{key}: required")
        return default
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in ((int, float), int)):
        raise SeedError(f"{where}{key}: expected {_kind_name(kind)}, got {value!r}")
    return value


_REQUIRED = object()


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "an object",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_permission(value: object, where: str = "permission") -> models.ParticipantPermission:
    """A ``ParticipantPermission`` from its JSON form; SeedError names the bad field."""
    if not isinstance(value, dict):
        raise SeedError(f"{where}: expected an object, got {value!r}")
    try:
        return json_format.ParseDict(value, models.ParticipantPermission())
    except json_format.ParseError as exc:
        raise SeedError(f"{where}: {exc}") from None


def apply_seed(state: EmulatorState, seed: object) -> dict[str, Any]:
    """Create what ``seed`` describes; returns ``{"rooms": [{"name", "sid", "participants":
    {identity: {track name or source: sid}}}]}``.  Validates everything before changing
    anything."""
    if not isinstance(seed, dict):
        raise SeedError(f"seed: expected an object with 'rooms', got {seed!r}")
    rooms = _get(seed, "rooms", list, "", _REQUIRED)
    plan: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for i, room in enumerate(rooms):
        where = f"rooms[{i}]."
        if not isinstance(room, dict):
            raise SeedError(f"rooms[{i}]: expected an object, got {room!r}")
        unknown = set(room) - {
            "name",
            "metadata",
            "empty_timeout",
            "departure_timeout",
            "max_participants",
            "participants",
        }
        if unknown:
            raise SeedError(f"{where}{sorted(unknown)[0]}: unknown field")
        spec = {
            "name": _get(room, "name", str, where, _REQUIRED),
            "metadata": _get(room, "metadata", str, where),
            "empty_timeout": _get(room, "empty_timeout", (int, float), where),
            "departure_timeout": _get(room, "departure_timeout", (int, float), where),
            "max_participants": _get(room, "max_participants", int, where),
        }
        people = []
        for j, person in enumerate(_get(room, "participants", list, where, [])):
            pwhere = f"{where}participants[{j}]."
            if isinstance(person, str):
                person = {"identity": person}
            if not isinstance(person, dict):
                raise SeedError(f"{pwhere[:-1]}: expected an identity or an object, got {person!r}")
            unknown = set(person) - {"identity", "name", "metadata", "permission", "tracks"}
            if unknown:
                raise SeedError(f"{pwhere}{sorted(unknown)[0]}: unknown field")
            tracks = _get(person, "tracks", list, pwhere)
            for k, track in enumerate(tracks or []):
                try:
                    as_spec(track)
                except ValueError as exc:
                    raise SeedError(f"{pwhere}tracks[{k}]: {exc}") from None
            people.append(
                {
                    "identity": _get(person, "identity", str, pwhere, _REQUIRED),
                    "name": _get(person, "name", str, pwhere, ""),
                    "metadata": _get(person, "metadata", str, pwhere, ""),
                    "permission": None
                    if "permission" not in person
                    else parse_permission(person["permission"], f"{pwhere}permission"),
                    "tracks": tracks,
                }
            )
        plan.append((spec, people))
    made = []
    for spec, people in plan:
        room_proto, _ = state.add_room(
            spec["name"],
            spec["metadata"],
            empty_timeout=spec["empty_timeout"],
            departure_timeout=spec["departure_timeout"],
            max_participants=spec["max_participants"],
        )
        joined: dict[str, dict[str, str]] = {}
        for person in people:
            person_tracks: list[TrackLike] | None = person["tracks"]
            try:
                (p,) = state.add_participants(
                    spec["name"],
                    [person["identity"]],
                    name=person["name"],
                    tracks=person_tracks,
                    metadata=person["metadata"],
                    permission=person["permission"],
                )
            except (ValueError, PermissionError) as exc:
                raise SeedError(f"room {spec['name']!r}, participant {person['identity']!r}: {exc}") from None
            joined[p.identity] = {
                t.name or models.TrackSource.Name(t.source).lower(): t.sid for t in p.tracks
            }
        made.append({"name": room_proto.name, "sid": room_proto.sid, "participants": joined})
    return {"rooms": made}
