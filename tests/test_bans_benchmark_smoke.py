"""A short run of ``python -m benchmarks.bans`` so the ban benchmark cannot rot (no targets checked)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_ban_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "bans.json"
    done, report = run_benchmark(
        "benchmarks.bans",
        *("--joins", "5", "--stored", "1000", "--lookups", "50"),
        out=out,
        out_flag="--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    enforcement = report["enforcement"]
    assert enforcement["joins"] == 5 and enforcement["total_ms"]["n"] == 5
    # Every removal came after its webhook arrived, and after the room check it waited for.
    assert 0 < enforcement["arrival_to_list_rooms_ms"]["p50"] < enforcement["total_ms"]["p50"]
    assert 0 < enforcement["round_trip_ms"]["p50"] <= enforcement["total_ms"]["p95"]
    for store in ("sqlite", "redis", "postgresql"):
        figures = report["active_ban"][store]
        assert figures["hit_ms"]["n"] == figures["miss_ms"]["n"] == 50
        assert 0 < figures["hit_ms"]["p50"] <= figures["hit_ms"]["p95"]
    assert report["active_ban"]["redis"]["redis_ping_ms"]["n"] == 50
    assert report["active_ban"]["postgresql"]["select_1_ms"]["n"] == 50
    assert report["active_ban"]["sqlite"]["sqlalchemy_hit_ms"]["n"] == 50
    for line in (
        "own time (total - round trip)",
        "sqlite: hit, owner given",
        "sqlite: hit through SQLAlchemy Core",
        "redis: PING",
        "postgresql: hit, owner given",
    ):
        assert line in done.stdout, done.stdout
