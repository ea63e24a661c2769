"""``GET /livekit/bans`` a page at a time, over real HTTP: ``limit``, the opaque ``cursor`` and
``next_cursor``; all of 2,500 bans through cursors, none twice, none missed, each tenant its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_livekit_moderation import room_metadata
from flask_livekit_moderation.bans import Ban
from flask_livekit_moderation.schemas import cursor
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import BANS, Host
from tests.helpers import MASKED_ROOM_404, TOKEN_A, TOKEN_B


def page(host: Host, token: str | None, **params: Any) -> Any:
    answer = host.request("GET", BANS, token, params={"room_name": "r", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def every_page(host: Host, token: str | None, limit: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """Every ban through the cursors: (identity, owner) in the order answered, and the pages read."""
    seen: list[tuple[str, str]] = []
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    pages = 0
    while True:
        body = page(host, token, **params)
        pages += 1
        seen += [(b["participant_identity"], b["room_owner"] or "") for b in body["bans"]]
        if body["next_cursor"] is None:
            return seen, pages
        params["cursor"] = body["next_cursor"]


def test_2500_bans_come_through_cursors_once_each_and_tenant_scoped(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator, tmp_path: Any
) -> None:
    shared = f"sqlite:///{tmp_path}/shared.sqlite3"
    tenants = hosts(LIVEKIT_MODERATION_BAN_STORE=shared)
    admin = hosts(LIVEKIT_MODERATION_BAN_STORE=shared, LIVEKIT_MODERATION_AUTH_REQUIRED=False)
    livekit_emulator.add_room("r", metadata=room_metadata("tenant-a"))
    with tenants.served.app.app_context():
        store = tenants.moderation.bans  # the routes' own store
        store.put_many(Ban.starting_now("tenant-a", "r", f"user-{i:05d}", 3600) for i in range(2500))
        # Tenant B's room r of another time, and its bans of some of the same identities.
        store.put_many(Ban.starting_now("tenant-b", "r", f"user-{i:05d}", 3600) for i in range(0, 2500, 8))
    a_bans = [(f"user-{i:05d}", "tenant-a") for i in range(2500)]
    b_bans = [(f"user-{i:05d}", "tenant-b") for i in range(0, 2500, 8)]

    seen, pages = every_page(tenants, TOKEN_A)  # the default page: 100
    assert seen == a_bans and pages == 25
    seen, pages = every_page(tenants, TOKEN_A, limit=1000)
    assert seen == a_bans and pages == 3
    seen, _ = every_page(tenants, TOKEN_A, limit=7)
    assert seen == a_bans  # no duplicate, no gap, in order
    assert every_page(tenants, TOKEN_B, limit=50)[0] == b_bans  # B sees only its own
    assert every_page(admin, None, limit=333)[0] == sorted(a_bans + b_bans)  # every owner's

    first = page(tenants, TOKEN_A, limit=3)
    assert [b["participant_identity"] for b in first["bans"]] == ["user-00000", "user-00001", "user-00002"]
    # A's cursor is only a position: tenant B resumes there in its own bans.
    resumed = page(tenants, TOKEN_B, limit=2, cursor=first["next_cursor"])
    assert [(b["participant_identity"], b["room_owner"]) for b in resumed["bans"]] == [
        ("user-00008", "tenant-b"),
        ("user-00016", "tenant-b"),
    ]
    last = page(tenants, TOKEN_A, limit=1000, cursor=cursor("r", "user-02000", "tenant-a"))
    assert len(last["bans"]) == 499 and last["next_cursor"] is None


def test_bans_made_while_paging_come_once_if_after_the_page_read(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    host = hosts()
    livekit_emulator.add_room("r", metadata=room_metadata("tenant-a"))
    for identity in ("b", "d", "f", "h"):
        assert host.ban("r", identity, token=TOKEN_A).status_code == 201
    first = page(host, TOKEN_A, limit=2)
    assert [b["participant_identity"] for b in first["bans"]] == ["b", "d"]
    for identity in ("a", "c", "e", "d"):  # before, inside and after the page read; d banned again
        assert host.ban("r", identity, token=TOKEN_A).status_code == 201
    rest = page(host, TOKEN_A, cursor=first["next_cursor"])
    assert [b["participant_identity"] for b in rest["bans"]] == ["e", "f", "h"]
    assert rest["next_cursor"] is None


def test_bad_limits_and_cursors_are_400_and_paging_tells_no_foreign_room(
    hosts: Callable[..., Host], livekit_emulator: LiveKitEmulator
) -> None:
    host = hosts()
    emu = livekit_emulator
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    emu.add_room("other", metadata=room_metadata("tenant-a"))
    host.ban("r", "troll", token=TOKEN_A)
    for params in (
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"cursor": "not-a-cursor"},
        {"cursor": cursor("other", "troll", "tenant-a")},  # another room's
        {"cursor": "x" * 8193},
    ):
        answer = host.request("GET", BANS, TOKEN_A, params={"room_name": "r", **params})
        assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST"), params
        assert set(answer.json()["details"]) == set(params), params
    assert page(host, TOKEN_A, limit=1000)["next_cursor"] is None
    # Without a cursor, a tenant with no ban there still gets the masked 404 for a room not its own;
    # with one, an empty page, whatever the room: the cursor tells nothing about it.
    emu.clear_calls()
    assert host.request("GET", BANS, TOKEN_B, params={"room_name": "r"}).json() == MASKED_ROOM_404
    assert host.request("GET", BANS, TOKEN_B, params={"room_name": "nowhere"}).json() == MASKED_ROOM_404
    for room in ("r", "nowhere"):
        body = host.request(
            "GET", BANS, TOKEN_B, params={"room_name": room, "cursor": cursor(room, "a", "tenant-b")}
        ).json()
        assert body == {"room_name": room, "bans": [], "next_cursor": None}
    assert emu.call_names() == ["ListRooms", "ListRooms"]
