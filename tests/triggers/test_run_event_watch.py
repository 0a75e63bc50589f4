"""How runs are judged, without HTTP: RunEventWatch over run dicts shaped like PostHog's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow_provider_phenv.validation import format_timestamp
from airflow_provider_phenv.waits import run_event
from airflow_provider_phenv.waits.runs import MAX_TRACKED, SETTLE, RunEventWatch

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)


def run(number: int, status: str, minutes: float = 0.0) -> dict:
    return {
        "id": f"run-{number}",
        "status": status,
        "created_at": format_timestamp(T0 + timedelta(minutes=minutes)),
        "data_interval_start": "2026-11-28T09:00:00Z",
        "data_interval_end": "2026-11-28T10:00:00Z",
        "records_completed": 7 if status == "Completed" else None,
        "latest_error": "boom" if status == "Failed" else None,
    }


def started(*runs: dict, statuses=("Completed",)) -> RunEventWatch:
    watch = RunEventWatch(frozenset(statuses))
    watch.start(T0, runs)
    return watch


def ids(runs: list[dict]) -> list[str]:
    return [item["id"] for item in runs]


def test_old_runs_never_fire_active_ones_fire_once_when_they_finish():
    watch = started(run(1, "Completed", -60), run(2, "Running", -30), run(3, "Failed", -1))
    later = T0 + timedelta(minutes=1)
    assert watch.judge([run(1, "Completed", -60), run(2, "Running", -30)], later) == []
    assert ids(watch.judge([run(2, "Completed", -30), run(4, "Completed", 0.5)], later)) == ["run-2", "run-4"]
    # The condition stays true: nothing fires again.
    assert watch.judge([run(2, "Completed", -30), run(4, "Completed", 0.5)], later) == []


def test_a_run_already_in_a_watched_status_fires_only_on_a_change():
    watch = started(run(1, "Running", -5), statuses=("Running", "Completed"))
    assert watch.judge([run(1, "Running", -5)], T0) == []
    assert ids(watch.judge([run(1, "Completed", -5)], T0)) == ["run-1"]
    new = watch.judge([run(2, "Running", 1)], T0)
    assert ids(new) == ["run-2"]
    assert watch.judge([run(2, "Completed", 1)], T0) == []  # one event per run


def test_the_state_is_plain_json_and_restores():
    watch = started(run(1, "Running", -5))
    watch.judge([run(2, "Completed", 1)], T0)
    state = json.loads(json.dumps(watch.to_json()))
    again = RunEventWatch.from_json(["Completed"], state)
    assert again.to_json() == watch.to_json()
    assert ids(again.judge([run(1, "Completed", -5), run(2, "Completed", 1)], T0)) == ["run-1"]
    assert not RunEventWatch.from_json(["Completed"], None).started
    assert not RunEventWatch.from_json(["Completed"], {"version": 99}).started


def test_the_query_reaches_back_to_the_oldest_unfinished_run():
    watch = started(run(1, "Running", -120))
    assert watch.lower_bound() == T0 - timedelta(minutes=120)
    watch.judge([run(1, "Completed", -120), run(2, "Completed", 30)], T0 + timedelta(minutes=31))
    assert watch.lower_bound() == T0 + timedelta(minutes=30) - SETTLE


def test_memory_stays_bounded():
    watch = started()
    now = T0 + timedelta(days=1)
    runs = [run(n, "Completed", n) for n in range(3000)]
    assert len(watch.judge(runs, now)) == 3000
    # Only runs the horizon can still show are remembered.
    assert len(watch.done) <= SETTLE.total_seconds() / 60 + 1
    active = [run(n, "Running", 3000 + n) for n in range(MAX_TRACKED + 50)]
    watch.judge(active, now)
    assert len(watch.tracked) == MAX_TRACKED
    # A run that never finishes is dropped after 7 days.
    watch.judge([], now + timedelta(days=30))
    assert watch.tracked == {}


def test_latest_runs_are_enough_unless_they_may_hide_a_run():
    watch = started(*[run(n, "Completed", -100 + n) for n in range(10)])
    history = [run(n, "Completed", -100 + n) for n in range(10)]
    assert watch.covers(history)
    assert watch.covers(history[:3])  # fewer than ten: every run is shown
    eleven_new = [run(100 + n, "Completed", 1 + n) for n in range(11)]
    assert not watch.covers(eleven_new[-10:])  # the oldest shown is unknown: some may be hidden
    tracked = started(run(999, "Running", -200), *history)
    assert not tracked.covers(history)  # a tracked run fell out of the ten


def test_event_payload():
    assert run_event("e1", run(1, "Failed")) == {
        "batch_export_id": "e1",
        "run_id": "run-1",
        "status": "Failed",
        "data_interval_start": "2026-11-28T09:00:00Z",
        "data_interval_end": "2026-11-28T10:00:00Z",
        "records_completed": None,
        "latest_error": "boom",
    }
