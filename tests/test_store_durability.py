"""Stores that never lose an acknowledged ban: a SQLite file deleted or replaced under the running
app, and a Redis that may evict or persist nothing (a WARNING at start naming the setting).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_livekit_moderation import LiveKitModeration, room_metadata
from flask_livekit_moderation.bans import Ban, SQLiteBanStore
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.bans_helpers import Host
from tests.helpers import TOKEN_A
from tests.redis_server import redis_server


def listed(host: Host, room: str = "r") -> list[str]:
    answer = host.bans(room, TOKEN_A)
    assert answer.status_code == 200, answer.text
    return [b["participant_identity"] for b in answer.json()["bans"]]


@pytest.mark.parametrize("deleted", [("",), ("", "-wal", "-shm")], ids=["the-file", "with-its-wal"])
def test_a_sqlite_file_deleted_mid_run_is_noticed_and_a_ban_answered_201_is_on_disk(
    hosts: Callable[..., Host],
    livekit_emulator: LiveKitEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    deleted: tuple[str, ...],
) -> None:
    emu = livekit_emulator
    path = tmp_path / "bans.sqlite3"
    url = f"sqlite:///{path}"
    host = hosts(LIVEKIT_MODERATION_BAN_STORE=url)
    emu.add_room("r", metadata=room_metadata("tenant-a"))
    assert host.ban("r", "before", token=TOKEN_A).status_code == 201
    for suffix in deleted:  # as `rm` would, while the app runs
        os.unlink(f"{path}{suffix}")
    assert not path.exists()

    with caplog.at_level(logging.ERROR, logger="flask_livekit_moderation"):
        answer = host.ban("r", "after", token=TOKEN_A)
    assert answer.status_code == 201
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(path) in error.getMessage() and "was deleted" in error.getMessage()
    assert "copied 1 active bans" in error.getMessage()
    assert path.exists()

    # A fresh app on the same path (a restart) lists the ban answered 201, and the one before.
    fresh = hosts(LIVEKIT_MODERATION_BAN_STORE=url)
    assert listed(fresh) == ["after", "before"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_every_thread_notices_and_the_old_file_is_read_one_last_time(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    store = SQLiteBanStore(str(path))
    store.put(Ban.starting_now("a", "r", "one", 60))
    other_thread: list[object] = []

    def read_in_a_thread() -> None:
        other_thread.append(store.get("a", "r", "one"))

    thread = threading.Thread(target=read_in_a_thread)
    thread.start()
    thread.join()  # that thread has its own connection to the file
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{path}{suffix}")
    store.put(Ban.starting_now("a", "r", "two", 60))  # this thread moves to the new file
    assert [b.participant_identity for b in store.list_bans("a", "r")] == ["one", "two"]
    fresh = SQLiteBanStore(str(path))
    assert [b.participant_identity for b in fresh.list_bans("a", "r")] == ["one", "two"]
    store.close()
    fresh.close()


def test_threads_first_on_a_new_file_all_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A host's first requests come at once, each thread opening its own connection to a file
    not yet made: each must wait for the others, never answer "unavailable". Before the WAL
    switch waited, 16 of 200 such starts refused a thread (SQLite's "database is locked",
    given at once, not through the busy timeout).

    Nor may a thread take the file another thread just created for one "replaced" under the
    app: it then deleted the live file's WAL and index. Before the store read its connections
    before the path, 5 of 300 starts logged that error, and one in CI's run refused a ban."""
    caplog.set_level(logging.ERROR, logger="flask_livekit_moderation")
    threads = 6
    for start in range(150):
        store = SQLiteBanStore(str(tmp_path / f"bans-{start}.sqlite3"))
        together = threading.Barrier(threads)
        failures: list[BaseException] = []

        def ban(
            identity: str,
            store: SQLiteBanStore = store,
            together: threading.Barrier = together,
            failures: list[BaseException] = failures,
        ) -> None:
            together.wait()
            try:
                store.put(Ban.starting_now("a", "r", identity, 60))
            except BaseException as exc:  # collected: a thread's exception would only be printed
                failures.append(exc)

        workers = [threading.Thread(target=ban, args=(f"p{n}",)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not failures, (start, failures)
        assert not caplog.records, (start, [record.getMessage() for record in caplog.records])
        assert len(store.list_bans("a", "r")) == threads
        store.close()


#: Threads ban and list while the main thread closes the store (as an app's finalizer does while
#: its reconciler or audit writer is mid-statement), 60 times over.
_CLOSE_UNDER_USE = """
import os, sys, threading, time
from flask_livekit_moderation.bans import Ban, SQLiteBanStore
from flask_livekit_moderation.errors import ModerationError

for attempt in range(60):
    store = SQLiteBanStore(os.path.join(sys.argv[1], f"bans-{attempt}.sqlite3"))
    store.put_many(Ban.starting_now("a", "r", f"p{n}", 600) for n in range(300))
    stop, started, acknowledged = threading.Event(), threading.Barrier(3), []

    def use():
        started.wait()
        while not stop.is_set():
            try:
                store.list_bans("a", "r")
                store.put(Ban.starting_now("a", "r", "q", 600))
                acknowledged.append(True)
            except ModerationError:
                pass  # 503 for a statement begun as the store closed: an answer, not a crash

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.001 * (attempt % 5))
    store.close()
    stop.set()
    for thread in threads:
        thread.join()
    store.close()
    # Every ban written before, and the one the threads wrote if any write was acknowledged.
    kept = {ban.participant_identity for ban in SQLiteBanStore(store.path).list_bans("a", "r")}
    assert kept == {f"p{n}" for n in range(300)} | ({"q"} if acknowledged else set()), attempt
print("closed 60 stores under use")
"""


def test_closing_a_store_while_threads_use_it_does_not_crash_the_process(tmp_path: Path) -> None:
    """Python's sqlite3 crashes the process (a segfault, 3.10 and 3.11) when a connection is
    closed under another thread's statement. An xdist worker of CI's floors run died so; the
    store now closes each connection once its thread's statement is done. Run in a child
    process: the failure is a crash. Without the fix, 3 runs of 100 closes crashed 3 times."""
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _CLOSE_UNDER_USE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "closed 60 stores under use"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_a_thread_new_to_the_store_notices_a_file_deleted_under_another_threads_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ban route writes from a worker thread, not always the same one: a thread's first use
    after the deletion must notice it too (an ERROR, the old file's bans copied), not start a
    fresh file that forgets them."""
    path = tmp_path / "bans.sqlite3"
    store = SQLiteBanStore(str(path))

    def in_a_new_thread(work: Callable[[], object]) -> None:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    in_a_new_thread(lambda: store.put(Ban.starting_now("a", "r", "before", 60)))
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{path}{suffix}")
    with caplog.at_level(logging.ERROR, logger="flask_livekit_moderation"):
        in_a_new_thread(lambda: store.put(Ban.starting_now("a", "r", "after", 60)))
        # The first thread meets its old file later: it moves over quietly, once told.
        in_a_new_thread(lambda: store.get("a", "r", "before"))
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "was deleted" in error.getMessage() and "copied 1 active bans" in error.getMessage()
    fresh = SQLiteBanStore(str(path))
    assert [b.participant_identity for b in fresh.list_bans("a", "r")] == ["after", "before"]
    store.close()
    fresh.close()


def test_a_sqlite_file_replaced_mid_run_is_used_and_keeps_the_acknowledged_bans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bans.sqlite3"
    store = SQLiteBanStore(str(path))
    store.put(Ban.starting_now("a", "r", "acknowledged", 60))
    backup = tmp_path / "backup.sqlite3"
    restored = SQLiteBanStore(str(backup))
    restored.put(Ban.starting_now("a", "r", "from-the-backup", 60))
    restored.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{backup}{suffix}"):
            os.unlink(f"{backup}{suffix}")
    shutil.move(backup, path)  # an operator restores a backup over the running app's file

    with caplog.at_level(logging.ERROR, logger="flask_livekit_moderation"):
        found = [b.participant_identity for b in store.list_bans("a", "r")]
    assert found == ["acknowledged", "from-the-backup"]
    assert "was replaced" in caplog.text
    store.close()


def _redis_app(url: str) -> None:
    app = Flask("host")
    app.config.update(LIVEKIT_MODERATION_AUTH_REQUIRED=False, LIVEKIT_MODERATION_BAN_STORE=url)
    LiveKitModeration(app)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--maxmemory-policy", "allkeys-lru", "--appendonly", "yes"), ["maxmemory-policy"]),
        (("--maxmemory-policy", "allkeys-lru"), ["maxmemory-policy", "appendonly"]),
        (("--maxmemory-policy", "volatile-lru", "--appendonly", "yes"), ["maxmemory-policy"]),
        ((), ["appendonly"]),  # the test servers' default: --save '' --appendonly no
        (("--appendonly", "yes"), []),
        (("--save", "60 1"), []),  # RDB snapshots persist (up to their last one)
    ],
)
def test_redis_that_can_lose_bans_is_named_at_start(
    caplog: pytest.LogCaptureFixture, args: tuple[str, ...], named: list[str]
) -> None:
    with redis_server(args=args) as server, caplog.at_level(logging.INFO, logger="flask_livekit_moderation"):
        _redis_app(server.url)
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()
    ]
    assert [name for name in ("maxmemory-policy", "appendonly") if any(name in w for w in warnings)] == named
    assert len(warnings) == len(named)


def test_redis_without_config_is_noted_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    with redis_server(args=("--rename-command", "CONFIG", "")) as server:
        with caplog.at_level(logging.INFO, logger="flask_livekit_moderation"):
            _redis_app(server.url)
    assert "refused CONFIG GET" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "Redis" in r.getMessage()]
