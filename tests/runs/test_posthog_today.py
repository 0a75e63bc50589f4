"""
The flows that failed against PostHog as its source shows it (the December audit), each against
the emulator playing today's PostHog: date-only backfills of daily and weekly exports, backfill
rows that appear after the 201, retry's workflow id, runs older than 7 days, unpause of an export
created paused, and exports PostHog pauses by itself.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, time, timedelta, timezone

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogBackfillNotVisibleError
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.batch_exports import (
    PostHogBackfillBatchExportOperator,
    PostHogBackfillError,
    PostHogUnpauseBatchExportOperator,
)
from airflow_provider_phenv.sensors.batch_exports import (
    PostHogBatchExportRunError,
    PostHogBatchExportRunSensor,
)
from airflow_provider_phenv.waits import FAILED, SUCCESS
from airflow_provider_phenv.waits.runs import RunsWait
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import MODES, FakeTI, make_context
from tests.runs.conftest import FAST, HOURLY, hours_ago, task_context
from tests.runs.test_backfill_operators import backfill_posts, run_op

DAILY = SEED.daily_export_id  # Europe/Berlin, offset_hour 2
WEEKLY = SEED.weekly_export_id  # America/New_York, Mondays at 06:00


@pytest.fixture
def late_rows(emulator, posthog_conn):
    """Backfill rows show 0.1 s after PostHog's 201 (ROW_DELAY in tests/conftest.py)."""
    for export_id in (HOURLY, DAILY, WEEKLY):
        emulator.state.set_run_outcome(export_id, "completed", duration=0.1)
    return emulator


def days_ago(n: int) -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=n)


def last_monday(weeks_back: int = 1) -> date:
    today = datetime.now(timezone.utc).date()
    return today - timedelta(days=today.weekday() + 7 * weeks_back)


def backfill_op(**kwargs) -> PostHogBackfillBatchExportOperator:
    kwargs.setdefault("task_id", "backfill")
    kwargs.setdefault("poll_interval", 0.1)
    return PostHogBackfillBatchExportOperator(**FAST, **kwargs)


def sent_bounds(emulator) -> list[tuple[str, str]]:
    return [(r.body["start_at"], r.body["end_at"]) for r in backfill_posts(emulator)]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (lambda: days_ago(3), lambda: days_ago(1)),  # dates
        (lambda: days_ago(3).isoformat(), lambda: days_ago(1).isoformat()),  # {{ ds }}
        (  # {{ data_interval_start }} of a daily DAG: midnight UTC
            lambda: datetime.combine(days_ago(3), time.min, timezone.utc),
            lambda: datetime.combine(days_ago(1), time.min, timezone.utc).isoformat(),
        ),
    ],
)
def test_a_daily_export_in_berlin_is_backfilled_by_dates(late_rows, start, end):
    # Deferred for the datetime form, in the worker for the others: the same judgement either way.
    deferrable = isinstance(start(), datetime)
    op = backfill_op(batch_export_id=DAILY, start_at=start(), end_at=end(), deferrable=deferrable)
    result = run_op(op, task_context())
    assert result["status"] == "Completed"
    assert result["total_runs"] == result["finished_runs"] == 2
    assert sent_bounds(late_rows) == [(days_ago(3).isoformat(), days_ago(1).isoformat())]
    # The real id of the one backfill, as PostHog lists it.
    (backfill,) = [b for b in late_rows.state.backfills.values() if b["batch_export_id"] == DAILY]
    assert result["backfill_id"] == backfill["id"]


def test_a_weekly_export_is_backfilled_from_its_weekday(late_rows):
    start, end = last_monday(2), last_monday(1)
    result = run_op(backfill_op(batch_export_id=WEEKLY, start_at=start, end_at=end), task_context())
    assert result["status"] == "Completed"
    assert sent_bounds(late_rows) == [(start.isoformat(), end.isoformat())]


