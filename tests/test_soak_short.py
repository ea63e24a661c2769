"""A few seconds of the load/soak script (``python -m benchmarks.soak``) in the default run.

gunicorn (2 gthread workers, 4 threads, --preload) serves the example app against the
stand-in, each in its own process; 8 keep-alive clients send racing removes, mutes,
listings and removes in another tenant's room.
"""

from __future__ import annotations

from benchmarks.soak import soak, verdicts


def test_short_soak_has_no_5xx_removes_exactly_once_and_workers_do_not_grow() -> None:
    report = soak(duration=2.0, workers=2, threads=4, clients=8, latency_ms=1.0, warmup_s=0.5)

    assert report["requests"] > 100, report["statuses"]
    assert report["server_errors"] == {}, report["statuses"]
    assert report["unexpected_statuses"] == {}, report["statuses"]
    # Every refused remove said why with the documented code, nothing else.
    assert set(report["error_codes"]) <= {
        "remove 404 PARTICIPANT_NOT_FOUND",
        "foreign 404 PARTICIPANT_NOT_FOUND",
    }, report["error_codes"]

    removals = report["removals"]
    assert removals["removed"] > 20
    assert removals["call_record_matches_answers"], removals
    assert removals["answered_200_twice"] == [] and removals["stand_in_removed_twice"] == [], removals
    assert removals["races_not_one_200_one_404"] == [], removals
    assert removals["state_mismatch_rooms"] == {}, removals
    assert removals["remove_calls_on_foreign_room"] == 0 and removals["foreign_room_untouched"], removals
    assert removals["exactly_once"]

    assert report["workers_replaced"] == [], report["gunicorn_log_tail"]
    assert len(report["workers"]) == 2
    for worker in report["workers"]:
        assert worker["fd_growth"] <= 8, worker
        assert worker["thread_growth"] <= 2, worker
        assert worker["rss_growth_mib"] <= 20, worker

    failed = [name for name, ok in verdicts(report, 8, 2, 20.0) if not ok]
    assert failed == []
