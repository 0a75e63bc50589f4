"""The run sensor against the emulator over HTTP, in poke, reschedule and deferrable mode."""

from __future__ import annotations

import pytest

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.sensors.batch_exports import (
    PostHogBatchExportRunError,
    PostHogBatchExportRunSensor,
)
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import MODES, FakeStateStore, FakeTI, make_context, utcnow
from tests.runs.conftest import FAST, HOURLY, hours_ago

ERROR = "Snowflake warehouse 'EXPORTS' is suspended"


def run_sensor(mode: str, **kwargs) -> PostHogBatchExportRunSensor:
    kwargs.setdefault("task_id", f"exported_{mode}")
    kwargs.setdefault("batch_export_id", HOURLY)
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 20)
    return PostHogBatchExportRunSensor(
        mode="reschedule" if mode == "reschedule" else "poke",
        deferrable=mode == "deferrable",
        **FAST,
        **kwargs,
    )


def backfill(start, end) -> str:
    with PostHogHook() as hook:
        return hook.create_batch_export_backfill(HOURLY, start_at=start, end_at=end)["backfill_id"]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_waits_until_the_range_is_exported_with_the_same_value_in_every_mode(quick_runs, mode):
    since, until = hours_ago(9), hours_ago(7)
    backfill(since, until)
    result = MODES[mode](
        run_sensor(mode, since=since, until=until), make_context(FakeTI(utcnow()), FakeStateStore())
    )
    assert result["batch_export_id"] == HOURLY
    assert {run["status"] for run in result["runs"]} == {"Completed"}
    assert min(run["data_interval_start"] for run in result["runs"]).startswith(since.strftime("%Y-%m-%dT%H"))
    assert result["records_completed"] == sum(run["records_completed"] for run in result["runs"]) > 0
    assert {record.method for record in api_requests(quick_runs)} <= {"GET", "POST"}


@pytest.mark.parametrize("mode", list(MODES))
def test_a_failed_run_fails_at_once_quoting_posthog_in_every_mode(quick_runs, mode):
    quick_runs.state.set_run_outcome(HOURLY, "failed", duration=0.1, error_message=ERROR)
    since, until = hours_ago(9), hours_ago(8)
    backfill(since, until)
    with pytest.raises(PostHogBatchExportRunError, match="Snowflake warehouse 'EXPORTS' is suspended"):
        MODES[mode](run_sensor(mode, since=since, until=until), make_context(FakeTI(utcnow())))


def test_a_failed_interval_that_posthog_retried_successfully_counts(quick_runs):
    quick_runs.state.set_run_outcome(HOURLY, "failed", duration=0.1, error_message=ERROR)
    failed = quick_runs.state.start_run(HOURLY, hours_ago(9), hours_ago(8))
    quick_runs.state.set_run_outcome(HOURLY, "completed", duration=0.1)
    with PostHogHook() as hook:
        hook.retry_batch_export_run(HOURLY, failed["id"])
    result = MODES["poke"](
        run_sensor("poke", since=hours_ago(9), until=hours_ago(8)), make_context(FakeTI(utcnow()))
    )
    assert [run["status"] for run in result["runs"]] == ["Completed"]


def test_since_defaults_to_one_export_interval_before_until(quick_runs):
    """The seeded hourly runs cover the three hours before the last hour."""
    sensor = run_sensor("poke", until=hours_ago(1))
    result = sensor.execute(make_context(FakeTI(utcnow())))
    assert [(run["data_interval_start"][:13], run["data_interval_end"][:13]) for run in result["runs"]] == [
        (hours_ago(2).isoformat()[:13], hours_ago(1).isoformat()[:13])
    ]
    # One read of the export for its interval, then one request per poll: the export again, whose
    # newest runs answer it (and whose paused flag says whether more runs can come).
    assert [record.path.rsplit("/", 2)[-2] for record in api_requests(quick_runs)] == [HOURLY, HOURLY]


def test_a_poll_with_nothing_new_is_one_request(quick_runs):
    sensor = run_sensor("poke", since=hours_ago(9), until=hours_ago(8))
    sensor.begin()
    assert sensor.poke(make_context(FakeTI(utcnow()))) is False
    (poll,) = api_requests(quick_runs)
    assert poll.path.endswith(f"/batch_exports/{HOURLY}/")


def test_a_poll_reads_the_runs_list_only_when_the_newest_runs_may_miss_some(quick_runs):
    for hour in range(30, 18, -1):  # twelve runs created after since: more than an export shows
        quick_runs.state.start_run(HOURLY, hours_ago(hour), hours_ago(hour - 1))
    sensor = run_sensor("poke", since=hours_ago(30), until=hours_ago(18))
    sensor.begin()
    assert sensor.poke(make_context(FakeTI(utcnow()))) is False
    export, runs = api_requests(quick_runs)
    assert export.path.endswith(f"/batch_exports/{HOURLY}/")
    assert runs.path.endswith("/runs/")
    assert runs.query["after"][0] < hours_ago(30).isoformat()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"until": "2026-01-01T00:00:00"}, "Invalid until"),
        ({"until": hours_ago(2), "since": hours_ago(1)}, "must be before until"),
        ({"batch_export_id": "nope", "until": hours_ago(1)}, "Invalid batch_export_id 'nope'"),
    ],
)
def test_bad_literal_input_fails_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_sensor("poke", **kwargs)


def test_templates_render_and_are_checked_before_any_request(emulator, posthog_conn):
    sensor = run_sensor("poke", until="{{ data_interval_end }}")
    sensor.render_template_fields({"data_interval_end": "not a date"})
    with pytest.raises(ValueError, match="Invalid until 'not a date'"):
        sensor.execute(make_context(FakeTI(utcnow())))
    assert api_requests(emulator) == []


def test_poke_called_directly_checks_its_inputs_first(quick_runs):
    # As a user's own test calls it, without execute: the inputs are checked, then one poll runs.
    sensor = run_sensor("poke", since=hours_ago(9), until=hours_ago(8))
    assert sensor.poke(make_context(FakeTI(utcnow()))) is False
    (poll,) = api_requests(quick_runs)
    assert poll.path.endswith(f"/batch_exports/{HOURLY}/")
    with pytest.raises(ValueError, match="not-a-uuid"):
        bad = run_sensor("poke", batch_export_id="not-a-uuid", until=hours_ago(8))
        bad.poke(make_context(FakeTI(utcnow())))