def test_a_wrong_weekday_is_refused_before_any_write_naming_the_exports_weekday(late_rows):
    tuesday = last_monday(2) + timedelta(days=1)
    op = backfill_op(batch_export_id=WEEKLY, start_at=tuesday, end_at=last_monday(1))
    with pytest.raises(ValueError, match=r"is a Tuesday, but the batch export runs weekly on Monday"):
        op.execute(task_context())
    assert [r.method for r in api_requests(late_rows)] == ["GET"]  # the export, for its weekday


def test_a_time_of_day_on_a_daily_export_is_refused_before_any_write(late_rows):
    noon = datetime.combine(days_ago(3), time(12), timezone.utc)
    with pytest.raises(ValueError, match="every day at 02:00 Europe/Berlin"):
        backfill_op(batch_export_id=DAILY, start_at=noon, end_at=days_ago(1)).execute(task_context())
    assert backfill_posts(late_rows) == []


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_backfill_whose_row_shows_late_is_waited_for_once(late_rows, deferrable):
    op = backfill_op(
        batch_export_id=HOURLY, start_at=hours_ago(8), end_at=hours_ago(6), deferrable=deferrable
    )
    result = run_op(op, task_context())
    assert result["status"] == "Completed"
    assert len(backfill_posts(late_rows)) == 1
    assert any(r.status == 404 for r in api_requests(late_rows))  # the row really was late


def test_a_backfill_not_waited_for_returns_its_status_once_it_shows(late_rows):
    op = backfill_op(
        batch_export_id=HOURLY, start_at=hours_ago(8), end_at=hours_ago(6), wait_for_completion=False
    )
    result = op.execute(task_context())
    assert uuid.UUID(result["backfill_id"])
    assert result["status"] in ("Starting", "Running", "Completed")


def test_a_backfill_that_never_shows_fails_the_wait_after_the_grace(late_rows):
    late_rows.state.set_switches(backfill_row_delay=3600)
    op = backfill_op(batch_export_id=HOURLY, start_at=hours_ago(8), end_at=hours_ago(6))
    op.hook.backfill_row_grace = 0.3
    with pytest.raises(PostHogBackfillNotVisibleError, match="is still not in PostHog"):
        op.execute(task_context())


@pytest.mark.parametrize("deferrable", [False, True])
def test_unpause_waits_for_the_backfill_posthog_starts_late(late_rows, deferrable):
    hook = PostHogHook()
    hook.pause_batch_export(HOURLY)
    late_rows.state.shift_last_paused_at(HOURLY, 3 * 3600)
    op = PostHogUnpauseBatchExportOperator(
        task_id="unpause",
        batch_export_id=HOURLY,
        backfill=True,
        wait_for_backfill=True,
        poll_interval=0.1,
        deferrable=deferrable,
        **FAST,
    )
    context = task_context()
    assert run_op(op, context) == {"batch_export_id": HOURLY, "paused": False}
    (backfill,) = [b for b in late_rows.state.backfills.values() if b["batch_export_id"] == HOURLY]
    assert context["ti"].pushed["backfill_id"] == backfill["id"]
    assert op.backfill_url
    assert hook.get_batch_export_backfill(HOURLY, backfill["id"])["status"] == "Completed"


def test_unpause_with_a_backfill_of_an_export_created_paused_is_refused_before_it_is_sent(late_rows):
    with late_rows.state.lock:
        late_rows.state.batch_exports[HOURLY].update(paused=True, last_paused_at=None)
    op = PostHogUnpauseBatchExportOperator(task_id="unpause", batch_export_id=HOURLY, backfill=True, **FAST)
    with pytest.raises(ValueError, match=r"no last_paused_at.*beginning of its data"):
        op.execute(task_context())
    assert [r.method for r in api_requests(late_rows)] == ["GET"]
    assert late_rows.state.get_batch_export(HOURLY)["paused"] is True


