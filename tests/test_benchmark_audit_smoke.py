"""A short run of ``python -m benchmarks.audit`` so the benchmark cannot rot (issue 23)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_audit_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    done, report = run_benchmark(
        "benchmarks.audit", "--rounds", "2", "--requests", "20", "--attributed", "50", "--quiet", out=out
    )
    (target,) = report["targets"]
    # Exit status follows the target, whatever this machine's load made of it.
    assert done.returncode == (0 if target["passed"] else 1), done.stderr[-3000:]
    assert target["limit_ms"] == 0.1
    results = report["results"]
    # Every request of the server with the audit log left its entry in its SQLite file (written in
    # the background, the last ones at the worker's exit); the other server wrote none.
    assert results["with"]["audit_entries"] == results["with"]["requests"] == 20 * 3
    assert results["without"]["audit_entries"] == 0
    for label in ("with", "without"):
        assert len(results[label]["cpu_ms_per_request"]) == 2
        assert results[label]["median_cpu_ms"] > 0
    assert "without the audit log (as before)" in done.stdout and "the audit write adds" in done.stdout
    parts = report["attributed"]
    # The attribution run timed every request's entry, and the writing thread wrote each one.
    assert parts["requests"] == parts["entries_written"] == 50
    assert 0 < parts["in_request_ms"] and 0 < parts["writer_per_entry_ms"]
    assert "ms in the request +" in done.stdout
    assert str(out) in done.stdout
