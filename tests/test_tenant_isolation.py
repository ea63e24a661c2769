"""Tenant isolation under attack: the access matrix, look-alike owners, near-miss tokens, no leaks.

Three tenants (one's secret is a prefix of another's), an id-less secret, callers with auth
off, and rooms whose metadata tries every way to look owned: every refused list, remove and
mute must be the one masked 404 (byte-identical), and the stand-in must see no mutating call.
Every test runs with every logger captured at DEBUG, and no secret may appear in any record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import requests

from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import ServedApp

SECRET_A = "alpha-0123456789abcdef"
SECRET_B = SECRET_A + "-b"  # tenant-a's secret is a prefix of tenant-b's
SECRET_C = "gamma-0123456789abcdef"
SECRET_ANY = "omega-idless-0123456789"  # an entry without an id: its holder is anonymous
SECRETS = [
    {"id": "tenant-a", "secret": SECRET_A},
    {"id": "tenant-b", "secret": SECRET_B},
    {"id": "tenant-c", "secret": SECRET_C},
    {"secret": SECRET_ANY},
]


def _last_byte_changed(secret: str) -> str:
    return secret[:-1] + chr(ord(secret[-1]) + 1)


#: Tokens that are almost a secret; each must be refused with 401 UNAUTHORIZED.
NEAR_MISSES = {
    "a-minus-last-byte": SECRET_A[:-1],
    "a-last-byte-changed": _last_byte_changed(SECRET_A),
    "a-first-byte-changed": "b" + SECRET_A[1:],
    "a-plus-one-byte": SECRET_A + "x",
    "a-upper-case": SECRET_A.upper(),
    "b-minus-last-byte": SECRET_B[:-1],
    "b-last-byte-changed": _last_byte_changed(SECRET_B),
    "b-plus-one-byte": SECRET_B + "b",
    "c-last-byte-changed": _last_byte_changed(SECRET_C),
    "idless-last-byte-changed": _last_byte_changed(SECRET_ANY),
    "two-secrets-joined": SECRET_A + SECRET_C,
    "tenant-id-as-token": "tenant-a",
}

#: Room name -> (metadata, the tenant that owns it per the access table, or None).
ROOMS: dict[str, tuple[str, str | None]] = {
    "room-a": ('{"auth_id": "tenant-a"}', "tenant-a"),
    "room-a-more-keys": ('{"title": "x", "auth_id": "tenant-a", "tags": [1, 2]}', "tenant-a"),
    "room-b": ('{"auth_id": "tenant-b"}', "tenant-b"),
    "room-c": ('{"auth_id": "tenant-c"}', "tenant-c"),
    # Room names equal to tenant ids: the name means nothing, the metadata decides.
    "tenant-b": ('{"auth_id": "tenant-a"}', "tenant-a"),
    "tenant-c": ("", None),
    # Orphans: no owner a tenant can match.
    "orphan-empty-metadata": ("", None),
    "orphan-no-auth-id": ('{"owner": "tenant-a"}', None),
    "orphan-auth-id-number": ('{"auth_id": 1}', None),
    "orphan-auth-id-null": ('{"auth_id": null}', None),
    "orphan-auth-id-true": ('{"auth_id": true}', None),
    "orphan-auth-id-array": ('{"auth_id": ["tenant-a"]}', None),
    "orphan-auth-id-object": ('{"auth_id": {"id": "tenant-a"}}', None),
    "orphan-auth-id-empty": ('{"auth_id": ""}', None),
    "orphan-auth-id-nested": ('{"room": {"auth_id": "tenant-a"}}', None),
    "orphan-not-json": ("auth_id=tenant-a", None),
    "orphan-bare-tenant-id": ("tenant-a", None),
    "orphan-truncated-json": ('{"auth_id": "tenant-a"', None),
    "orphan-json-string": ('"tenant-a"', None),
    "orphan-json-array": ('[{"auth_id": "tenant-a"}]', None),
    # Owners that differ from a tenant id only by case, whitespace or look-alike characters.
    "lookalike-upper": ('{"auth_id": "TENANT-A"}', "TENANT-A"),
    "lookalike-title": ('{"auth_id": "Tenant-a"}', "Tenant-a"),
    "lookalike-leading-space": ('{"auth_id": " tenant-a"}', " tenant-a"),
    "lookalike-trailing-space": ('{"auth_id": "tenant-a "}', "tenant-a "),
    "lookalike-newline": ('{"auth_id": "tenant-a\\n"}', "tenant-a\n"),
    "lookalike-nul": ('{"auth_id": "tenant-a\\u0000"}', "tenant-a\x00"),
    "lookalike-cyrillic-a": ('{"auth_id": "tenant-\\u0430"}', "tenant-\u0430"),
    "lookalike-prefix": ('{"auth_id": "tenant"}', "tenant"),
}
MISSING_ROOM = "no-such-room"

#: RoomService methods that change nothing; anything else in the record is a mutation.
READ_ONLY = frozenset({"ListRooms", "GetParticipant", "ListParticipants"})

TENANT_TOKENS = {"tenant-a": SECRET_A, "tenant-b": SECRET_B, "tenant-c": SECRET_C}
ACTIONS = ("list", "mute", "remove")


# -- every test: all loggers at DEBUG, and no secret in any record ------------------------------

_LOGGERS = (
    None,  # root
    "flask_livekit_moderation",
    "werkzeug",
    "flask.app",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "asyncio",
    "livekit",
    "livekit.api",
)
#: The test's own HTTP client logs the URLs it requests; it is the caller, not the system under test.
_CALLER_LOGGERS = ("urllib3",)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture, livekit_emulator: LiveKitEmulator) -> Iterator[None]:
    """Capture every logger at DEBUG for the whole test, then look for secrets in it."""
    for name in _LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    # A near miss equal to a tenant id is an auth id, which the audit line names on purpose.
    tokens = [t for t in NEAR_MISSES.values() if t not in TENANT_TOKENS]
    forbidden = [s["secret"] for s in SECRETS] + tokens + [livekit_emulator.api_secret]
    # caplog.records would hold only this teardown's records: take every phase's.
    phases = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    records = [r for r in phases if not r.name.startswith(_CALLER_LOGGERS)]
    assert records, "no log record captured: the capture is not working"
    leaks: set[tuple[str, str]] = set()
    for record in records:
        text = "\n".join([logging.Formatter().format(record), repr(record.args), repr(record.__dict__)])
        leaks.update((record.name, secret) for secret in forbidden if secret in text)
    assert sorted(leaks) == [], f"(logger, secret) pairs found in the captured logs: {sorted(leaks)}"


# -- helpers ----------------------------------------------------------------------------------


def _seed(emulator: LiveKitEmulator) -> None:
    """Every room of ROOMS with alice (microphone + camera) and bob; nothing else."""
    emulator.clear()
    for name, (metadata, _) in ROOMS.items():
        emulator.add_room(name, metadata=metadata)
        emulator.add_participants(name, ["alice", "bob"])


def _audio_sid(emulator: LiveKitEmulator, room: str) -> str:
    alice = emulator.participant(room, "alice")
    assert alice is not None
    return alice.tracks[0].sid


def _act(
    served: ServedApp,
    action: str,
    room: str,
    track_sid: str,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> requests.Response:
    if action == "list":
        query = {"room_name": room, **(params or {})}
        return served.request("GET", "/livekit/participants", token, params=query)
    if action == "mute":
        return served.mute(room, "alice", track_sid, True, token, params=params)
    return served.remove(room, "alice", token, params=params)


def _headers_without_date(answer: requests.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in answer.headers.items() if k.lower() != "date"}


class Masked:
    """The reference masked 404s (an unknown room) that every refusal must equal to the byte: a
    route about one participant answers PARTICIPANT_NOT_FOUND, the listing (about the whole
    room) ROOM_NOT_FOUND; neither tells another tenant's room from no room."""

    def __init__(self, served: ServedApp, token: str) -> None:
        self.references: dict[str, tuple[bytes, dict[str, str]]] = {}
        for level, answer, expected in (
            (
                "participant",
                served.remove(MISSING_ROOM, "alice", token),
                {"error": "Participant not found.", "code": "PARTICIPANT_NOT_FOUND"},
            ),
            (
                "room",
                served.participants(MISSING_ROOM, token),
                {"error": "Room not found.", "code": "ROOM_NOT_FOUND"},
            ),
        ):
            assert answer.status_code == 404
            assert answer.json() == expected
            self.references[level] = (answer.content, _headers_without_date(answer))

    def check(self, answer: requests.Response, what: str, action: str = "remove") -> None:
        body, headers = self.references["room" if action == "list" else "participant"]
        assert answer.status_code == 404, f"{what}: {answer.status_code} {answer.text}"
        assert answer.content == body, what
        assert _headers_without_date(answer) == headers, what


