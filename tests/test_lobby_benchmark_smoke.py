"""A short run of ``python -m benchmarks.lobby`` so the lobby benchmark cannot rot (no targets checked)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_lobby_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "lobby.json"
    done, report = run_benchmark(
        "benchmarks.lobby",
        *("--waiting", "300", "--samples", "40", "--no-redis", "--no-postgresql"),
        out=out,
        out_flag="--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = report["stores"]["sqlite"]
    for case in ("knock_first_ms", "knock_repeat_ms", "admit_store_ms", "admit_route_ms"):
        assert figures[case]["n"] == 40
        assert 0 < figures[case]["p50"] <= figures[case]["p99"]
    assert figures["walk_all_by_1000"] == {**figures["walk_all_by_1000"], "listed": 260, "pages": 1}
    for line in (
        "sqlite: knock, first (records waiting)",
        "sqlite: admit, route (ListRooms + store)",
        "sqlite: GET /livekit/lobby limit=100, middle page",
        "SQLite knock p50 target <= 1.0 ms",
    ):
        assert line in done.stdout, done.stdout
