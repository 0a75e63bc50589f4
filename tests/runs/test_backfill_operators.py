"""The backfill operator and the unpause-with-wait against the emulator, in the worker and deferred."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from phenv_emulator import SEED

from airflow_provider_phenv.operators.batch_exports import (
    PostHogBackfillError,
    PostHogBackfillTimeoutError,
    PostHogUnpauseBatchExportOperator,
)
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import FakeStateStore, run_trigger
from tests.runs.conftest import FAST, HOURLY, backfill_op, hours_ago, task_context

ERROR = "S3 bucket 'exports' does not exist"


def run_op(op, context):
    """Run an operator as the task runner does: execute, and after a deferral the trigger, then resume."""
    try:
        return op.execute(context)
    except TaskDeferred as deferred:
        event = run_trigger(deferred.trigger)
        return getattr(op, deferred.method_name)(context, event=event.payload, **(deferred.kwargs or {}))


def backfill_posts(emulator) -> list:
    return [r for r in api_requests(emulator) if r.method == "POST" and r.path.endswith("/backfills/")]


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_backfill_and_wait_returns_the_same_value_in_the_worker_and_deferred(quick_runs, deferrable):
    op = backfill_op(deferrable=deferrable)
    result = run_op(op, task_context())
    assert result["batch_export_id"] == HOURLY
    assert result["status"] == "Completed"
    assert result["total_runs"] == result["finished_runs"] >= 1
    assert result["records_completed"] > 0
    assert len(backfill_posts(quick_runs)) == 1
    assert op.backfill_url.endswith(f"/project/1/batch_exports/{HOURLY}#backfills")


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_failed_run_fails_the_task_quoting_posthog(quick_runs, deferrable):
    quick_runs.state.set_run_outcome(HOURLY, "failed", duration=0.1, error_message=ERROR)
    with pytest.raises(PostHogBackfillError, match=r"ended Failed.*S3 bucket 'exports' does not exist"):
        run_op(backfill_op(deferrable=deferrable), task_context())


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_backfill_that_outlasts_the_timeout_is_cancelled(quick_runs, deferrable):
    quick_runs.state.set_run_outcome(HOURLY, "completed", duration=60)
    with pytest.raises(PostHogBackfillTimeoutError, match="was cancelled in PostHog"):
        run_op(backfill_op(deferrable=deferrable, timeout=0.5), task_context())
    (cancel,) = [r for r in api_requests(quick_runs) if r.path.endswith("/cancel/")]
    assert cancel.status == 200
    assert [run["status"] for run in _backfill_runs(quick_runs)] == ["Cancelled"] * len(
        _backfill_runs(quick_runs)
    )


def _backfill_runs(emulator) -> list:
    from airflow_provider_phenv.hooks.posthog import PostHogHook

    with PostHogHook() as hook:
        return [run for run in hook.list_batch_export_runs(HOURLY) if run.get("backfill")]


def test_killing_the_task_cancels_its_backfill(quick_runs):
    quick_runs.state.set_run_outcome(HOURLY, "completed", duration=60)
    op = backfill_op()
    outcome: dict = {}

    def work() -> None:
        try:
            op.execute(task_context())
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while op._waiting_on is None and time.monotonic() < deadline:
        time.sleep(0.02)
    op.on_kill()
    worker.join(10)
    # A backfill killed before PostHog shows it is cancelled as soon as it shows.
    cancels = [r.status for r in api_requests(quick_runs) if r.path.endswith("/cancel/")]
    assert cancels[-1] == 200 and set(cancels[:-1]) <= {404}
    assert isinstance(outcome["error"], PostHogBackfillError)  # the wait sees the cancelled backfill


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_retry_attaches_to_the_backfill_its_earlier_try_started(quick_runs, mocker):
    store = FakeStateStore()
    first = backfill_op()
    mocker.patch.object(first, "wait_for_backfill", side_effect=RuntimeError("the worker died"))
    with pytest.raises(RuntimeError):
        first.execute(task_context(store))
    result = backfill_op().execute(task_context(store))
    assert result["status"] == "Completed"
    assert len(backfill_posts(quick_runs)) == 1


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_without_a_state_store_a_retry_finds_the_running_backfill_over_the_same_range(quick_runs, mocker):
    quick_runs.state.set_run_outcome(HOURLY, "completed", duration=1.5)
    first = backfill_op()
    mocker.patch.object(first, "wait_for_backfill", side_effect=RuntimeError("the worker died"))
    with pytest.raises(RuntimeError):
        first.execute(task_context())
    assert backfill_op().execute(task_context())["status"] == "Completed"
    # The first try's backfill was not visible yet when the retry looked, so the retry sent its
    # create too; PostHog refuses a second workflow over the same range while the first runs (a
    # 500), and the hook then finds the first one.
    assert len([b for b in quick_runs.state.backfills.values() if b["batch_export_id"] == HOURLY]) == 1


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_lost_answer_to_the_create_leaves_exactly_one_backfill(quick_runs):
    quick_runs.faults.add("lost_response", method="POST", path="/backfills/")
    assert backfill_op().execute(task_context())["status"] == "Completed"
    assert len(backfill_posts(quick_runs)) == 1


def test_without_waiting_the_task_returns_once_the_backfill_started(quick_runs):
    result = backfill_op(wait_for_completion=False).execute(task_context())
    assert result["status"] in ("Starting", "Running")
    assert result["backfill_id"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_at": hours_ago(2), "end_at": hours_ago(3)}, "start_at must be before end_at"),
        ({"end_at": hours_ago(-2)}, "in the future"),
        ({"start_at": "2026-01-01T00:00:00"}, "Invalid start_at"),
        ({"batch_export_id": "nope"}, "Invalid batch_export_id 'nope'"),
        ({"timeout": -1}, "Invalid timeout -1"),
    ],
)
def test_bad_literal_input_fails_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        backfill_op(**kwargs)


def test_a_datetime_for_a_daily_export_is_refused_before_the_backfill_is_sent(emulator, posthog_conn):
    op = backfill_op(batch_export_id=SEED.paused_export_id, start_at=hours_ago(50), end_at=hours_ago(30))
    with pytest.raises(ValueError, match=r"runs every day.*give a date such as"):
        op.execute(task_context())
    assert backfill_posts(emulator) == []


def test_templated_bounds_are_checked_after_rendering_before_any_request(emulator, posthog_conn):
    op = backfill_op(start_at="{{ params.start }}", end_at="{{ params.end }}")
    op.render_template_fields({"params": {"start": "yesterday", "end": "today"}})
    with pytest.raises(ValueError, match="Invalid start_at 'yesterday'"):
        op.execute(task_context())
    assert api_requests(emulator) == []


# -- unpause with a backfill ----------------------------------------------------------------------


def paused_hourly(emulator, hours: int = 3) -> None:
    """Pause the hourly export as if ``hours`` ago, so an unpause backfills that time."""
    with emulator.state.lock:
        export = emulator.state.batch_exports[HOURLY]
        export.update(paused=True, last_paused_at=hours_ago(hours) + timedelta(minutes=1))


def test_a_lost_unpause_answer_is_not_sent_again_and_the_backfill_is_found(quick_runs):
    paused_hourly(quick_runs)
    quick_runs.faults.add("lost_response", method="POST", path="/unpause/")
    context = task_context()
    op = PostHogUnpauseBatchExportOperator(task_id="unpause", batch_export_id=HOURLY, backfill=True, **FAST)
    op.execute(context)
    assert len([r for r in api_requests(quick_runs) if r.path.endswith("/unpause/")]) == 1
    assert context["ti"].pushed["backfill_id"] is not None


def test_unpausing_an_active_export_pushes_no_backfill(quick_runs):
    context = task_context()
    op = PostHogUnpauseBatchExportOperator(
        task_id="unpause", batch_export_id=HOURLY, backfill=True, wait_for_backfill=True, **FAST
    )
    assert op.execute(context) == {"batch_export_id": HOURLY, "paused": False}
    assert context["ti"].pushed["backfill_id"] is None
    assert [r for r in api_requests(quick_runs) if r.path.endswith("/unpause/")] == []
