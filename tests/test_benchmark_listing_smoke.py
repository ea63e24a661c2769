"""A short run of ``python -m benchmarks.listing`` so the benchmark cannot rot (issue 27)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_listing_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "listing.json"
    done, report = run_benchmark(
        "benchmarks.listing", *("--participants", "150", "--rounds", "2", "--requests", "2"), out=out
    )

    assert done.returncode == 0, done.stderr[-3000:]
    figures = report["figures"]
    assert set(figures) == {"whole room", "no tracks", "first page"}
    assert figures["whole room"]["participants"] == figures["no tracks"]["participants"] == 150
    assert figures["first page"]["participants"] == 100
    # Leaving tracks out, or asking for a page, makes the answer smaller.
    assert figures["no tracks"]["bytes"] < figures["whole room"]["bytes"]
    assert figures["first page"]["bytes"] < figures["whole room"]["bytes"]
    for row in figures.values():
        assert len(row["rounds_cpu_ms"]) == 2 and row["wall_ms_p50"] > 0
    for way in figures:
        assert way in done.stdout
    # Not the target's size: no verdict is printed for it.
    assert "target:" not in done.stdout
