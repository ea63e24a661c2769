"""A short run of ``python -m benchmarks.room_mute`` so the benchmark cannot rot (issue 12)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_benchmark


def test_room_mute_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "room_mute.json"
    done, report = run_benchmark(
        "benchmarks.room_mute",
        *("--latency-ms", "1", "--sizes", "3", "50", "--repeat", "2", "--loop-repeat", "1", "--quiet"),
        out=out,
    )
    (target,) = report["targets"]
    # Exit status follows the target, whatever this machine's load made of it.
    assert done.returncode == (0 if target["passed"] else 1), done.stderr[-3000:]
    assert target["limit_ms"] == 3 * 1 + 10
    assert set(report["results"]) == {"3", "50"}
    for size in (3, 50):
        figures = report["results"][str(size)]
        # The LiveKit calls per run say what each way costs: the stand-in counted them.
        assert figures["room_mute"]["livekit_calls"] == {
            "ListParticipants": 1,
            "ListRooms": 1,
            "MutePublishedTrack": size,
        }
        assert figures["loop_ours"]["livekit_calls"] == {
            "GetParticipant": size,
            "ListRooms": size,
            "MutePublishedTrack": size,
        }
        assert figures["loop_naive"]["livekit_calls"] == {
            "ListParticipants": 2 * size,
            "ListRooms": size,
            "MutePublishedTrack": size,
        }
        assert figures["room_mute"]["runs"] == 2 and len(figures["room_mute"]["times_ms"]) == 2
        assert figures["loop_ours"]["runs"] == figures["loop_naive"]["runs"] == 1
        for way in ("room_mute", "loop_ours", "loop_naive"):
            assert 0 < figures[way]["min_ms"] <= figures[way]["median_ms"] <= figures[way]["max_ms"]
    for row in ("room mute (one request)", "loop of /participant/mute", "loop of naive per-track"):
        assert row in done.stdout, done.stdout
    assert "room mute of 50 participants" in done.stdout and str(out) in done.stdout
