"""A short run of ``python -m benchmarks`` so the benchmark cannot rot (no targets checked)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_benchmark_smoke_run_measures_every_target_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done, report = run_benchmark(
        "benchmarks",
        *("--latencies", "0", "--requests", "5", "--warmup", "2", "--concurrency", "4"),
        *("--duration", "0.3", "--memory-requests", "40", "--memory-after", "10"),
        *("--cpu-rounds", "1", "--cpu-requests", "5"),
        *("--no-targets", "--quiet"),
        out=out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["targets"] == []
    per_l = report["results"]["L0"]
    assert per_l["latency_ms"] == 0
    blocks = {"noop ours": per_l["noop"], "noop naive": per_l["noop_naive_server"]}
    blocks.update(
        {
            f"{route} {target}": per_l[route][target]
            for route in ("remove", "mute")
            for target in ("ours", "naive", "floor")
        }
    )
    for name, block in blocks.items():
        c1, cn = block["c1"], block["cN"]
        # Every answer was a success: each remove removed a real participant, each mute a real track.
        assert c1["requests"] == 5 and c1["ok"] == 5 and c1["errors"] == {}, (name, c1)
        assert cn["requests"] > 0 and cn["error_count"] == 0 and not cn["exhausted"], (name, cn)
        assert cn["concurrency"] == 4
        assert 0 < c1["latency_ms"]["p50"] <= c1["latency_ms"]["p95"] <= c1["latency_ms"]["max"], name
    # The floor's c=1 phase recorded how long the stand-in itself took per call.
    assert set(per_l["standin_service_ms"]) == {
        "remove:ListRooms",
        "remove:RemoveParticipant",
        "mute:ListRooms",
        "mute:GetParticipant",
        "mute:MutePublishedTrack",
    }
    memory = per_l["memory"]
    assert memory["errors"] == 0
    assert len(memory["rss_growth_mib"]) == 1 and len(memory["workers"]["after_all"]) == 1
    assert memory["workers"]["after_all"][0]["rss_kib"] > 0
    cpu = per_l["cpu"]
    # Every app answered every request of the CPU phase, and each used some CPU for them.
    assert cpu["errors"] == 0 and cpu["rounds"] == 1
    for route in ("remove", "mute"):
        assert set(cpu["per_request_ms"][route]) == {"ours", "diy", "naive"}
        assert all(len(v) == 1 and v[0] >= 0 for v in cpu["per_request_ms"][route].values())
    assert "Worker CPU per request at L0" in done.stdout
    for row in ("noop    ours", "remove  naive", "mute    floor"):
        assert row in done.stdout, done.stdout
    assert str(out) in done.stdout
