"""The runs trigger with asyncio against the emulator over HTTP: reads only, restarts safely."""

from __future__ import annotations

import asyncio
import importlib
import json
import time

import pytest

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import first_event, run_trigger
from tests.runs.conftest import FAST, HOURLY, hours_ago


def start_backfill() -> str:
    with PostHogHook() as hook:
        return hook.create_batch_export_backfill(HOURLY, start_at=hours_ago(8), end_at=hours_ago(7))[
            "backfill_id"
        ]


def rebuild(serialized: tuple[str, dict]) -> PostHogBatchExportRunTrigger:
    classpath, kwargs = serialized
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def make_trigger(**kwargs) -> PostHogBatchExportRunTrigger:
    kwargs.setdefault("batch_export_id", HOURLY)
    kwargs.setdefault("poll_interval", 0.1)
    return PostHogBatchExportRunTrigger(**kwargs, **FAST)


def test_serialize_round_trip_holds_plain_values_only():
    trigger = make_trigger(
        since=hours_ago(2).isoformat(), until=hours_ago(1).isoformat(), end_time=time.time() + 9
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_phenv.triggers.batch_exports.PostHogBatchExportRunTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rebuild((classpath, kwargs)).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give backfill_id, or both since and until"),
        ({"backfill_id": "b-1"}, "Invalid backfill_id 'b-1'"),
        ({"since": "2026-01-01T00:00:00", "until": "2026-01-01T01:00:00Z"}, "Invalid since"),
    ],
)
def test_bad_kwargs_fail_when_the_task_defers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_trigger(**kwargs)


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_restarted_trigger_resumes_the_wait_without_writing_anything(quick_runs):
    quick_runs.state.set_run_outcome(HOURLY, "completed", duration=1.5)
    backfill_id = start_backfill()
    quick_runs.clear_requests()
    original = make_trigger(backfill_id=backfill_id)

    async def run_then_stop() -> None:
        waiting = asyncio.create_task(first_event(original))
        deadline = time.monotonic() + 10
        while len(api_requests(quick_runs)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not waiting.done()
        waiting.cancel()  # the triggerer stops mid-wait
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(run_then_stop())
    resumed = run_trigger(rebuild(original.serialize())).payload
    assert resumed["status"] == "success"
    assert resumed["value"]["backfill_id"] == backfill_id and resumed["value"]["status"] == "Completed"
    assert {record.method for record in api_requests(quick_runs)} == {"GET"}


def wait_past_the_deadline(emulator, seconds: float) -> tuple[str, dict]:
    """Wait ``seconds`` for a backfill whose run takes a minute; its id and the trigger's event,
    with the request log holding only the wait's requests."""
    emulator.state.set_run_outcome(HOURLY, "completed", duration=60)
    backfill_id = start_backfill()
    emulator.clear_requests()
    return backfill_id, run_trigger(
        make_trigger(backfill_id=backfill_id, end_time=time.time() + seconds, poll_interval=0.05)
    ).payload


def test_the_deadline_is_a_timeout_event_and_nothing_is_cancelled_from_the_triggerer(quick_runs):
    backfill_id, payload = wait_past_the_deadline(quick_runs, 0.25)
    assert payload["status"] == "timeout" and payload["backfill_id"] == backfill_id
    assert {record.method for record in api_requests(quick_runs)} == {"GET"}


def test_an_idle_poll_is_one_read_of_the_project_exports_list(quick_runs):
    backfill_id, payload = wait_past_the_deadline(quick_runs, 0.3)
    assert payload["status"] == "timeout"
    paths = [poll.path for poll in api_requests(quick_runs)]
    listing = "/api/projects/1/batch_exports/"
    assert all(path == listing or path.endswith(f"/backfills/{backfill_id}/") for path in paths)
    # Once the list shows a run of the backfill at work, that one read is all a poll sends.
    assert len(paths) >= 5 and paths[-3:] == [listing] * 3


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_a_user_ending_the_deferred_task_cancels_its_backfill(emulator, posthog_conn, cancel_on_kill):
    """Airflow >= 3.3 calls on_kill when a user marks the deferred task failed or success."""
    emulator.state.set_run_outcome(HOURLY, "hang")
    backfill_id = start_backfill()
    trigger = make_trigger(backfill_id=backfill_id, cancel_on_kill=cancel_on_kill)
    assert rebuild(trigger.serialize()).cancel_on_kill is cancel_on_kill
    asyncio.run(trigger.on_kill())
    with PostHogHook() as hook:
        status = hook.get_batch_export_backfill(HOURLY, backfill_id, row_timeout=5)["status"]
    assert (status == "Cancelled") is cancel_on_kill


def test_on_kill_of_a_run_sensor_wait_writes_nothing(emulator, posthog_conn):
    trigger = make_trigger(
        since=hours_ago(2).isoformat(), until=hours_ago(1).isoformat(), cancel_on_kill=True
    )
    asyncio.run(trigger.on_kill())
    assert api_requests(emulator) == []


def test_a_wait_whose_export_leaves_the_list_fails_naming_it(quick_runs):
    # Deleted while waited on: the shared list no longer shows it, and the export's own read says why.
    with quick_runs.state.lock:
        quick_runs.state.batch_exports[HOURLY]["deleted"] = True
    trigger = make_trigger(since=hours_ago(2).isoformat(), until=hours_ago(1).isoformat())
    payload = run_trigger(trigger).payload
    assert payload["status"] == "error" and payload["final"] is True
    assert f"HTTP 404 on GET /api/projects/1/batch_exports/{HOURLY}/" in payload["message"]
    assert f"batch export {HOURLY}" in payload["message"]