def _refused_without_effect(
    emulator: LiveKitEmulator,
    masked: Masked,
    action: str,
    answer: requests.Response,
    room: str,
    track_sid: str,
    what: str,
) -> None:
    masked.check(answer, what, action)
    made = emulator.call_names()
    assert set(made) <= READ_ONLY, f"{what}: mutating LiveKit call made: {made}"
    if room in ROOMS:
        alice = emulator.participant(room, "alice")
        assert alice is not None, f"{what}: alice was removed"
        assert not any(track.muted for track in alice.tracks), f"{what}: a track was muted"


def _succeeded(
    emulator: LiveKitEmulator, action: str, answer: requests.Response, room: str, track_sid: str, what: str
) -> None:
    assert answer.status_code == 200, f"{what}: {answer.status_code} {answer.text}"
    body = answer.json()
    assert body["room_name"] == room, what
    if action == "list":
        assert sorted(p["identity"] for p in body["participants"]) == ["alice", "bob"], what
    elif action == "mute":
        assert body["muted"] is True and body["track_sid"] == track_sid, what
        alice = emulator.participant(room, "alice")
        assert alice is not None and alice.tracks[0].muted is True, what
    else:
        assert body["status"] == "removed", what
        assert emulator.participant(room, "alice") is None, what
        assert emulator.participant(room, "bob") is not None, what


