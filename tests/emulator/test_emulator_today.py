"""
What the emulator does by default, as today's PostHog (docs/posthog-api.md §6.9): run log
wording, workflow run ids, out-of-order visibility, backfills as the workflow runs them (late rows,
whole intervals, progress, termination), auto-pause, the control calls that shape runs and pauses,
and the smaller corrections (§6.6-§7.2, §2.1).
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from phenv_emulator import SEED

from tests.helpers.processes import wait_for

EXPORT = SEED.s3_export_id  # hourly
LOGS = f"batch_exports/{EXPORT}/logs/"
BACKFILLS = f"batch_exports/{EXPORT}/backfills/"
RANGE = "2024-01-01 00:00:00+00:00 - 2024-01-01 01:00:00+00:00"


# Backfill rows at once, unless a test is about their delay (docs/posthog-api.md §6.9).
pytestmark = pytest.mark.usefixtures("prompt_backfills")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def backfill(api, hours: int = 1, start: str = "2024-01-01T00:00:00Z") -> str:
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    body = {"start_at": start, "end_at": (begin + timedelta(hours=hours)).isoformat()}
    response = api.post(BACKFILLS, body)
    assert response.status_code == 201, response.text
    return response.json()["backfill_id"]


def get_backfill(api, backfill_id: str) -> dict:
    return api.get(f"{BACKFILLS}{backfill_id}/").json()


def runs_of(api, backfill_id: str) -> list[dict]:
    runs = api.get(f"batch_exports/{EXPORT}/runs/", params={"after": "-1000d"}).json()["results"]
    return sorted((run for run in runs if run["backfill"] == backfill_id), key=lambda run: run["created_at"])


def until(what, check, timeout: float = 10):
    return wait_for(what, check, timeout=timeout, interval=0.05)


def messages(api, **params) -> list[str]:
    return [entry["message"] for entry in api.get(LOGS, params={"limit": 500, **params}).json()["results"]]


@pytest.fixture
def in_order(emulator):
    emulator.state.set_switches(log_delay=0)


# -- run log wording and instance ids (§6.3) --------------------------------------------


@pytest.mark.usefixtures("in_order")
@pytest.mark.parametrize(
    ("outcome", "level", "text"),
    [
        (
            {"records": 42},
            "INFO",
            f"Batch export for range {RANGE} finished successfully with 42 records exported",
        ),
        (
            {"records": 0},
            "INFO",
            f"Batch export for range {RANGE} finished successfully with no records exported",
        ),
        (
            {"outcome": "failed", "error_message": "NoSuchBucket"},
            "ERROR",
            f"Batch export for range {RANGE} failed with a non-recoverable error: NoSuchBucket",
        ),
        (
            {"outcome": "failed_retryable", "error_message": "Timeout"},
            "ERROR",
            f"Batch export for range {RANGE} failed with an error that can be retried: Timeout",
        ),
    ],
)
def test_run_log_wording(api, emulator, outcome, level, text):  # §6.3
    emulator.state.set_run_outcome(EXPORT, duration=0, **outcome)
    [run] = runs_of(api, backfill(api))
    lines = [e for e in api.get(LOGS, params={"limit": 500}).json()["results"] if RANGE in e["message"]]
    final = next(entry for entry in lines if not entry["message"].startswith("Batch exporting"))
    assert (final["level"], final["message"]) == (level, text)
    assert not [m for m in messages(api) if m.startswith("Starting batch export")]  # write-only logger
    exporting = [e["message"] for e in lines if e["message"].startswith("Batch exporting")]
    assert exporting == [
        f"Batch exporting range {RANGE} to S3: posthog/events/2024-01-01T00:00:00+00:00-"
        "2024-01-01T01:00:00+00:00.jsonl.gz"
    ]
    notification = f"Failure notification email for run '{run['id']}' has been sent"
    assert (notification in messages(api)) == (outcome.get("outcome") == "failed")


@pytest.mark.usefixtures("in_order")
def test_log_instance_id_is_a_workflow_run_id_nothing_links_to_the_run(api, emulator):  # §6.3
    emulator.state.set_run_outcome(EXPORT, duration=0)
    [run] = runs_of(api, backfill(api))
    entries = [e for e in api.get(LOGS).json()["results"] if RANGE in e["message"]]
    assert len(entries) == 2
    [instance_id] = {entry["instance_id"] for entry in entries}
    assert re.fullmatch(r"[0-9a-f-]{36}", instance_id) and instance_id != run["id"]
    assert instance_id not in str(run)
    assert api.get(LOGS, params={"instance_id": run["id"]}).json()["results"] == []
    assert len(api.get(LOGS, params={"instance_id": instance_id}).json()["results"]) == 2
    assert emulator.state.runs[run["id"]]["workflow_run_id"] == instance_id  # only tests can link them


@pytest.mark.usefixtures("in_order")
def test_cancelled_run_logs_a_warning_and_nothing_more(api, emulator):  # §6.3, §11.37
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.1)
    [run] = runs_of(api, backfill(api))
    until(
        "Running", lambda: api.get(f"batch_exports/{EXPORT}/runs/{run['id']}/").json()["status"] == "Running"
    )
    assert api.post(f"batch_exports/{EXPORT}/runs/{run['id']}/cancel/").json() == {"cancelled": True}
    newest = api.get(LOGS, params={"limit": 1}).json()["results"][0]
    assert (newest["level"], newest["message"]) == (
        "WARNING",
        f"Batch export for range {RANGE} was cancelled",
    )
    assert api.get(f"batch_exports/{EXPORT}/runs/{run['id']}/").json()["status"] == "Cancelled"


# -- visibility (§6.3) --------------------------------------------------------------------------


def _spread(emulator, count: int = 40) -> list[dict]:
    base = utcnow() - timedelta(minutes=30)
    entries = [
        {"timestamp": base + timedelta(seconds=k), "level": "INFO", "message": f"line {k}"}
        for k in range(count)
    ]
    emulator.state.add_log_entries(EXPORT, entries)
    return entries


def _visible(api, entries) -> list[str]:
    after = (entries[0]["timestamp"] - timedelta(seconds=1)).isoformat()
    return [e["message"] for e in api.get(LOGS, params={"after": after, "search": "line "}).json()["results"]]


def test_entries_become_visible_late_and_out_of_order_reproducibly(api, emulator):  # §6.3
    # An hour-long delay stretches the default 0-3 s: entries stamped 30 minutes ago are visible or
    # not by their seeded delay, so a newer entry shows while an older one is still hidden.
    emulator.state.set_switches(log_delay=3600, seed=7)
    entries = _spread(emulator)
    shown = _visible(api, entries)
    assert 0 < len(shown) < len(entries)
    numbers = [int(message.split()[1]) for message in shown]
    hidden = set(range(len(entries))) - set(numbers)
    assert min(hidden) < max(numbers)  # out of order: an older entry is still missing
    assert _visible(api, entries) == shown  # the same seed gives the same answer
    emulator.state.set_switches(seed=8)
    assert _visible(api, entries) != shown
    emulator.state.set_switches(log_delay=0)
    assert len(_visible(api, entries)) == len(entries)


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_default_delay_is_at_most_three_seconds(api, emulator):  # §6.3
    assert emulator.state.switches.log_delay == 3.0
    now = utcnow()
    emulator.state.add_log_entries(EXPORT, [{"timestamp": now, "level": "INFO", "message": "line 0"}])
    until("the entry", lambda: messages(api, after=(now - timedelta(seconds=1)).isoformat()), timeout=4)


@pytest.mark.slow  # waits for the moment (~0.5 s)
def test_an_entry_can_be_made_visible_at_a_given_moment(api, emulator):
    now = utcnow() - timedelta(seconds=5)
    emulator.state.set_switches(log_delay=0)
    emulator.state.add_log_entries(
        EXPORT,
        [
            {
                "timestamp": now,
                "level": "ERROR",
                "message": "older, late",
                "visible_at": utcnow() + timedelta(seconds=0.5),
            },
            {"timestamp": now + timedelta(seconds=1), "level": "INFO", "message": "newer"},
        ],
    )
    since = (now - timedelta(seconds=1)).isoformat()
    assert messages(api, after=since) == ["newer"]
    until("the late entry", lambda: messages(api, after=since) == ["newer", "older, late"])


@pytest.mark.usefixtures("in_order")
def test_timestamps_without_a_zero_fraction(api, emulator):  # §6.3
    emulator.state.add_log_entries(
        EXPORT,
        [
            {"timestamp": "2024-02-01T00:00:00Z", "level": "INFO", "message": "whole"},
            {"timestamp": "2024-02-01T00:00:00.250000Z", "level": "INFO", "message": "fraction"},
        ],
    )
    found = api.get(LOGS, params={"after": "2024-01-31T00:00:00Z", "before": "2024-02-02T00:00:00Z"}).json()
    assert [e["timestamp"] for e in found["results"]] == [
        "2024-02-01T00:00:00.250000Z",
        "2024-02-01T00:00:00Z",
    ]


# -- backfills (§6.9) -----------------------------------------------------


def test_a_range_shorter_than_one_interval_makes_no_run(api):  # §6.9
    backfill_id = api.post(
        BACKFILLS, {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T00:59:00Z"}
    ).json()["backfill_id"]
    assert runs_of(api, backfill_id) == []
    found = get_backfill(api, backfill_id)
    assert found["status"] == "Completed"
    # total_expected_runs rounds the partial interval up, though no run covers it.
    assert found["progress"] == {"total_runs": 1, "finished_runs": 1, "progress": 1.0}


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_one_run_per_interval_one_after_another(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, duration=0.3)
    backfill_id = backfill(api, hours=3)
    first = get_backfill(api, backfill_id)
    assert first["status"] == "Starting"
    assert first["progress"] == {"total_runs": 3, "finished_runs": 0, "progress": 0.0}
    assert (first["adjusted_start_at"], first["total_records_count"]) == (None, None)
    [run] = runs_of(api, backfill_id)
    assert run["status"] == "Starting" and run["backfill"] == backfill_id
    running = until(
        "Running",
        lambda: get_backfill(api, backfill_id)["status"] == "Running" and get_backfill(api, backfill_id),
    )
    assert running["adjusted_start_at"] == "2024-01-01T00:00:00.000000Z"
    assert running["total_records_count"] == 3000  # the estimate
    done = until(
        "Completed",
        lambda: get_backfill(api, backfill_id)["status"] == "Completed" and get_backfill(api, backfill_id),
    )
    assert done["progress"] == {"total_runs": 3, "finished_runs": 3, "progress": 1.0}
    runs = runs_of(api, backfill_id)
    assert [r["data_interval_start"] for r in runs] == [f"2024-01-01T0{h}:00:00.000000Z" for h in range(3)]
    for previous, following in itertools.pairwise(runs):
        assert previous["finished_at"] <= following["created_at"]  # one after another
    assert all(r["status"] == "Completed" and r["records_completed"] == 1000 for r in runs)
    assert done["finished_at"] == runs[-1]["finished_at"]


def test_a_start_inside_an_interval_is_narrowed_to_its_start(api, emulator):  # §6.9
    # get_backfill_info: data exists at every moment, so the start moves to the interval's start;
    # the steps stop before passing end_at, and total_expected_runs counts from the new start.
    emulator.state.set_run_outcome(EXPORT, duration=0)
    backfill_id = backfill(api, hours=3, start="2024-01-01T00:00:30Z")
    done = get_backfill(api, backfill_id)
    assert (done["status"], done["start_at"], done["adjusted_start_at"]) == (
        "Completed",
        "2024-01-01T00:00:30.000000Z",
        "2024-01-01T00:00:00.000000Z",
    )
    runs = runs_of(api, backfill_id)
    assert [r["data_interval_start"] for r in runs] == [f"2024-01-01T0{h}:00:00.000000Z" for h in range(3)]
    assert done["progress"] == {"total_runs": 4, "finished_runs": 4, "progress": 1.0}


def test_a_backfill_goes_on_after_a_failed_run_and_ends_completed(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, duration=0.05)
    emulator.state.set_run_outcome(EXPORT, "failed", duration=0.05, error_message="boom", times=1)
    backfill_id = backfill(api, hours=2)
    done = until(
        "the end",
        lambda: get_backfill(api, backfill_id)["status"] == "Completed" and get_backfill(api, backfill_id),
    )
    assert done["progress"] == {"total_runs": 2, "finished_runs": 2, "progress": 1.0}
    assert done["total_records_count"] == 1000  # only Completed runs count once it is over
    failed, completed = runs_of(api, backfill_id)
    assert (failed["status"], failed["latest_error"], failed["records_completed"]) == ("Failed", "boom", None)
    assert (completed["status"], completed["latest_error"]) == ("Completed", None)


def test_progress_rounds_to_one_decimal_and_counts_completed_and_failed(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, "failed", duration=0, times=1)
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.05)
    backfill_id = backfill(api, hours=3)
    found = until(
        "Running",
        lambda: get_backfill(api, backfill_id)["status"] == "Running" and get_backfill(api, backfill_id),
    )
    assert found["progress"] == {"total_runs": 3, "finished_runs": 1, "progress": 0.3}


def test_cancel_a_backfill(api, emulator, expect_error):  # §6.9
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.05)
    backfill_id = backfill(api, hours=3)
    until("Running", lambda: get_backfill(api, backfill_id)["status"] == "Running")
    assert api.post(f"{BACKFILLS}{backfill_id}/cancel/").json() == {"cancelled": True}
    found = get_backfill(api, backfill_id)
    assert (found["status"], found["progress"]) == ("Cancelled", None)
    assert [run["status"] for run in runs_of(api, backfill_id)] == ["Cancelled"]  # no later run starts
    expect_error(
        api.post(f"{BACKFILLS}{backfill_id}/cancel/"),
        400,
        "validation_error",
        "invalid_input",
        "Cannot cancel a backfill that is in 'Cancelled' status",
    )


def test_a_hanging_run_never_finishes_and_slow_runs_take_longer(api, emulator):
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.05, times=1)
    emulator.state.set_run_outcome(EXPORT, duration=5)
    hanging = runs_of(api, backfill(api))[0]
    slow = runs_of(api, backfill(api, start="2024-02-01T00:00:00Z"))[0]
    time.sleep(0.3)
    assert api.get(f"batch_exports/{EXPORT}/runs/{hanging['id']}/").json()["status"] == "Running"
    assert api.get(f"batch_exports/{EXPORT}/runs/{slow['id']}/").json()["status"] == "Starting"


def test_retry_of_a_run_answers_the_workflow_id_and_backfills_its_interval(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, duration=0)
    [run] = runs_of(api, backfill(api))
    retried = api.post(f"batch_exports/{EXPORT}/runs/{run['id']}/retry/")
    assert retried.status_code == 201
    assert retried.json() == {
        "backfill_id": f"{EXPORT}-Backfill-2024-01-01T00:00:00+00:00-2024-01-01T01:00:00+00:00"
    }
    newest = api.get(BACKFILLS).json()["results"][0]  # the row has a UUID of its own
    assert re.fullmatch(r"[0-9a-f-]{36}", newest["id"])
    assert (newest["start_at"], newest["end_at"]) == (run["data_interval_start"], run["data_interval_end"])
    [again] = runs_of(api, newest["id"])
    assert (again["data_interval_start"], again["data_interval_end"]) == (
        run["data_interval_start"],
        run["data_interval_end"],
    )


def test_a_second_workflow_of_the_same_range_is_a_500_while_the_first_runs(api, emulator, expect_error):
    # Temporal refuses a workflow id that is still open: WorkflowAlreadyStartedError, unhandled (§6.9).
    emulator.state.set_run_outcome(EXPORT, "hang")
    backfill(api)
    expect_error(
        api.post(BACKFILLS, {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T01:00:00Z"}),
        500,
        "server_error",
        "error",
        "A server error occurred.",
    )


def test_too_many_concurrent_backfills_is_a_429_without_retry_after(api, emulator, expect_error):  # §3
    assert emulator.state.switches.max_concurrent_backfills == 3
    emulator.state.set_switches(max_concurrent_backfills=2)
    emulator.state.set_run_outcome(EXPORT, "hang")
    backfill(api)
    backfill(api, start="2024-02-01T00:00:00Z")
    refused = api.post(BACKFILLS, {"start_at": "2024-03-01T00:00:00Z", "end_at": "2024-03-01T01:00:00Z"})
    expect_error(
        refused,
        429,
        "server_error",
        "too_many_concurrent_backfills",
        "This team already has 2 batch export backfills running. "
        "Wait for some to finish or cancel them before creating more.",
    )
    assert "Retry-After" not in refused.headers
    # Another export of the same team counts against the same limit.
    other = api.post(
        f"batch_exports/{SEED.bigquery_export_id}/backfills/",
        {"start_at": "2024-03-01T00:00:00Z", "end_at": "2024-03-01T01:00:00Z"},
    )
    assert other.status_code == 429


def test_the_limit_counts_rows_so_backfills_not_created_yet_do_not_count(api, emulator):  # §6.9
    emulator.state.set_switches(max_concurrent_backfills=1, backfill_row_delay=60)
    emulator.state.set_run_outcome(EXPORT, "hang")
    backfill(api)
    assert backfill(api, start="2024-02-01T00:00:00Z")  # the first row does not exist yet


def test_the_limit_is_checked_before_the_bounds(api, emulator):  # §6.9
    emulator.state.set_switches(max_concurrent_backfills=0)
    refused = api.post(BACKFILLS, {"start_at": "not a date", "end_at": "2024-01-01T00:00:00Z"})
    assert refused.status_code == 429


def test_the_seeded_daily_and_weekly_exports_read_dates_on_their_schedule(api):  # §6.9
    daily = api.post(
        f"batch_exports/{SEED.daily_export_id}/backfills/", {"start_at": "2024-01-01", "end_at": "2024-01-03"}
    )
    found = api.get(f"batch_exports/{SEED.daily_export_id}/backfills/{daily.json()['backfill_id']}/").json()
    # 02:00 in Europe/Berlin (CET, UTC+1).
    assert (found["start_at"], found["end_at"]) == (
        "2024-01-01T01:00:00.000000Z",
        "2024-01-03T01:00:00.000000Z",
    )
    assert found["progress"]["total_runs"] == 2
    weekly = api.post(
        f"batch_exports/{SEED.weekly_export_id}/backfills/",
        {"start_at": "2024-07-01", "end_at": "2024-07-15"},
    )
    found = api.get(f"batch_exports/{SEED.weekly_export_id}/backfills/{weekly.json()['backfill_id']}/").json()
    # Mondays 06:00 in America/New_York (EDT, UTC-4).
    assert (found["start_at"], found["end_at"]) == (
        "2024-07-01T10:00:00.000000Z",
        "2024-07-15T10:00:00.000000Z",
    )
    assert found["progress"]["total_runs"] == 2


def test_daily_steps_follow_local_time_across_dst(api, emulator):  # §6.9 (backfill_range)
    emulator.state.set_run_outcome(SEED.daily_export_id, duration=0)
    body = {"start_at": "2024-03-30", "end_at": "2024-04-01"}  # Berlin moves to CEST on 31 March
    backfill_id = api.post(f"batch_exports/{SEED.daily_export_id}/backfills/", body).json()["backfill_id"]
    runs = api.get(f"batch_exports/{SEED.daily_export_id}/runs/", params={"after": "-1000d"}).json()[
        "results"
    ]
    ends = sorted(run["data_interval_end"] for run in runs if run["backfill"] == backfill_id)
    # Steps of one local day: 24 hours, then 23. 02:00 does not exist on 31 March; Python reads it
    # as 02:00 CET (01:00 UTC), as PostHog's own arithmetic does.
    assert ends == ["2024-03-31T01:00:00.000000Z", "2024-04-01T00:00:00.000000Z"]


def test_an_earliest_backfill_is_one_run_without_a_start(api, emulator):  # §6.9
    emulator.state.set_feature_flag("batch-export-earliest-backfill")
    emulator.state.set_run_outcome(EXPORT, duration=0.2)
    backfill_id = api.post(BACKFILLS, {"end_at": "2024-01-01T00:00:00Z"}).json()["backfill_id"]
    found = get_backfill(api, backfill_id)
    assert (found["start_at"], found["adjusted_start_at"], found["progress"]) == (None, None, None)
    [run] = runs_of(api, backfill_id)
    assert (run["data_interval_start"], run["data_interval_end"]) == (None, "2024-01-01T00:00:00.000000Z")
    done = until(
        "Completed",
        lambda: get_backfill(api, backfill_id)["status"] == "Completed" and get_backfill(api, backfill_id),
    )
    assert done["progress"] == {"total_runs": 1, "finished_runs": 1, "progress": 1.0}


def test_without_end_at_only_open_ended_exports_backfill(api, emulator):  # §6.9
    emulator.state.set_feature_flag("batch-export-earliest-backfill")
    assert api.post(BACKFILLS, {"start_at": "2024-01-01T00:00:00Z"}).status_code == 500
    assert api.post(BACKFILLS, {}).status_code == 500


def test_a_backfill_of_an_export_without_schedule_fails(api, emulator):  # §6.9
    emulator.state.delete_schedule(EXPORT)
    found = get_backfill(api, backfill(api, hours=2))
    assert (found["status"], found["progress"]) == ("Failed", None)
    assert found["finished_at"] is not None


# -- the row comes late (§6.9) -------------------------------------------------------------------


def test_the_row_and_its_first_run_appear_after_the_row_delay(api, emulator):  # §6.9
    emulator.state.set_switches(backfill_row_delay=0.2)
    answer = api.post(BACKFILLS, {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T01:00:00Z"})
    assert answer.status_code == 201
    backfill_id = answer.json()["backfill_id"]
    assert api.get(f"{BACKFILLS}{backfill_id}/").status_code == 404
    assert api.get(BACKFILLS).json()["results"] == []
    assert runs_of(api, backfill_id) == []
    found = until(
        "the row", lambda: api.get(f"{BACKFILLS}{backfill_id}/").ok and get_backfill(api, backfill_id)
    )
    assert found["status"] == "Starting"
    [run] = runs_of(api, backfill_id)
    assert run["created_at"] == found["created_at"]  # the first run starts with the row


def test_the_row_delay_is_a_knob_everywhere(emulator):
    control = f"{emulator.url}/_emulator/switches"
    body = requests.post(
        control, json={"backfill_row_delay": 0.5, "auto_pause_threshold": 3}, timeout=5
    ).json()
    assert (body["backfill_row_delay"], body["auto_pause_threshold"]) == (0.5, 3)
    assert requests.post(control, json={"backfill_row_delay": -1}, timeout=5).status_code == 400
    assert requests.post(control, json={"auto_pause_threshold": 51}, timeout=5).status_code == 400
    from phenv_emulator import PostHogEmulator

    today = PostHogEmulator().state.switches
    assert (today.backfill_row_delay, today.auto_pause_threshold) == (2.0, 10)
    quick = PostHogEmulator(backfill_row_delay=0, auto_pause_threshold=0).state.switches
    assert (quick.backfill_row_delay, quick.auto_pause_threshold) == (0, 0)


def test_a_terminated_workflow_leaves_its_row_running_for_good(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, duration=0.1)
    backfill_id = backfill(api, hours=3)
    until("Running", lambda: get_backfill(api, backfill_id)["status"] == "Running")
    emulator.state.terminate_backfill(backfill_id)
    time.sleep(0.3)
    found = get_backfill(api, backfill_id)
    assert (found["status"], found["finished_at"]) == ("Running", None)
    assert found["progress"] == {"total_runs": 3, "finished_runs": 1, "progress": 0.3}  # its run ended
    assert len(runs_of(api, backfill_id)) == 1  # no later run starts
    # Cancelling the closed workflow fails inside PostHog, which answers 200 all the same.
    assert api.post(f"{BACKFILLS}{backfill_id}/cancel/").json() == {"cancelled": True}
    assert get_backfill(api, backfill_id)["status"] == "Running"
    with pytest.raises(ValueError):
        emulator.state.terminate_backfill(backfill_id)


def test_a_terminated_workflow_counts_against_the_limit(api, emulator):  # §6.9
    emulator.state.set_switches(max_concurrent_backfills=1)
    emulator.state.set_run_outcome(EXPORT, duration=0)
    emulator.state.set_run_outcome(EXPORT, "hang", times=1)
    emulator.state.terminate_backfill(backfill(api))
    assert (
        api.post(
            BACKFILLS, {"start_at": "2024-02-01T00:00:00Z", "end_at": "2024-02-01T01:00:00Z"}
        ).status_code
        == 429
    )


def test_terminate_and_auto_pause_through_the_control_api(api, emulator):
    control = f"{emulator.url}/_emulator"
    emulator.state.set_run_outcome(EXPORT, "hang")
    backfill_id = backfill(api)
    assert requests.post(f"{control}/terminate_backfill/{backfill_id}", timeout=5).status_code == 204
    assert requests.post(f"{control}/terminate_backfill/nope", timeout=5).status_code == 404
    assert requests.post(f"{control}/auto_pause/{EXPORT}", timeout=5).status_code == 204
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is True


# -- auto-pause (§6.9) ---------------------------------------------------------------------------


def _fail_runs(emulator, count: int) -> list[dict]:
    """``count`` Failed runs that ended in the last hours, oldest first."""
    emulator.state.set_run_outcome(EXPORT, "failed", duration=1)
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=count + 2)
    hour = timedelta(hours=1)
    return [
        emulator.state.start_run(EXPORT, begin, begin + hour, created_at=begin + hour)
        for begin in (start + hour * k for k in range(count))
    ]


@pytest.mark.usefixtures("in_order")
def test_ten_failed_runs_of_the_last_fifty_pause_the_export(api, emulator):  # §6.9
    _fail_runs(emulator, 9)
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is False
    [tenth] = _fail_runs(emulator, 1)
    export = api.get(f"batch_exports/{EXPORT}/").json()
    assert export["paused"] is True and export["last_paused_at"] is not None
    warnings = api.get(LOGS, params={"level": "WARNING"}).json()["results"]
    assert [entry["message"] for entry in warnings] == [
        "Batch export was automatically paused due to exceeding failure threshold and exhausting "
        "all automated retries.The batch export can be unpaused after addressing any errors."
    ]
    assert warnings[0]["instance_id"] == tenth["workflow_run_id"]  # written by the failing run


def test_retryable_failures_do_not_count_and_the_threshold_is_a_knob(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, "failed_retryable", duration=0)
    for hour in range(10):
        emulator.state.start_run(
            EXPORT,
            datetime(2024, 1, 1, hour, tzinfo=timezone.utc),
            datetime(2024, 1, 1, hour + 1, tzinfo=timezone.utc),
        )
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is False
    emulator.state.set_switches(auto_pause_threshold=2)
    _fail_runs(emulator, 2)
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is True


@pytest.mark.usefixtures("in_order")
def test_auto_pause_cancels_the_running_backfills(api, emulator):  # §6.9
    emulator.state.set_switches(auto_pause_threshold=1)
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.02)
    running = backfill(api, hours=3)
    until("Running", lambda: get_backfill(api, running)["status"] == "Running")
    emulator.state.set_run_outcome(EXPORT, "failed", duration=0.05, times=1)
    emulator.state.set_run_outcome(SEED.bigquery_export_id, "hang")
    other = api.post(
        f"batch_exports/{SEED.bigquery_export_id}/backfills/",
        {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T01:00:00Z"},
    ).json()["backfill_id"]
    failing = backfill(api, start="2024-02-01T00:00:00Z")
    until("the failure", lambda: get_backfill(api, failing)["status"] == "Cancelled")
    assert get_backfill(api, running)["status"] == "Cancelled"
    assert [run["status"] for run in runs_of(api, running)] == ["Cancelled"]
    assert (
        api.get(f"batch_exports/{SEED.bigquery_export_id}/backfills/{other}/").json()["status"] != "Cancelled"
    )
    warnings = [entry["message"] for entry in api.get(LOGS, params={"level": "WARNING"}).json()["results"]]
    assert warnings[0] == (
        "2 ongoing batch export backfills were cancelled due to exceeding failure threshold  and "
        "exhausting all automated retries.The backfill can be triggered again after addressing any errors."
    )


def test_the_auto_pause_helper_acts_at_once(api, emulator):  # §6.9
    emulator.state.set_run_outcome(EXPORT, "hang", duration=0.02)
    backfill_id = backfill(api)
    until("Running", lambda: get_backfill(api, backfill_id)["status"] == "Running")
    emulator.state.auto_pause(EXPORT)
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is True
    assert get_backfill(api, backfill_id)["status"] == "Cancelled"
    emulator.state.auto_pause(EXPORT)  # already paused: only the backfills (none left) again
    assert api.get(f"batch_exports/{EXPORT}/").json()["paused"] is True


# -- unpause with a backfill and the pause controls (§6.5, §6.9) -------------------------------


def test_unpause_saves_first_so_a_retry_starts_nothing(api, emulator):  # §6.9
    assert api.post(f"batch_exports/{EXPORT}/pause/").status_code == 200
    emulator.state.shift_last_paused_at(EXPORT, 2 * 3600 + 60)
    emulator.faults.add("lost_response", path="/unpause")
    with pytest.raises(requests.ConnectionError):
        api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True})
    assert api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True}).json() == {"paused": False}
    [only] = api.get(BACKFILLS).json()["results"]
    export = api.get(f"batch_exports/{EXPORT}/").json()
    assert (only["start_at"], only["end_at"]) == (export["last_paused_at"], export["last_updated_at"])


def test_unpause_is_not_held_back_by_the_limit(api, emulator):  # §6.5
    emulator.state.set_switches(max_concurrent_backfills=0)
    api.post(f"batch_exports/{EXPORT}/pause/")
    emulator.state.shift_last_paused_at(EXPORT, 3600)
    assert api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True}).json() == {"paused": False}
    assert len(api.get(BACKFILLS).json()["results"]) == 1


def test_a_short_pause_backfills_nothing(api, emulator):  # §6.9
    api.post(f"batch_exports/{EXPORT}/pause/")
    api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True})
    [only] = api.get(BACKFILLS).json()["results"]
    assert runs_of(api, only["id"]) == []
    # The start moves back to the hour's start, and the partial interval counts as one.
    assert (only["status"], only["progress"]["total_runs"]) == ("Completed", 1)


def test_backdated_pauses_give_a_short_pause_whole_intervals(api, emulator):
    emulator.state.backdate_pauses(3 * 3600)
    before = utcnow()
    api.post(f"batch_exports/{EXPORT}/pause/")
    paused_at = datetime.fromisoformat(
        api.get(f"batch_exports/{EXPORT}/").json()["last_paused_at"].replace("Z", "+00:00")
    )
    assert (
        before - timedelta(hours=3, seconds=1)
        < paused_at
        < before - timedelta(hours=3) + timedelta(seconds=1)
    )
    api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True})
    [only] = api.get(BACKFILLS).json()["results"]
    assert len(emulator.state.backfills[only["id"]]["intervals"]) == 3


def test_unpause_with_backfill_of_a_never_paused_export_backfills_from_the_start(api, emulator):  # §6.5
    emulator.state.batch_exports[EXPORT]["paused"] = True
    assert api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True}).json() == {"paused": False}
    [only] = api.get(BACKFILLS).json()["results"]
    assert (only["start_at"], only["end_at"]) == (
        None,
        api.get(f"batch_exports/{EXPORT}/").json()["last_updated_at"],
    )
    [run] = runs_of(api, only["id"])
    assert run["data_interval_start"] is None


def test_an_older_build_fails_that_unpause_after_saving(api, emulator):  # §6.5
    emulator.state.set_switches(["unpause-null-500"], backfill_row_delay=0)
    emulator.state.batch_exports[EXPORT]["paused"] = True
    assert api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True}).status_code == 500
    assert emulator.state.get_batch_export(EXPORT)["paused"] is False
    assert api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True}).json() == {"paused": False}
    assert api.get(BACKFILLS).json()["results"] == []


def test_control_api_shapes_runs_and_pauses(api, emulator):
    control = f"{emulator.url}/_emulator"
    assert requests.post(
        f"{control}/run_outcome/{EXPORT}", json={"outcome": "hang", "duration": 0.1, "times": 1}, timeout=5
    ).ok
    [run] = runs_of(api, backfill(api))
    time.sleep(0.2)
    assert api.get(f"batch_exports/{EXPORT}/runs/{run['id']}/").json()["status"] == "Running"
    assert (
        requests.post(f"{control}/run_outcome/{EXPORT}", json={"outcome": "explode"}, timeout=5).status_code
        == 400
    )
    api.post(f"batch_exports/{EXPORT}/pause/")
    assert requests.post(f"{control}/shift_last_paused_at/{EXPORT}", json={"seconds": 7200}, timeout=5).ok
    assert requests.post(f"{control}/backdate_pauses", json={"seconds": 60}, timeout=5).ok
    assert emulator.state.pause_backdates == {None: 60.0}
    api.post(f"batch_exports/{EXPORT}/unpause/", {"backfill": True})
    newest = api.get(BACKFILLS).json()["results"][0]
    assert len(emulator.state.backfills[newest["id"]]["intervals"]) == 2


# -- dashboards, destination tests, personal API keys (§6.6-§7.2, §2.1) ---------------------


def test_use_template_overwrites_description_and_filters(api):  # §7.2
    created = api.post(
        "dashboards/",
        {
            "use_template": "DEFAULT_APP",
            "name": "Mine",
            "description": "ours",
            "filters": {"date_from": "-7d"},
        },
    ).json()
    assert (created["name"], created["creation_mode"]) == ("Mine", "template")
    assert (created["description"], created["filters"]) == ("", {"date_from": "-30d"})


def test_awss3_assume_role_step_is_skipped_without_a_role_arn(api, emulator):  # §6.6
    step0 = api.post(f"batch_exports/{EXPORT}/run_test_step/", {**_export_payload(api), "step": 0}).json()
    assert step0["result"] == {"status": "Skipped", "message": "No AWS role ARN provided, skipping test"}
    emulator.state.integrations[SEED.s3_integration_id]["role_arn"] = "arn:aws:iam::123456789012:role/posthog"
    step0 = api.post(f"batch_exports/{EXPORT}/run_test_step/", {**_export_payload(api), "step": 0}).json()
    assert step0["result"] == {"status": "Passed", "message": None}


def _export_payload(api) -> dict:
    export = api.get(f"batch_exports/{EXPORT}/").json()
    return {key: export[key] for key in ("name", "interval", "destination")}


def test_a_key_reads_its_own_label_and_scopes(emulator, expect_error):  # §2.1
    key = emulator.state.add_api_key(["batch_export:read"], scoped_teams=[SEED.team_id], label="airflow")
    url = f"{emulator.url}/api/personal_api_keys/"
    me = requests.get(url + "@current/", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert me.status_code == 200
    body = me.json()
    assert (body["label"], body["scopes"], body["scoped_teams"], body["scoped_organizations"]) == (
        "airflow",
        ["batch_export:read"],
        [SEED.team_id],
        [],
    )
    assert key not in me.text
    by_id = requests.get(url + body["id"] + "/", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert (by_id.status_code, by_id.json()) == (200, body)
    other_key = emulator.state.add_api_key(["*"])
    other_id = requests.get(url + "@current/", headers={"Authorization": f"Bearer {other_key}"}, timeout=5)
    expect_error(
        requests.get(
            url + other_id.json()["id"] + "/", headers={"Authorization": f"Bearer {key}"}, timeout=5
        ),
        403,
        "authentication_error",
        "permission_denied",
        "This action does not support Personal API Key access",
    )
    assert (
        requests.get(url + "@current", headers={"Authorization": "Bearer phx_nope"}, timeout=5).status_code
        == 401
    )
