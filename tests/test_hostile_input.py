"""Hostile input, property-based: whatever arrives, every route answers a documented status with
a JSON body and a documented code, and LiveKit sees only valid requests from allowed callers.

Every example is a real HTTP request (``http.client``, so any bytes can be sent) to the example
app served on 127.0.0.1, talking to the LiveKit stand-in. One app pair and one stand-in serve a
whole test function; the stand-in's rooms and call record are reset before each example.

For valid input the outcome is predicted from the seeded rooms (the access and call tables of
issues 3 and 4), so these tests check the exact answer and the exact LiveKit calls, not only
that nothing crashed. A long run: see ``tests/hypothesis_profiles.py``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, currently_in_test_context, event, given
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from flask_livekit_moderation import errors, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import TENANTS, TOKEN_A, TOKEN_B, ServedApp
from tests.hypothesis_profiles import hostile

MAX_BODY = 64 * 1024
MAX_NAME = 256

ROUTES = {
    "remove": ("DELETE", "/livekit/participant"),
    "mute": ("POST", "/livekit/participant/mute"),
    "list": ("GET", "/livekit/participants"),
}
FIELDS = {
    "remove": ("room_name", "participant_identity"),
    "mute": ("room_name", "participant_identity", "track_sid", "muted"),
    "list": ("room_name",),
}

#: Every status an answer may have, with the codes documented for it (None: a success body).
DOCUMENTED: dict[int, set[str | None]] = {200: {None}}
for _error in errors.ALL:
    DOCUMENTED.setdefault(_error.status, set()).add(_error.code)

#: room -> (owner's auth id or None, participants). Every participant publishes the default
#: microphone and camera tracks.
SEED: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "room-a": ("tenant-a", ("alice", "bob")),
    "room-b": ("tenant-b", ("carol",)),
    "room-x": (None, ("dave",)),  # an orphan: metadata names no owner
}
TOKENS = {"tenant-a": TOKEN_A, "tenant-b": TOKEN_B}
OWNER_OF_TOKEN = {TOKEN_A: "tenant-a", TOKEN_B: "tenant-b"}
MISSING, BAD = "<missing token>", "<bad token>"


# -- the served apps and a client that sends any bytes ----------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _connect(served: ServedApp) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", urlsplit(served.url).port, timeout=30)


def send(
    served: ServedApp, method: str, target: str, headers: list[tuple[str, bytes]], body: bytes | None
) -> Answer:
    """One raw HTTP request: ``target`` and header bytes go on the wire exactly as given."""
    connection = _connect(served)
    try:
        connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


@dataclass
class Stage:
    """The stand-in, the app with auth on (TENANTS) and the app with auth off."""

    emulator: LiveKitEmulator
    auth: ServedApp
    anon: ServedApp
    tracks: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def reset(self) -> None:
        """The seeded rooms, nothing else, no faults and an empty call record."""
        # A listing cancelled by the previous example's masked 404 may still be in flight.
        assert self.emulator.wait_idle()
        self.emulator.clear()
        self.emulator.clear_faults()
        self.tracks.clear()
        for room, (owner, identities) in SEED.items():
            self.emulator.add_room(room, metadata=room_metadata(owner) if owner else "")
            for info in self.emulator.add_participants(room, list(identities)):
                self.tracks[(room, info.identity)] = [track.sid for track in info.tracks]
        self.emulator.clear_calls()

    def served_for(self, caller: str | None) -> ServedApp:
        return self.anon if caller is None else self.auth


@pytest.fixture
def stage(
    make_served_over_http: Callable[..., ServedApp], livekit_emulator: LiveKitEmulator
) -> Iterator[Stage]:
    """Served by a real server: these tests put arbitrary bytes on the wire (raw header values,
    repeated headers, chunked framing, request lines past a server's limits)."""
    auth = make_served_over_http(
        LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=TENANTS
    )
    yield Stage(livekit_emulator, auth, make_served_over_http())


# -- what every answer must look like ---------------------------------------------------------


def check_shape(answer: Answer, emulator: LiveKitEmulator) -> dict[str, Any]:
    """Documented status, JSON body, documented code, nothing secret; returns the body."""
    assert answer.status in DOCUMENTED, (answer.status, answer.body[:300])
    if currently_in_test_context():
        event(f"answer {answer.status}")  # shown by --hypothesis-show-statistics
    assert answer.headers.get("content-type") == "application/json", (answer.status, answer.headers)
    body = answer.json()
    assert isinstance(body, dict)
    if answer.status != 200:
        assert set(body) <= {"error", "code", "details"}, body
        assert isinstance(body["error"], str) and body["error"], body
        assert body["code"] in DOCUMENTED[answer.status], body
        assert "details" not in body or answer.status == 400, body
    if answer.status == 401:
        assert answer.headers.get("www-authenticate") == "Bearer"
    for secret in (TOKEN_A, TOKEN_B, emulator.api_secret):
        assert secret.encode() not in answer.body
    return body


# -- the oracle: what the documented rules say the answer must be ------------------------------

_ABSENT = object()


def field_valid(name: str, value: Any) -> bool:
    """The documented rule for one field (issue 3, error table, 400 row)."""
    if name == "muted":
        return isinstance(value, bool)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        return False
    try:
        value.encode("utf-8")  # no lone surrogates: LiveKit names are UTF-8
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Verdict:
    """What the body alone decides: 413, 400 (and which fields), or valid ``data``."""

    status: int
    bad_fields: set[str] | None = None
    data: dict[str, Any] | None = None


def is_json_media_type(content_type: bytes | None) -> bool:
    """The documented rule for writes: ``application/json`` or ``application/*+json``."""
    if content_type is None:
        return False
    media_type = parse_options_header(content_type.decode("latin-1"))[0].lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


JSON_HEADER = [("Content-Type", b"application/json")]


def judge_body(route: str, raw: bytes, content_type: bytes | None = b"application/json") -> Verdict:
    if not is_json_media_type(content_type):
        return Verdict(415)
    if len(raw) > MAX_BODY:
        return Verdict(413)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return Verdict(400)
    if not isinstance(data, dict):
        return Verdict(400)
    bad = {name for name in FIELDS[route] if not field_valid(name, data.get(name, _ABSENT))}
    return Verdict(400, bad) if bad else Verdict(200, data=data)


@dataclass
class Outcome:
    status: int
    code: str | None
    calls: list[str]
    #: A call made beside a room check that refused: cancelled at once, so LiveKit may or
    #: may not have seen it.
    maybe: str | None = None


MASKED = "PARTICIPANT_NOT_FOUND"
#: The masked 404 of a route about the whole room (the listing, room mute).
MASKED_ROOM = "ROOM_NOT_FOUND"


def predict(stage: Stage, route: str, caller: str | None, data: dict[str, Any]) -> Outcome:
    """The answer and the LiveKit calls for valid input, from the seeded rooms."""
    room, identity = data["room_name"], data.get("participant_identity")
    owner, identities = SEED.get(room, (None, ()))
    allowed = caller is None or (room in SEED and owner == caller)
    tenant = [] if caller is None else ["ListRooms"]
    if route == "list":
        if not allowed:
            return Outcome(404, MASKED_ROOM, tenant, maybe="ListParticipants")
        return Outcome(200, None, sorted(tenant + ["ListParticipants"]))
    if route == "remove":
        if not allowed:
            return Outcome(404, MASKED, tenant)
        calls = sorted(tenant + ["RemoveParticipant"])
        return Outcome(200, None, calls) if identity in identities else Outcome(404, MASKED, calls)
    prechecks = sorted(tenant + ["GetParticipant"])
    if not allowed:
        return Outcome(404, MASKED, tenant, maybe="GetParticipant")
    if identity not in identities:
        return Outcome(404, MASKED, prechecks)
    if data["track_sid"] not in stage.tracks[(room, identity)]:
        return Outcome(404, "TRACK_NOT_FOUND", prechecks)
    calls = sorted(prechecks + ["MutePublishedTrack"])
    if data["muted"]:
        return Outcome(200, None, calls)
    return Outcome(500, "REMOTE_UNMUTE_DISABLED", calls)  # the stand-in's default, like LiveKit's


def check_outcome(stage: Stage, route: str, caller: str | None, data: dict[str, Any], answer: Answer) -> None:
    body = check_shape(answer, stage.emulator)
    expected = predict(stage, route, caller, data)
    assert (answer.status, body.get("code")) == (expected.status, expected.code), body
    seen = sorted(stage.emulator.call_names())
    allowed = (
        [expected.calls]
        if expected.maybe is None
        else [expected.calls, sorted([*expected.calls, expected.maybe])]
    )
    assert seen in allowed, (seen, expected)
    if answer.status != 200:
        return
    room = data["room_name"]
    assert body["room_name"] == room  # used exactly as given: no trimming, no normalising
    if route == "list":
        listed = sorted(p["identity"] for p in body["participants"])
        assert listed == sorted(SEED.get(room, (None, ()))[1])
    elif route == "remove":
        assert body == {
            "status": "removed",
            "room_name": room,
            "participant_identity": data["participant_identity"],
        }
        assert stage.emulator.participant(room, data["participant_identity"]) is None
    else:
        assert body["muted"] is True and body["track_sid"] == data["track_sid"]
        info = stage.emulator.participant(room, data["participant_identity"])
        assert info is not None and [t.muted for t in info.tracks if t.sid == data["track_sid"]] == [True]


_REFUSED_BODY = {
    400: errors.INVALID_REQUEST.code,
    413: errors.PAYLOAD_TOO_LARGE.code,
    415: errors.UNSUPPORTED_MEDIA_TYPE.code,
}


def check_refused_body(stage: Stage, verdict: Verdict, answer: Answer) -> None:
    """A 400, 413 or 415 decided by the request alone, and not a single LiveKit call."""
    body = check_shape(answer, stage.emulator)
    expected_code = _REFUSED_BODY[verdict.status]
    assert (answer.status, body["code"]) == (verdict.status, expected_code), body
    if verdict.bad_fields is not None:
        assert set(body["details"]) == verdict.bad_fields, body
        assert all(
            isinstance(m, list) and all(isinstance(s, str) for s in m) for m in body["details"].values()
        )
    assert stage.emulator.calls == []


# -- strategies -------------------------------------------------------------------------------

# Lone surrogates have their own test below; elsewhere text is valid Unicode.
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)