#: Auth required, with the three tenants and the id-less secret.
TENANT_CONFIG = {"LIVEKIT_MODERATION_AUTH_REQUIRED": True, "LIVEKIT_MODERATION_API_SECRETS": SECRETS}


@pytest.fixture
def tenant_app(make_served: Callable[..., ServedApp]) -> ServedApp:
    """The tenant app, reached in process (tokens in the ``Authorization`` header)."""
    return make_served(**TENANT_CONFIG)


@pytest.fixture
def tenant_app_for(
    make_served: Callable[..., ServedApp], make_served_over_http: Callable[..., ServedApp]
) -> Callable[[str], ServedApp]:
    """The tenant app for a token transport. A secret sent as ``api_key`` is in the request
    line, which a real server writes to its access log (the ``werkzeug`` logger, scanned by
    the autouse fixture): that transport is served over real HTTP."""

    def build(transport: str) -> ServedApp:
        return (make_served_over_http if transport == "api_key" else make_served)(**TENANT_CONFIG)

    return build


# -- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", sorted(TENANT_TOKENS))
def test_each_tenant_acts_only_on_its_own_rooms(
    tenant_app: ServedApp, livekit_emulator: LiveKitEmulator, caller: str
) -> None:
    token = TENANT_TOKENS[caller]
    _seed(livekit_emulator)
    masked = Masked(tenant_app, token)
    own_rooms = 0

    for room in [*ROOMS, MISSING_ROOM]:
        owner = ROOMS[room][1] if room in ROOMS else None
        for action in ACTIONS:
            track_sid = _audio_sid(livekit_emulator, room) if room in ROOMS else "TR_unknown"
            livekit_emulator.clear_calls()
            answer = _act(tenant_app, action, room, track_sid, token=token)
            what = f"{caller} {action} {room!r}"
            if owner == caller:
                _succeeded(livekit_emulator, action, answer, room, track_sid, what)
                own_rooms += 1
                _seed(livekit_emulator)
            else:
                _refused_without_effect(livekit_emulator, masked, action, answer, room, track_sid, what)
    # Each tenant owns at least one room, so the success branch ran for everyone.
    assert own_rooms >= len(ACTIONS)


