"""Judging backfills and data intervals from PostHog's answers, without any transport."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from phenv_emulator.batch_exports.runs import RUN_STATUSES as EMULATED_STATUSES

from airflow_provider_phenv.hooks.posthog import find_backfill
from airflow_provider_phenv.validation import (
    RUN_STATUSES,
    ExportSchedule,
    RunStatus,
    backfill_moment,
    check_backfill_range,
    format_timestamp,
)
from airflow_provider_phenv.waits import (
    ACTIVE_STATUSES,
    FAILED,
    FAILED_STATUSES,
    FINAL_STATUSES,
    SUCCESS,
    WAITING,
)
from airflow_provider_phenv.waits.runs import judge_backfill, judge_interval

EXPORT = "01900000-0000-7000-8000-0000000000e1"
BACKFILL = "01900000-0000-7000-8000-00000000b001"
T0 = datetime(2026, 1, 31, 0, 0, tzinfo=timezone.utc)


def hour(n: float) -> str:
    return format_timestamp(T0 + timedelta(hours=n))


def run(
    start: float, status: str = "Completed", *, records: int | None = 10, error: str | None = None, **extra
):
    return {
        "id": f"run-{start}-{status}",
        "status": status,
        "data_interval_start": hour(start),
        "data_interval_end": hour(start + 1),
        "records_completed": records if status == "Completed" else None,
        "latest_error": error,
        "backfill": BACKFILL,
        **extra,
    }


def backfill(status: str, total: int = 3, finished: int = 3, progress: bool = True) -> dict:
    return {
        "id": BACKFILL,
        "status": status,
        "start_at": hour(0),
        "end_at": hour(total),
        "created_at": hour(10),
        "progress": {"total_runs": total, "finished_runs": finished, "progress": finished / total}
        if progress
        else None,
    }


def test_a_running_backfill_is_waited_for_with_its_progress():
    outcome = judge_backfill(EXPORT, backfill("Running", 3, 1), [])
    assert outcome.status == WAITING
    assert "1/3 runs finished" in outcome.message


def test_a_completed_backfill_with_every_run_completed_succeeds():
    runs = [run(0), run(1), run(2, records=5)]
    outcome = judge_backfill(EXPORT, backfill("Completed"), runs)
    assert outcome.status == SUCCESS
    assert outcome.value == {
        "batch_export_id": EXPORT,
        "backfill_id": BACKFILL,
        "status": "Completed",
        "total_runs": 3,
        "finished_runs": 3,
        "records_completed": 25,
    }


def test_a_completed_backfill_with_a_failed_run_fails_quoting_the_error():
    """PostHog goes on after a failed run and can still call the backfill Completed (docs §6.9)."""
    runs = [run(0), run(1, "Failed", error="S3 access denied"), run(2)]
    outcome = judge_backfill(EXPORT, backfill("Completed"), runs)
    assert outcome.status == FAILED
    assert "S3 access denied" in outcome.message
    assert hour(1) in outcome.message and "ended Failed" in outcome.message


def test_runs_of_other_backfills_do_not_count():
    runs = [run(0), run(1, "Failed", error="boom", backfill="another")]
    assert judge_backfill(EXPORT, backfill("Completed", 1, 1), runs).status == SUCCESS


@pytest.mark.parametrize("status", ["Failed", "Cancelled"])
def test_a_failed_or_cancelled_backfill_fails_and_counts_runs_without_progress(status):
    outcome = judge_backfill(EXPORT, backfill(status, progress=False), [run(0), run(1, "Cancelled")])
    assert outcome.status == FAILED
    # PostHog's finished_runs counts Completed and Failed runs only (get_progress): so do we.
    assert outcome.value["total_runs"] == 2 and outcome.value["finished_runs"] == 1
    assert f"ended {status}" in outcome.message


@pytest.mark.parametrize("progress", [None, {"total_runs": None, "finished_runs": None, "progress": None}])
def test_a_backfill_without_counts_never_reports_none_of_none(progress):
    """PostHog's progress is null while it does not know the planned run count (get_progress)."""
    outcome = judge_backfill(EXPORT, {**backfill("Starting"), "progress": progress}, [])
    assert outcome.status == WAITING
    assert "None" not in outcome.message
    assert "Starting, run count not known yet" in outcome.message


def test_an_interval_covered_by_completed_runs_is_exported():
    since, until = T0, T0 + timedelta(hours=2)
    outcome = judge_interval(EXPORT, [run(0), run(1), run(5)], since, until)
    assert outcome.status == SUCCESS
    assert [summary["data_interval_start"] for summary in outcome.value["runs"]] == [hour(0), hour(1)]
    assert outcome.value["records_completed"] == 20


def test_a_gap_is_waited_for():
    outcome = judge_interval(EXPORT, [run(0)], T0, T0 + timedelta(hours=2))
    assert outcome.status == WAITING
    assert hour(1) in outcome.message


def test_a_failed_interval_fails_unless_a_retry_completed_or_is_running():
    since, until = T0, T0 + timedelta(hours=1)
    failed = run(0, "Failed", error="Snowflake warehouse suspended")
    outcome = judge_interval(EXPORT, [failed], since, until)
    assert outcome.status == FAILED and "Snowflake warehouse suspended" in outcome.message
    assert judge_interval(EXPORT, [failed, run(0, "Running")], since, until).status == WAITING
    assert judge_interval(EXPORT, [failed, run(0)], since, until).status == SUCCESS