ODD_STRINGS = [
    "",
    " ",
    "\t\n\r",
    "\u3000",
    "\x00",
    "room-a\x00",
    "\x00room-a",
    " room-a",
    "room-a ",
    "ROOM-A",
    "\u202eroom-a",
    "\u200broom-a",
    "\ufeffroom-a",
    "\U0001f399\ufe0f\U0001f525",
    "\u0645\u0631\u062d\u0628\u0627",
    "room-a/../room-b",
    "%00",
    "\\u0000",
    "null",
    "a" * MAX_NAME,
    "a" * (MAX_NAME + 1),
    "\u00e9" * MAX_NAME,
    "\U0001f600" * MAX_NAME,
    " " * (MAX_NAME + 1),
    "x" * 60_000,
]
#: What fits in a URL: werkzeug's server, like any, refuses request lines over 64 KiB itself.
SHORT_ODD_STRINGS = [s for s in ODD_STRINGS if len(s) <= 2 * MAX_NAME]

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(ODD_STRINGS),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def names(known: list[str], odd: list[str] = ODD_STRINGS) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(known), st.sampled_from(odd), TEXT)


@dataclass(frozen=True)
class SeededTrack:
    """A placeholder for a track SID of the seeded state, resolved after each reset."""

    room: str
    identity: str
    index: int