def test_a_tenant_cannot_use_another_rooms_track_or_a_missing_participant(
    tenant_app: ServedApp, livekit_emulator: LiveKitEmulator
) -> None:
    _seed(livekit_emulator)
    masked = Masked(tenant_app, SECRET_A)
    foreign_track = _audio_sid(livekit_emulator, "room-b")
    attempts = {
        "own room, foreign track": tenant_app.mute("room-a", "alice", foreign_track, True, SECRET_A),
        "foreign room, foreign track": tenant_app.mute("room-b", "alice", foreign_track, True, SECRET_A),
        "own room, missing participant (remove)": tenant_app.remove("room-a", "mallory", SECRET_A),
        "own room, missing participant (mute)": tenant_app.mute(
            "room-a", "mallory", foreign_track, True, SECRET_A
        ),
        "foreign room, missing participant": tenant_app.remove("room-b", "mallory", SECRET_A),
        "missing room (mute)": tenant_app.mute(MISSING_ROOM, "alice", foreign_track, True, SECRET_A),
        "missing room (list)": tenant_app.participants(MISSING_ROOM, SECRET_A),
    }

    own_track = attempts.pop("own room, foreign track")
    assert own_track.status_code == 404 and own_track.json()["code"] == "TRACK_NOT_FOUND"
    for what, answer in attempts.items():
        masked.check(answer, what, "list" if what.endswith("(list)") else "remove")
    assert set(livekit_emulator.call_names()) - READ_ONLY <= {"RemoveParticipant"}
    # The only removal attempted is the one in tenant-a's own room, and it removed nobody.
    removals = [
        (getattr(c.request, "room", None), getattr(c.request, "identity", None), c.code)
        for c in livekit_emulator.calls
        if c.method == "RemoveParticipant"
    ]
    assert removals == [("room-a", "mallory", "not_found")]
    assert all(len(livekit_emulator.participants(room)) == 2 for room in ROOMS)
    assert not any(t.muted for room in ROOMS for p in livekit_emulator.participants(room) for t in p.tracks)


@pytest.mark.parametrize("served_as", ["auth-off", "idless-secret"])
def test_anonymous_callers_may_act_on_every_room(
    make_served: Callable[..., ServedApp],
    livekit_emulator: LiveKitEmulator,
    served_as: str,
) -> None:
    if served_as == "auth-off":
        served, token = make_served(), None
    else:
        served = make_served(LIVEKIT_MODERATION_AUTH_REQUIRED=True, LIVEKIT_MODERATION_API_SECRETS=SECRETS)
        token = SECRET_ANY
    _seed(livekit_emulator)

    for room in ROOMS:
        for action in ACTIONS:
            track_sid = _audio_sid(livekit_emulator, room)
            livekit_emulator.clear_calls()
            answer = _act(served, action, room, track_sid, token=token)
            _succeeded(livekit_emulator, action, answer, room, track_sid, f"{served_as} {action} {room!r}")
            # Anonymous callers skip the room check: no ListRooms at all.
            assert "ListRooms" not in livekit_emulator.call_names()
            _seed(livekit_emulator)


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["bearer", "api_key"])
def test_a_secret_that_prefixes_another_authenticates_only_its_own_tenant(
    tenant_app_for: Callable[[str], ServedApp], livekit_emulator: LiveKitEmulator, transport: str
) -> None:
    tenant_app = tenant_app_for(transport)
    _seed(livekit_emulator)
    masked = Masked(tenant_app, SECRET_A)

    def as_caller(secret: str, room: str) -> requests.Response:
        if transport == "bearer":
            return tenant_app.participants(room, secret)
        return tenant_app.request(
            "GET", "/livekit/participants", params={"room_name": room, "api_key": secret}
        )

    assert as_caller(SECRET_A, "room-a").status_code == 200
    masked.check(as_caller(SECRET_A, "room-b"), "tenant-a's secret on room-b", "list")
    assert as_caller(SECRET_B, "room-b").status_code == 200
    masked.check(as_caller(SECRET_B, "room-a"), "tenant-b's secret on room-a", "list")