def test_retry_of_a_run_returns_the_real_backfill_id_and_posthogs_workflow_id(late_rows):
    run = late_rows.state.start_run(HOURLY, hours_ago(9), hours_ago(8))
    with PostHogHook() as hook:
        retried = hook.retry_batch_export_run(HOURLY, run["id"])
        assert retried["workflow_id"].startswith(f"{HOURLY}-Backfill-")
        backfill = hook.get_batch_export_backfill(HOURLY, retried["backfill_id"])
    assert backfill["id"] == retried["backfill_id"]
    # A DAG can wait for it with the backfill operator's wait.
    wait = RunsWait(HOURLY, backfill_id=retried["backfill_id"], started_at=datetime.now(timezone.utc))
    assert poll_to_the_end(wait).status == SUCCESS


def poll_to_the_end(wait: RunsWait):
    """Poll a wait, as the backfill operator does, until it ends."""
    with PostHogHook() as hook:
        for _ in range(100):
            outcome = wait.poll(hook, None)
            if outcome.status in (SUCCESS, FAILED):
                return outcome
            threading.Event().wait(0.1)
    raise AssertionError("the backfill never ended")


def test_runs_older_than_seven_days_are_read_retried_and_cancelled(late_rows):
    with PostHogHook() as hook:
        run = hook.get_batch_export_run(HOURLY, SEED.old_run_id)
        assert run["id"] == SEED.old_run_id
        assert hook.retry_batch_export_run(HOURLY, SEED.old_run_id)["backfill_id"]
    for record in api_requests(late_rows):
        if "/runs/" in record.path and record.path.rstrip("/").split("/")[-1] != "runs":
            assert "after" in record.query, record.path


def test_a_run_sensor_fails_at_once_when_posthog_pauses_the_export(late_rows):
    started = datetime.now(timezone.utc)
    late_rows.state.auto_pause(HOURLY)
    sensor = PostHogBatchExportRunSensor(
        task_id="wait", batch_export_id=HOURLY, until=hours_ago(-1), poke_interval=0.1, timeout=30, **FAST
    )
    with pytest.raises(PostHogBatchExportRunError, match=rf"batch export {HOURLY} was paused at"):
        MODES["poke"](sensor, make_context(FakeTI(started - timedelta(seconds=1))))


def test_a_run_sensor_on_an_export_paused_before_it_started_waits(late_rows):
    late_rows.state.auto_pause(HOURLY)
    sensor = PostHogBatchExportRunSensor(
        task_id="wait", batch_export_id=HOURLY, until=hours_ago(-1), poke_interval=0.1, **FAST
    )
    sensor.begin()
    assert sensor.poke(make_context(FakeTI(datetime.now(timezone.utc) + timedelta(hours=1)))) is False


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_backfill_cancelled_by_an_auto_pause_fails_naming_the_pause(late_rows):
    late_rows.state.set_run_outcome(HOURLY, "hang")
    op = backfill_op(batch_export_id=HOURLY, start_at=hours_ago(8), end_at=hours_ago(6))

    def pause_soon() -> None:
        # PostHog's auto-pause cancels the export's Running backfills (finish_batch_export_run).
        with PostHogHook() as other:
            for _ in range(200):
                listed = other.list_batch_export_backfills(HOURLY)
                if listed and listed[0]["status"] == "Running":
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the backfill never ran")
        late_rows.state.auto_pause(HOURLY)

    thread = threading.Thread(target=pause_soon)
    thread.start()
    try:
        with pytest.raises(PostHogBackfillError, match=rf"batch export {HOURLY} was paused at"):
            op.execute(task_context())
    finally:
        thread.join()


def test_an_unpause_whose_backfill_never_shows_fails_when_it_should_wait(late_rows):
    hook = PostHogHook()
    hook.pause_batch_export(HOURLY)
    late_rows.state.set_switches(backfill_row_delay=3600)
    op = PostHogUnpauseBatchExportOperator(
        task_id="unpause", batch_export_id=HOURLY, backfill=True, wait_for_backfill=True, **FAST
    )
    op.hook.backfill_row_grace = 0.3
    with pytest.raises(PostHogBackfillNotVisibleError, match="no backfill of it appeared"):
        op.execute(task_context())