SEEDED_TRACKS = st.builds(
    SeededTrack,
    room=st.sampled_from([room for room in SEED]),
    identity=st.sampled_from(["alice", "bob", "carol", "dave"]),
    index=st.integers(0, 1),
)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "room_name": names([*SEED, "no-such-room"]),
    "participant_identity": names(["alice", "bob", "carol", "dave", "mallory"]),
    "track_sid": st.one_of(SEEDED_TRACKS, SEEDED_TRACKS, names(["TR_unknown"])),
    "muted": st.one_of(st.booleans(), st.booleans(), st.sampled_from(["true", 1, 0, None, "false", [], {}])),
}


SEEDED_PAIRS = [(room, identity) for room, (_, identities) in SEED.items() for identity in identities]


@st.composite
def object_fields(draw: st.DrawFn, route: str) -> dict[str, Any]:
    """A JSON object with the route's fields, each present or not, valid or not, plus extras.

    Most fields aim at one seeded participant (so that many examples are requests LiveKit
    must see); the others are drawn from the odd strings and from JSON of every type.
    """
    room, identity = draw(st.sampled_from(SEEDED_PAIRS))
    aimed = {
        "room_name": st.just(room),
        "participant_identity": st.just(identity),
        "track_sid": st.integers(0, 1).map(lambda i: SeededTrack(room, identity, i)),
        "muted": st.booleans(),
    }
    fields: dict[str, Any] = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=3))
    for name in FIELDS[route]:
        choice = draw(st.integers(0, 9))
        if choice < 5:
            fields[name] = draw(aimed[name])
        elif choice < 7:
            fields[name] = draw(FIELD_VALUES[name])
        elif choice < 9:
            fields[name] = draw(JSON_VALUES)
    return fields