@pytest.mark.parametrize("transport", ["bearer", "api_key"])
@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_miss_tokens_are_401_and_reach_no_livekit(
    tenant_app_for: Callable[[str], ServedApp], livekit_emulator: LiveKitEmulator, name: str, transport: str
) -> None:
    tenant_app = tenant_app_for(transport)
    _seed(livekit_emulator)
    token = NEAR_MISSES[name]
    track_sid = _audio_sid(livekit_emulator, "room-a")
    livekit_emulator.clear_calls()

    for action in ACTIONS:
        if transport == "bearer":
            answer = _act(tenant_app, action, "room-a", track_sid, token=token)
        elif action == "list":
            answer = tenant_app.request(
                "GET", "/livekit/participants", params={"room_name": "room-a", "api_key": token}
            )
        else:
            answer = _act(tenant_app, action, "room-a", track_sid, params={"api_key": token})
        assert answer.status_code == 401, f"{action}: {answer.text}"
        assert answer.json() == {"error": "Invalid authentication token.", "code": "UNAUTHORIZED"}
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert token not in answer.text

    assert livekit_emulator.calls == []
    assert len(livekit_emulator.participants("room-a")) == 2


def test_no_token_is_401_and_reaches_no_livekit(
    tenant_app: ServedApp, livekit_emulator: LiveKitEmulator
) -> None:
    _seed(livekit_emulator)
    track_sid = _audio_sid(livekit_emulator, "room-a")
    livekit_emulator.clear_calls()
    for action in ACTIONS:
        answer = _act(tenant_app, action, "room-a", track_sid)
        assert answer.status_code == 401 and answer.json()["code"] == "MISSING_TOKEN"
    assert livekit_emulator.calls == []


def test_tokens_and_secrets_never_reach_logs_through_either_transport(
    tenant_app_for: Callable[[str], ServedApp], livekit_emulator: LiveKitEmulator
) -> None:
    """Drive every route, outcome and transport; the autouse fixture then scans the logs,
    the real server's access log included."""
    tenant_app = tenant_app_for("api_key")
    _seed(livekit_emulator)
    track_sid = _audio_sid(livekit_emulator, "room-a")
    outcomes: set[int] = set()
    for secret in [SECRET_A, SECRET_B, SECRET_ANY, *NEAR_MISSES.values()]:
        for action in ACTIONS:
            outcomes.add(_act(tenant_app, action, "room-a", track_sid, token=secret).status_code)
            outcomes.add(
                _act(tenant_app, action, "room-a", track_sid, params={"api_key": secret}).status_code
            )
            _seed(livekit_emulator)
            track_sid = _audio_sid(livekit_emulator, "room-a")
    livekit_emulator.fail_next("ListParticipants", code="internal")
    outcomes.add(tenant_app.participants("room-a", SECRET_A).status_code)
    assert outcomes == {200, 401, 404, 503}
