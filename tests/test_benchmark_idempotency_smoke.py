"""A short run of ``python -m benchmarks.idempotency`` so the benchmark cannot rot."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_idempotency_benchmark_smoke_run(tmp_path: Path) -> None:
    done, report = run_benchmark(
        "benchmarks.idempotency", "--requests", "5", "--stores", "memory,sqlite", out=tmp_path / "idem.json"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["requests"] == 5 and set(report["results"]) == {"memory", "sqlite"}
    for figures in report["results"].values():
        for kind in ("without_key", "with_key"):
            assert figures[kind]["cpu_ms_per_request"] > 0 and figures[kind]["wall_ms_p50"] > 0
        added = figures["with_key"]["cpu_ms_per_request"] - figures["without_key"]["cpu_ms_per_request"]
        assert figures["added_cpu_ms_per_request"] == round(added, 4)
    assert "CPU ms/req, key" in done.stdout