def resolve(stage: Stage, fields: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(fields)
    sid = fields.get("track_sid")
    if isinstance(sid, SeededTrack):
        sids = stage.tracks.get((sid.room, sid.identity)) or stage.tracks[("room-a", "alice")]
        resolved["track_sid"] = sids[sid.index]
    return resolved


def encode_json(value: Any, style: str) -> bytes:
    if style == "ascii":
        return json.dumps(value).encode()
    if style == "compact-utf8":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return json.dumps(value, ensure_ascii=False).encode(style, "surrogatepass")


JSON_STYLES = st.sampled_from(["ascii", "compact-utf8", "utf-8", "utf-16", "utf-32"])


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth


#: Bodies that are not a usable JSON object, from noise to resource exhaustion.
RAW_BODIES = st.one_of(
    st.binary(max_size=2_000),
    TEXT.map(lambda s: s.encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.integers(900, 32_000).map(nested_arrays),
    st.integers(900, 10_000).map(nested_objects),
    st.integers(900, 12_000).map(
        lambda d: b'{"room_name": ' + nested_arrays(d) + b', "participant_identity": "a"}'
    ),
    st.integers(4_301, 60_000).map(lambda n: b'{"room_name": ' + b"7" * n + b"}"),  # over int's digit limit
    st.sampled_from(
        [b"", b"{", b"}", b"{}", b"[]", b"null", b"NaN", b"1e999", b"\xef\xbb\xbf{}", b'{"a":1}{"b":2}']
    ),
    st.binary(min_size=1, max_size=30).map(
        lambda bad: b'{"room_name": "room-a' + b"\xff" + bad + b'", "participant_identity": "alice"}'
    ),
    st.integers(1_000, 6_000).map(lambda n: json.dumps({f"k{i}": i for i in range(n)}).encode()),
)

JSON_CONTENT_TYPES = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"application/json; charset=utf-16",
        b"Application/JSON",
        b"application/merge-patch+json",
    ]
)
CONTENT_TYPES = st.one_of(
    # Mostly JSON, so that most examples get as far as the body.
    JSON_CONTENT_TYPES,
    JSON_CONTENT_TYPES,
    JSON_CONTENT_TYPES,
    st.none(),
    st.sampled_from(
        [
            b"text/plain",  # what a cross-site <form enctype="text/plain"> sends, with no preflight
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=xyz",
            b"application/octet-stream",
            b"application/protobuf",
            b"text/json",
            b"application/jsonx",
            b"",
            b"\xff\xfe/\x00",
        ]
    ),
    st.binary(min_size=1, max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b),
)