def test_find_backfill_matches_bounds_and_creation_time():
    made = {
        "id": "b1",
        "start_at": "2026-01-31T00:00:00Z",
        "end_at": "2026-02-01T00:00:00Z",
        "created_at": hour(50),
    }
    older = {**made, "id": "b0", "created_at": hour(1)}
    since = T0 + timedelta(hours=50)
    assert find_backfill([older, made], ("2026-01-31", "2026-02-01"), since)["id"] == "b1"
    assert find_backfill([older], ("2026-01-31", "2026-02-01"), since) is None
    assert find_backfill([older, made], None, None)["id"] == "b1"


DAILY = ExportSchedule(interval="day")
BERLIN = ExportSchedule(interval="day", timezone="Europe/Berlin", offset_hour=2)
MONDAYS = ExportSchedule(interval="week", timezone="America/New_York", offset_day=1, offset_hour=6)


def test_backfill_range_takes_dates_for_daily_exports_and_datetimes_otherwise():
    now = T0 + timedelta(days=10)
    assert check_backfill_range("2026-01-31", date(2026, 2, 2), schedule=DAILY, now=now) == (
        "2026-01-31",
        "2026-02-02",
    )
    # Airflow's data_interval_start of a daily DAG is midnight UTC: it means that day.
    assert check_backfill_range(T0, T0 + timedelta(days=1), schedule=BERLIN, now=now) == (
        "2026-01-31",
        "2026-02-01",
    )
    # So does the export's own day start (02:00 in Berlin).
    berlin_start = datetime(2026, 1, 31, 1, tzinfo=timezone.utc)
    assert check_backfill_range(berlin_start, "2026-02-01", schedule=BERLIN, now=now) == (
        "2026-01-31",
        "2026-02-01",
    )
    assert check_backfill_range("2026-01-31", T0 + timedelta(hours=3), now=now) == (
        "2026-01-31T00:00:00.000000Z",
        "2026-01-31T03:00:00.000000Z",
    )


def test_weekly_backfill_dates_must_fall_on_the_exports_weekday():
    now = T0 + timedelta(days=30)
    assert check_backfill_range("2026-02-02", "2026-02-09", schedule=MONDAYS, now=now) == (
        "2026-02-02",
        "2026-02-09",
    )
    with pytest.raises(ValueError, match=r"2026-01-31 is a Saturday.*weekly on Monday at 06:00 America"):
        check_backfill_range("2026-01-31", "2026-02-09", schedule=MONDAYS, now=now)


def test_a_date_bound_is_read_as_posthog_reads_it():
    """validate_date_input: the date at offset_hour in the export's timezone."""
    assert backfill_moment("2026-01-31", BERLIN) == datetime(2026, 1, 31, 1, tzinfo=timezone.utc)
    assert backfill_moment("2026-02-02", MONDAYS) == datetime(2026, 2, 2, 11, tzinfo=timezone.utc)
    assert backfill_moment("2026-01-31") == T0
    assert BERLIN.day_at_or_before(datetime(2026, 1, 31, 0, 30, tzinfo=timezone.utc)) == date(2026, 1, 30)
    assert MONDAYS.day_at_or_before(datetime(2026, 2, 4, tzinfo=timezone.utc)) == date(2026, 2, 2)


def test_find_backfill_matches_date_bounds_as_posthog_stored_them():
    stored = {"id": "b1", "start_at": "2026-01-31T02:00:00+01:00", "end_at": "2026-02-01T02:00:00+01:00"}
    assert find_backfill([stored], ("2026-01-31", "2026-02-01"), None, schedule=BERLIN) == stored
    assert find_backfill([stored], ("2026-01-31", "2026-02-01"), None) is None


@pytest.mark.parametrize(
    ("start", "end", "schedule", "message"),
    [
        (T0 + timedelta(hours=1), T0, None, "start_at must be before end_at"),
        (T0, T0 + timedelta(days=30), None, "in the future"),
        ("2026-01-31T00:00:00", T0 + timedelta(hours=1), None, "with a timezone"),
        (T0 + timedelta(hours=6), T0 + timedelta(days=1), DAILY, "give a date such as '2026-01-31'"),
        (T0 + timedelta(hours=6), T0 + timedelta(days=1), BERLIN, "every day at 02:00 Europe/Berlin"),
        ("last tuesday", T0, None, "Invalid start_at 'last tuesday'"),
    ],
)
def test_bad_backfill_ranges_name_the_value(start, end, schedule, message):
    with pytest.raises(ValueError, match=message):
        check_backfill_range(start, end, schedule=schedule, now=T0 + timedelta(days=10))


def test_every_run_status_is_either_active_or_final_and_matches_posthog_strings():
    assert set(ACTIVE_STATUSES) | FINAL_STATUSES == set(RunStatus)
    assert not set(ACTIVE_STATUSES) & FINAL_STATUSES
    assert set(RUN_STATUSES) == set(EMULATED_STATUSES)  # the emulator serves PostHog's statuses
    # Plain strings from PostHog's answers are found in the groups; members print as PostHog's word.
    assert "FailedRetryable" in ACTIVE_STATUSES and "TimedOut" in FAILED_STATUSES
    assert "Completed" in FINAL_STATUSES and "Completed" not in FAILED_STATUSES
    assert f"{RunStatus.FAILED_BILLING}" == str(RunStatus.FAILED_BILLING) == "FailedBilling"