@st.composite
def padded(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` plus trailing JSON whitespace, sometimes exactly up to or just past the limit."""
    room = MAX_BODY - len(raw)
    pad = draw(st.sampled_from([0, 0, 0, 1, max(room, 0), max(room + 1, 0), max(room + 1_000, 0)]))
    return raw + b" " * pad


def body_target(route: str, stage: Stage, fields: dict[str, Any]) -> str:
    path = ROUTES[route][1]
    if route != "list":
        return path
    return path + "?" + "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in fields.items())


def caller_headers(caller: str | None, content_type: bytes | None) -> list[tuple[str, bytes]]:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    if caller is not None:
        headers.append(("Authorization", b"Bearer " + TOKENS[caller].encode()))
    return headers


CALLERS = st.sampled_from([None, "tenant-a", "tenant-b"])


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["remove", "mute"])
def test_json_objects_with_any_fields(stage: Stage, route: str) -> None:
    @hostile(max_examples=300)
    @given(
        fields=object_fields(route),
        caller=CALLERS,
        style=JSON_STYLES,
        content_type=CONTENT_TYPES,
        data=st.data(),
    )
    def run(
        fields: dict[str, Any], caller: str | None, style: str, content_type: bytes | None, data: Any
    ) -> None:
        stage.reset()
        fields = resolve(stage, fields)
        raw = data.draw(padded(encode_json(fields, style)))
        verdict = judge_body(route, raw, content_type)
        method, path = ROUTES[route]

        answer = send(stage.served_for(caller), method, path, caller_headers(caller, content_type), raw)

        if verdict.status == 200:
            assert verdict.data is not None
            check_outcome(stage, route, caller, verdict.data, answer)
        else:
            check_refused_body(stage, verdict, answer)

    run()


@pytest.mark.parametrize("route", ["remove", "mute"])
def test_bodies_that_are_not_a_usable_object(stage: Stage, route: str) -> None:
    @hostile(max_examples=200)
    @given(raw=RAW_BODIES, caller=CALLERS, content_type=CONTENT_TYPES)
    def run(raw: bytes, caller: str | None, content_type: bytes | None) -> None:
        stage.reset()
        verdict = judge_body(route, raw, content_type)
        method, path = ROUTES[route]

        answer = send(stage.served_for(caller), method, path, caller_headers(caller, content_type), raw)

        if verdict.status == 200:  # noise that happens to be a valid request
            assert verdict.data is not None
            check_outcome(stage, route, caller, verdict.data, answer)
        else:
            check_refused_body(stage, verdict, answer)

    run()


def test_listing_query_strings_and_ignored_bodies(stage: Stage) -> None:
    @hostile(max_examples=300)
    @given(
        pairs=st.lists(
            st.tuples(
                st.sampled_from(
                    ["room_name", "room_name", "room_name", "participant_identity", "x", "room_name[]"]
                ),
                st.one_of(names([*SEED, "no-such-room"], SHORT_ODD_STRINGS), st.integers().map(str)),
            ),
            max_size=4,
        ),
        caller=CALLERS,
        body=st.one_of(st.none(), RAW_BODIES),
        content_type=CONTENT_TYPES,
    )
    def run(
        pairs: list[tuple[str, str]], caller: str | None, body: bytes | None, content_type: bytes | None
    ) -> None:
        stage.reset()
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        first = dict(reversed(pairs))  # the first value of a repeated parameter counts
        answer = send(
            stage.served_for(caller),
            "GET",
            "/livekit/participants?" + query,
            caller_headers(caller, content_type),
            body,
        )
        if field_valid("room_name", first.get("room_name", _ABSENT)):
            check_outcome(stage, "list", caller, {"room_name": first["room_name"]}, answer)
        else:
            check_refused_body(stage, Verdict(400, {"room_name"}), answer)

    run()


# -- who is calling ---------------------------------------------------------------------------

SECRET_LIKE = st.one_of(
    st.sampled_from([TOKEN_A, TOKEN_B]),
    st.sampled_from(
        [TOKEN_A[:-1], TOKEN_A + "x", TOKEN_B[:-1] + "A", TOKEN_A.upper(), TOKEN_A + TOKEN_B, "tenant-a"]
    ),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60),
    # Huge, yet three of them still fit in the 64 KiB a server allows for one line.
    st.integers(8_000, 20_000).map(lambda n: "t" * n),
    st.integers(400, 1_000).map(lambda n: TOKEN_A * n),
)
SCHEMES = st.sampled_from(
    [
        "Bearer",
        "bearer",
        "BEARER",
        "bEaReR",
        "Basic",
        "Token",
        "Digest",
        "JWT",
        "Bearer:",
        "Bear",
        "Bearerx",
        "OAuth",
    ]
)


@dataclass(frozen=True)
class Credentials:
    """Authorization headers (in order) and ``api_key`` values (in order) of one request."""

    headers: tuple[bytes, ...]
    api_keys: tuple[bytes, ...]
    #: Whether the rules below can say who the caller is (False for raw bytes in a header).
    predictable: bool = True

    def caller(self) -> str:
        """The documented rule: a non-empty ``Bearer`` token first, else the first ``api_key``."""
        token = None
        if self.headers:
            # Servers join repeated headers with commas (werkzeug and gunicorn alike).
            header = b",".join(self.headers).decode("latin-1")
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                token = credentials.strip()
        if token is None and self.api_keys:
            try:
                token = self.api_keys[0].decode("utf-8") or None
            except UnicodeDecodeError:
                return BAD
        if token is None:
            return MISSING
        return OWNER_OF_TOKEN.get(token, BAD)


HEADER_VALUES = st.one_of(
    st.sampled_from([TOKEN_A, TOKEN_B]).map(lambda t: f"Bearer {t}".encode()),
    st.builds(lambda s, t: f"{s} {t}".encode(), SCHEMES, SECRET_LIKE),
    st.sampled_from([b"Bearer", b"bearer"]),
    st.builds(lambda a, b: f"Bearer {a} {b}".encode(), SECRET_LIKE, SECRET_LIKE),
    st.builds(lambda a, b: f"Bearer {a}, Bearer {b}".encode(), SECRET_LIKE, SECRET_LIKE),
    st.builds(
        lambda t: b"Bearer " + t,
        st.binary(min_size=1, max_size=40).map(
            lambda b: b"\xc3" + b.replace(b"\r", b"").replace(b"\n", b"") + b"\xff"
        ),
    ),
)
API_KEYS = st.one_of(
    st.sampled_from([TOKEN_A, TOKEN_B]).map(str.encode),
    SECRET_LIKE.map(str.encode),
    st.just(b""),
    st.binary(min_size=1, max_size=30).map(lambda b: b"\xff" + b),
)


@st.composite
def credentials(draw: st.DrawFn) -> Credentials:
    headers = tuple(draw(st.lists(HEADER_VALUES, max_size=3)))
    api_keys = tuple(draw(st.lists(API_KEYS, max_size=3)))
    return Credentials(headers, api_keys)


@st.composite
def raw_header_credentials(draw: st.DrawFn) -> Credentials:
    """Header values of arbitrary bytes (anything a socket can carry on one line) and keys
    that are never valid: whatever the server makes of the header, the caller is refused."""
    raw = draw(st.binary(min_size=1, max_size=200)).replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
    assume(raw)
    keys = tuple(
        draw(
            st.lists(
                st.one_of(
                    st.just(b""), API_KEYS.filter(lambda k: k not in (TOKEN_A.encode(), TOKEN_B.encode()))
                ),
                max_size=2,
            )
        )
    )
    return Credentials((raw,), keys, predictable=False)


def valid_request(route: str, stage: Stage) -> tuple[dict[str, Any], bytes]:
    """A request tenant-a may make on its own room (and so may an anonymous caller)."""
    data: dict[str, Any] = {"room_name": "room-a"}
    if route != "list":
        data["participant_identity"] = "bob"
    if route == "mute":
        data["track_sid"] = stage.tracks[("room-a", "bob")][0]
        data["muted"] = True
    return data, json.dumps(data).encode()


def credential_target(route: str, data: dict[str, Any], api_keys: tuple[bytes, ...]) -> str:
    params = [("room_name", data["room_name"].encode())] if route == "list" else []
    params += [("api_key", key) for key in api_keys]
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
    return ROUTES[route][1] + ("?" + query if query else "")


@pytest.mark.parametrize("route", ["remove", "mute", "list"])
def test_any_authorization_header_and_api_key(stage: Stage, route: str) -> None:
    @hostile(max_examples=150)
    @given(creds=st.one_of(credentials(), credentials(), credentials(), raw_header_credentials()))
    def run(creds: Credentials) -> None:
        stage.reset()
        data, raw = valid_request(route, stage)
        headers = [("Authorization", value) for value in creds.headers] + JSON_HEADER
        method = ROUTES[route][0]

        answer = send(stage.auth, method, credential_target(route, data, creds.api_keys), headers, raw)

        caller = creds.caller() if creds.predictable else None
        if caller in (MISSING, BAD) or not creds.predictable:
            body = check_shape(answer, stage.emulator)
            assert answer.status == 401, body
            if creds.predictable:
                assert body["code"] == ("MISSING_TOKEN" if caller == MISSING else "UNAUTHORIZED"), body
            assert stage.emulator.calls == []
        else:
            check_outcome(stage, route, caller, data, answer)

    run()


# -- methods and paths ------------------------------------------------------------------------


PATH_TEXT = TEXT.filter(lambda s: "/" not in s)


def test_wrong_methods_and_unknown_paths_are_json(stage: Stage) -> None:
    known = {path: method for method, path in ROUTES.values()}

    @hostile(max_examples=80)
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
        path=st.one_of(
            st.sampled_from(list(known)),
            # Without "/": werkzeug decodes %2F and merges the slashes it makes (a 308 to the
            # merged path), which is routing's business, not the extension's.
            PATH_TEXT.map(lambda s: "/livekit/" + quote(s, safe="")),
            PATH_TEXT.map(lambda s: "/livekit/participant/" + quote(s, safe="")),
        ),
        authorized=st.booleans(),
    )
    def run(method: str, path: str, authorized: bool) -> None:
        stage.reset()
        headers = [("Authorization", b"Bearer " + TOKEN_A.encode())] if authorized else []
        route_method = known.get(path)
        assume(route_method != method and path != "/livekit/openapi.json")

        answer = send(stage.auth, method, path, headers, b"{}")

        body = check_shape(answer, stage.emulator)
        if route_method is None:
            assert (answer.status, body["code"]) == (404, "NOT_FOUND"), body
        else:
            assert (answer.status, body["code"]) == (405, "METHOD_NOT_ALLOWED"), body
            assert route_method in answer.headers["allow"]
        assert stage.emulator.calls == []

    run()


# -- a few examples too big to repeat per hypothesis example ----------------------------------


def _ten_megabytes() -> bytes:
    return b'{"room_name": "room-a", "participant_identity": "bob", "pad": "' + b"x" * 10_000_000 + b'"}'


@pytest.mark.parametrize("route", ["remove", "mute", "list"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_ten_megabyte_bodies(stage: Stage, route: str, framing: str) -> None:
    stage.reset()
    method, path = ROUTES[route]
    target = path + ("?room_name=room-a" if route == "list" else "")
    headers = [("Authorization", b"Bearer " + TOKEN_A.encode()), ("Content-Type", b"application/json")]
    big = _ten_megabytes()

    if framing == "content-length":
        answer = send(stage.auth, method, target, headers, big)
    else:
        answer = _send_chunked(stage.auth, method, target, headers, big)

    body = check_shape(answer, stage.emulator)
    if route == "list":  # the listing reads its query, never its body
        assert answer.status == 200 and body["room_name"] == "room-a"
    else:
        assert (answer.status, body["code"]) == (413, "PAYLOAD_TOO_LARGE")
        assert stage.emulator.calls == []
    # The server is still healthy for the next caller.
    assert stage.auth.participants("room-a", TOKEN_A).status_code == 200


def _send_chunked(
    served: ServedApp, method: str, target: str, headers: list[tuple[str, bytes]], body: bytes
) -> Answer:
    connection = _connect(served)
    try:
        chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
        connection.request(method, target, body=chunks, headers=dict(headers), encode_chunked=True)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("route", "name"),
    [(route, name) for route in ("remove", "mute") for name in FIELDS[route] if name != "muted"],
)
def test_lone_surrogates_are_invalid_requests(stage: Stage, route: str, name: str) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); it is not text LiveKit can take."""
    stage.reset()
    data, _ = valid_request(route, stage)
    data[name] = data[name] + "\ud800"
    raw = json.dumps(data).encode()  # ensure_ascii: the surrogate travels as a \\u escape
    method, path = ROUTES[route]

    answer = send(
        stage.auth, method, path, [("Authorization", b"Bearer " + TOKEN_A.encode()), *JSON_HEADER], raw
    )

    check_refused_body(stage, Verdict(400, {name}), answer)


def test_json_numbers_that_are_not_finite(stage: Stage) -> None:
    stage.reset()
    for raw in (
        b'{"room_name": NaN, "participant_identity": Infinity}',
        b'{"room_name": 1e400, "participant_identity": -1e400}',
    ):
        answer = send(stage.anon, "DELETE", "/livekit/participant", JSON_HEADER, raw)
        check_refused_body(stage, Verdict(400, {"room_name", "participant_identity"}), answer)


@pytest.mark.parametrize("where", ["header", "api_key"])
def test_tokens_longer_than_a_request_line_never_reach_the_app(stage: Stage, where: str) -> None:
    """Over 64 KiB a token cannot arrive at all: the HTTP server refuses the line itself
    (werkzeug: 431 / 414, an HTML page, like gunicorn's 400 at its smaller limits)."""
    stage.reset()
    token = TOKEN_A * 4_000  # 76 KB, and it starts with a valid secret
    if where == "header":
        answer = send(
            stage.auth,
            "GET",
            "/livekit/participants?room_name=room-a",
            [("Authorization", b"Bearer " + token.encode())],
            None,
        )
    else:
        answer = send(stage.auth, "GET", f"/livekit/participants?room_name=room-a&api_key={token}", [], None)
    assert answer.status == (431 if where == "header" else 414)
    assert stage.emulator.calls == []
