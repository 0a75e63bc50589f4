"""The batch export logs sensor against the emulator over HTTP, in poke, reschedule and deferrable mode."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.sensors.batch_exports import (
    PostHogBatchExportLogError,
    PostHogBatchExportLogsSensor,
    PostHogBatchExportLogsWatchError,
    TaskDeferralTimeout,
)
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
from airflow_provider_phenv.validation import format_timestamp
from airflow_provider_phenv.waits.logs import STATE_KEY
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import (
    EXPORT_ID,
    FAST_HOOK,
    MODES,
    FakeStateStore,
    FakeTI,
    entry,
    fresh,
    make_context,
    run_trigger,
    seconds_after,
    sensor_for_mode,
    utcnow,
)

# Today's wording (docs/posthog-api.md §6.3), and the older one, with a count or ``no``.
FINISHED = r"finished (successfully )?with (\d+|no) records exported"
R1 = "2026-11-28 10:00:00+00:00 - 2026-11-28 11:00:00+00:00"
R2 = "2026-11-28 11:00:00+00:00 - 2026-11-28 12:00:00+00:00"
ERROR_TEXT = (
    f"Batch export for range {R2} failed with a non-recoverable error: OperationalError: connection to "
    'server at "db" (10.0.0.12), port 5432 failed: Connection refused'
)

# One log timeline per expected outcome, in seconds relative to the moment the task starts.
# Entries before the start must be ignored: an old success and an old failure.
TIMELINES = {
    "matched": [
        (-2.0, "INFO", f"Batch export for range {R1} finished successfully with 900 records exported"),
        (-1.0, "ERROR", f"Batch export for range {R1} failed with a non-recoverable error: an old failure"),
        (0.5, "INFO", f"Batch exporting range {R2} to BigQuery: dataset.events"),
        (0.65, "INFO", f"Batch export for range {R2} finished successfully with 1000 records exported"),
        (0.75, "ERROR", f"Batch export for range {R2} failed with a non-recoverable error: a later run"),
    ],
    "failed": [
        (-2.0, "INFO", f"Batch export for range {R1} finished successfully with 900 records exported"),
        (0.5, "INFO", f"Batch exporting range {R2} to BigQuery: dataset.events"),
        (0.6, "ERROR", ERROR_TEXT),
        (0.7, "INFO", f"Batch export for range {R2} finished successfully with no records exported"),
    ],
}


def _lay_out(emulator, timeline, start):
    entries = [entry(seconds_after(start, offset), level, message) for offset, level, message in timeline]
    emulator.state.add_log_entries(EXPORT_ID, entries)
    return entries


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    ("expected", "store"),
    [("matched", "task_state_store"), ("failed", "task_state_store"), ("matched", "airflow<3.3")],
)
def test_same_timeline_same_result_in_every_mode(
    in_order_logs, emulator, posthog_conn, mode, expected, store
):
    start = utcnow()
    entries = _lay_out(emulator, TIMELINES[expected], start)
    context = make_context(FakeTI(start), FakeStateStore() if store == "task_state_store" else None)
    sensor = sensor_for_mode(mode, message_pattern=FINISHED, poke_interval=0.05)

    if expected == "matched":
        decisive = entries[3]
        stamp = format_timestamp(decisive["timestamp"])
        result = MODES[mode](sensor, context)
        # Identical in every mode: the matching entry, and the cursor stopped at it, with each
        # entry after the start counted once (2 of them).
        assert result == {
            "batch_export_id": EXPORT_ID,
            "entry": {
                "timestamp": stamp,
                "level": "INFO",
                "message": decisive["message"],
                "instance_id": "run-1",
            },
            "cursor": {"after": stamp, "seen": {}, "count": 2},
        }
        assert len(json.dumps(result)) < 600
    else:
        stamp = format_timestamp(entries[2]["timestamp"])
        with pytest.raises(PostHogBatchExportLogError) as failure:
            MODES[mode](sensor, context)
        assert str(failure.value) == (
            f"Batch export {EXPORT_ID} logged a failure at {stamp}, run run-1 "
            f"(level ERROR is in fail_on_levels): [ERROR] {ERROR_TEXT}"
        )
    assert {record.method for record in api_requests(emulator)} == {"GET"}
    # Each mode really waited its own way: rescheduled pokes, or a trigger that fired once.
    if mode == "reschedule":
        assert context["test_run"]["reschedules"] >= 1
    if mode == "deferrable":
        (event,) = context["test_run"]["events"]
        assert event["status"] == {"matched": "success", "failed": "failed"}[expected]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_an_entry_revealed_after_a_newer_one_is_judged_in_every_mode(emulator, posthog_conn, mode):
    """PostHog's log pipeline can reveal an entry seconds after newer ones (docs/posthog-api.md §6.3)."""
    start = utcnow()
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(start, 0.3), "INFO", "newer line")])
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = sensor_for_mode(mode, message_pattern=FINISHED, poke_interval=0.1)
    # The ERROR line is stamped before "newer line" but only becomes visible a second later,
    # when every mode has already read "newer line".
    late = entry(seconds_after(start, 0.1), "ERROR", "Batch export failed: revealed late")
    reveal = threading.Timer(1.0, emulator.state.add_log_entries, (EXPORT_ID, [late]))
    reveal.start()
    try:
        with pytest.raises(PostHogBatchExportLogError, match="revealed late"):
            MODES[mode](sensor, context)
    finally:
        reveal.cancel()


def test_poke_called_directly_checks_its_inputs_first(in_order_logs, posthog_conn):
    # As a user's own test calls it, without execute: the inputs are checked, then the poll runs.
    start = utcnow() - timedelta(minutes=10)
    _lay_out(in_order_logs, [(1, "INFO", "Batch export for range x finished with 3 records exported")], start)
    sensor = sensor_for_mode("poke", message_pattern=FINISHED, since=start.isoformat())
    assert sensor.poke(make_context(FakeTI(utcnow()))).is_done
    with pytest.raises(ValueError, match="Invalid level 'LOUD'"):
        sensor_for_mode("poke", level="LOUD", since=start.isoformat()).poke(make_context(FakeTI(utcnow())))


def test_failure_pattern_fails_on_any_level(emulator, posthog_conn):
    start = utcnow() - timedelta(seconds=5)
    emulator.state.add_log_entries(
        EXPORT_ID, [entry(seconds_after(start, 1), "WARNING", "Destination quota exceeded, giving up")]
    )
    sensor = sensor_for_mode("poke", failure_pattern="quota exceeded", since=start)
    with pytest.raises(
        PostHogBatchExportLogError, match=r"message matches failure_pattern 'quota exceeded'\): \[WARNING\]"
    ):
        sensor.execute(make_context(FakeTI(utcnow())))


def test_explicit_since_and_already_true_condition_never_defers(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=10)
    timeline = [
        (-1, "ERROR", "before since: ignored"),
        (0, "ERROR", "exactly at since: ignored"),
        (1, "INFO", "Batch export for range x finished successfully with 5 records exported"),
    ]
    _lay_out(emulator, timeline, start)
    sensor = sensor_for_mode("deferrable", message_pattern=FINISHED, since=start.isoformat())
    result = sensor.execute(make_context(FakeTI(utcnow())))  # no TaskDeferred
    assert result["entry"]["message"].endswith("finished successfully with 5 records exported")
    assert result["cursor"]["count"] == 1


def test_burst_of_1200_entries_between_two_polls_is_read_completely(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=5)
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = sensor_for_mode("poke", message_pattern=FINISHED)
    sensor.begin()
    assert sensor.poke(context) is False

    # 1,200 entries land between two polls, pairs sharing a microsecond, then the match.
    burst = [
        entry(seconds_after(start, 1 + (index // 2) / 1000), "INFO", f"Batch exporting part {index}")
        for index in range(1200)
    ]
    burst.append(
        entry(
            seconds_after(start, 2),
            "INFO",
            "Batch export for range y finished successfully with 1200 records exported",
        )
    )
    emulator.state.add_log_entries(EXPORT_ID, burst)
    emulator.clear_requests()

    done = sensor.poke(context)
    assert done.xcom_value["cursor"]["count"] == 1201  # every entry counted, none twice
    pages = api_requests(emulator)
    assert len(pages) == 3  # 500 + 500 + the rest, paging backwards with before=
    assert all(record.query["limit"] == ["500"] for record in pages)
    assert "before" in pages[1].query and "before" in pages[2].query


def test_poll_without_news_is_one_small_request_whatever_the_history(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=30)
    history = [
        entry(seconds_after(start, -600 + index / 10), "INFO", f"old line {index}") for index in range(3000)
    ]
    history += [
        entry(seconds_after(start, 1 + index / 10), "INFO", f"new line {index}") for index in range(700)
    ]
    emulator.state.add_log_entries(EXPORT_ID, history)
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = sensor_for_mode("poke", message_pattern=FINISHED)
    sensor.begin()
    assert sensor.poke(context) is False  # reads the 700 new lines once
    emulator.clear_requests()

    assert sensor.poke(context) is False
    (poll,) = api_requests(emulator)
    assert poll.response_bytes < 400  # the whole history is older than the late-entries window: no entry
    assert poll.query["after"][0] > format_timestamp(history[-1]["timestamp"])

    # A rescheduled poke (new instance, same task state store) asks for news only as well.
    emulator.clear_requests()
    assert fresh(sensor).poke(context) is False
    assert len(api_requests(emulator)) == 1


def test_equal_timestamps_at_the_cursor_over_http(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    moment = seconds_after(start, 1)
    emulator.state.add_log_entries(EXPORT_ID, [entry(moment, "INFO", "a"), entry(moment, "INFO", "b")])
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = sensor_for_mode("poke", message_pattern="^c$")
    sensor.begin()
    assert sensor.poke(context) is False
    # "c" carries the same microsecond but shows up after the first poll.
    emulator.state.add_log_entries(EXPORT_ID, [entry(moment, "INFO", "c")])
    done = fresh(sensor).poke(context)
    assert done.xcom_value["entry"]["message"] == "c"
    assert done.xcom_value["cursor"]["count"] == 3


def test_search_is_sent_and_a_failure_without_the_word_still_fails(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    emulator.state.add_log_entries(
        EXPORT_ID, [entry(seconds_after(start, 1), "ERROR", "Destination unreachable")]
    )
    sensor = sensor_for_mode("poke", search="finished", since=start)
    with pytest.raises(PostHogBatchExportLogError, match="Destination unreachable"):
        sensor.execute(make_context(FakeTI(start)))
    queries = [record.query for record in api_requests(emulator)]
    assert {"search": ["finished"]}.items() <= queries[0].items()
    assert queries[1]["level"] == ["ERROR"]


def test_instance_id_is_sent_and_scopes_failures(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    emulator.state.add_log_entries(
        EXPORT_ID,
        [
            entry(seconds_after(start, 1), "ERROR", "another run failed", instance_id="run-other"),
            entry(
                seconds_after(start, 2),
                "INFO",
                "finished successfully with 1 records exported",
                instance_id="run-7",
            ),
        ],
    )
    sensor = sensor_for_mode("poke", instance_id="run-7", message_pattern=FINISHED, since=start)
    assert sensor.execute(make_context(FakeTI(start)))["entry"]["instance_id"] == "run-7"
    assert api_requests(emulator)[0].query["instance_id"] == ["run-7"]


# -- since and the cursor across reschedules, retries and Airflow versions ------------------------


def test_since_and_cursor_survive_reschedules_and_retries_with_task_state_store(emulator, posthog_conn):
    first_start = utcnow() - timedelta(minutes=2)
    store = FakeStateStore()
    sensor = sensor_for_mode("reschedule", message_pattern=FINISHED)
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(first_start, 1), "INFO", "step 1")])

    first = fresh(sensor)
    first.begin()
    assert first.poke(make_context(FakeTI(first_start), store)) is False
    saved = store.get(STATE_KEY)
    assert saved["cursor"]["count"] == 1

    # A retry starts an hour later; since stays the first start and the cursor carries on.
    emulator.state.add_log_entries(
        EXPORT_ID,
        [entry(seconds_after(first_start, 2), "INFO", "finished successfully with 2 records exported")],
    )
    emulator.clear_requests()
    retry = fresh(sensor)
    retry.begin()
    done = retry.poke(make_context(FakeTI(utcnow() + timedelta(hours=1), try_number=2), store))
    assert done.xcom_value["cursor"]["count"] == 2
    assert store.get(STATE_KEY)["since"] == saved["since"]
    # The retry reads the late-entries window again from the saved mark, recognising "step 1".
    assert api_requests(emulator)[0].query["after"] == [saved["cursor"]["after"]]


def test_without_task_state_store_reschedule_counts_from_the_first_poke(emulator, posthog_conn):
    """Airflow < 3.3: since comes from the first reschedule date; each poke reads from since."""
    first_poke = utcnow() - timedelta(minutes=3)
    timeline = [
        (-1, "INFO", "finished successfully with 1 records exported"),
        (1, "INFO", "finished successfully with 2 records exported"),
    ]
    _lay_out(emulator, timeline, first_poke)
    ti = FakeTI(utcnow())
    ti.first_reschedule_date = first_poke
    sensor = sensor_for_mode("reschedule", message_pattern=FINISHED)
    result = sensor.execute(make_context(ti))
    assert result["entry"]["message"] == "finished successfully with 2 records exported"


def test_changed_criteria_restart_the_cursor_at_since(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    store = FakeStateStore()
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(start, 1), "INFO", "needle")])
    sensor = sensor_for_mode("poke", message_pattern="haystack")
    sensor.begin()
    assert sensor.poke(make_context(FakeTI(start), store)) is False
    edited = sensor_for_mode("poke", message_pattern="needle")
    edited.begin()
    assert edited.poke(make_context(FakeTI(utcnow()), store)).xcom_value["entry"]["message"] == "needle"


# -- deferrable mode ---------------------------------------------------------------------------------


def test_defers_with_plain_kwargs_remaining_timeout_and_baseline(posthog_conn):
    start = utcnow()
    store = FakeStateStore()
    sensor = sensor_for_mode("deferrable", message_pattern=FINISHED, timeout=30, poke_interval=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context(FakeTI(start), store))
    trigger = deferred.value.trigger
    assert isinstance(trigger, PostHogBatchExportLogsTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    json.dumps(kwargs)  # plain values only
    assert kwargs["since"] == store.get(STATE_KEY)["since"]
    assert kwargs["cursor"] == store.get(STATE_KEY)["cursor"]
    assert 28 < kwargs["end_time"] - time.time() <= 30
    # The first poke just read the log: the trigger reads it again one poke_interval later.
    assert 4 < kwargs["first_poll_at"] - time.time() <= 5
    # The trigger reports the timeout itself; the framework's deferral timeout is a later backstop.
    assert timedelta(seconds=30) < deferred.value.timeout <= timedelta(seconds=30 + 5 + 60)
    assert deferred.value.kwargs == {"deadline": kwargs["end_time"]}


@pytest.mark.parametrize("event", [None, {}, {"status": "done"}, {"status": None}, "success"])
def test_execute_complete_rejects_unknown_events(posthog_conn, event):
    sensor = sensor_for_mode("deferrable")
    with pytest.raises(PostHogBatchExportLogsWatchError, match="Unexpected trigger event"):
        sensor.execute_complete(make_context(FakeTI(utcnow())), event=event)


def test_execute_complete_rejects_malformed_events(posthog_conn):
    sensor = sensor_for_mode("deferrable")
    cursor = {"after": "2026-01-01T00:00:00Z", "seen": [], "count": 0}
    with pytest.raises(PostHogBatchExportLogsWatchError, match="Malformed"):
        sensor.execute_complete({}, event={"status": "success", "since": "2026-01-01T00:00:00Z"})
    with pytest.raises(PostHogBatchExportLogsWatchError, match="no entry"):
        sensor.execute_complete(
            {}, event={"status": "success", "since": "2026-01-01T00:00:00Z", "cursor": cursor}
        )


def test_error_event_fails_and_is_never_success(emulator, posthog_conn):
    emulator.faults.add("status", status=503, path="/logs", times=10)
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT_ID,
        since=utcnow().isoformat(),
        poll_interval=0.05,
        hook_params={**FAST_HOOK, "max_retries": 1},
    )
    event = run_trigger(trigger)
    assert event.payload["status"] == "error"
    assert [record.status for record in api_requests(emulator)] == [503, 503]  # the hook retried once
    sensor = sensor_for_mode("deferrable", soft_fail=True)
    with pytest.raises(PostHogBatchExportLogsWatchError, match=r"Could not read the log.*HTTP 503"):
        sensor.resume_execution("execute_complete", {"event": event.payload}, make_context(FakeTI(utcnow())))


def test_silent_fail_keeps_waiting_after_an_error_event(posthog_conn):
    sensor = sensor_for_mode("deferrable", silent_fail=True)
    cursor = {"after": "2026-01-01T00:00:00.000000Z", "seen": {}, "count": 0}
    event = {"status": "error", "since": cursor["after"], "cursor": cursor, "message": "HTTP 503"}
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute_complete(make_context(FakeTI(utcnow())), event=event, deadline=time.time() + 10)
    assert deferred.value.trigger.serialize()[1]["cursor"] == cursor


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_soft_fail_skips_on_timeout_in_both_modes(posthog_conn, mode):
    sensor = sensor_for_mode(mode, message_pattern="never", timeout=0.3, poke_interval=0.1, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        MODES[mode](sensor, make_context(FakeTI(utcnow())))


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_timeout_without_soft_fail_is_a_sensor_timeout_in_both_modes(posthog_conn, mode):
    sensor = sensor_for_mode(mode, message_pattern="never", timeout=0.3, poke_interval=0.1)
    with pytest.raises(AirflowSensorTimeout):
        MODES[mode](sensor, make_context(FakeTI(utcnow())))


def test_framework_deferral_timeout_maps_like_poke_mode(posthog_conn):
    sensor = sensor_for_mode("deferrable", soft_fail=True)
    with pytest.raises(AirflowSkipException) as skipped:
        sensor.resume_execution("__fail__", {"error": "Trigger timeout"}, {})
    assert isinstance(skipped.value.__cause__, (AirflowSensorTimeout, TaskDeferralTimeout))


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_soft_fail_does_not_hide_a_failing_entry(emulator, posthog_conn, mode):
    start = utcnow()
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(start, 0.2), "ERROR", "boom")])
    sensor = sensor_for_mode(mode, soft_fail=True, poke_interval=0.1)
    with pytest.raises(PostHogBatchExportLogError, match="boom"):
        MODES[mode](sensor, make_context(FakeTI(start)))


# -- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_export_id": "not-a-uuid"}, "Invalid batch_export_id 'not-a-uuid'"),
        ({"level": "CRITICAL"}, "Invalid level 'CRITICAL'"),
        ({"message_pattern": "(unclosed"}, "Invalid message_pattern"),
        ({"since": "yesterday"}, "Invalid since 'yesterday'"),
        ({"project_id": "abc"}, "Invalid project_id 'abc'"),
        ({"hook_params": {"retries": 3}}, "Invalid hook_params key 'retries'"),
        ({"poll_interval": 1, "poke_interval": 2}, "poll_interval or poke_interval"),
    ],
)
def test_literal_inputs_are_checked_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sensor_for_mode("poke", **kwargs)


@pytest.mark.parametrize("mode", list(MODES))
def test_rendered_inputs_are_checked_before_any_request(emulator, posthog_conn, mode):
    sensor = sensor_for_mode(mode, level="{{ params.level }}", since="{{ params.since }}")
    sensor.render_template_fields({"params": {"level": "LOUD", "since": "2026-01-01"}})
    with pytest.raises(ValueError, match="Invalid level 'LOUD'"):
        MODES[mode](sensor, make_context(FakeTI(utcnow())))
    assert api_requests(emulator) == []


def test_templates_render_and_poll_interval_is_an_alias():
    sensor = PostHogBatchExportLogsSensor(
        task_id="t", batch_export_id="{{ params.export }}", since="{{ params.since }}", poll_interval=7
    )
    assert sensor.poke_interval == 7
    sensor.render_template_fields({"params": {"export": EXPORT_ID, "since": "2026-01-01T00:00:00Z"}})
    assert (sensor.batch_export_id, sensor.since) == (EXPORT_ID, "2026-01-01T00:00:00Z")
    assert {"batch_export_id", "since", "message_pattern", "posthog_conn_id", "project_id"} <= set(
        PostHogBatchExportLogsSensor.template_fields
    )


# -- older PostHog builds (tests/helpers/builds.py) ----------------------------------------------


# Each build that changes what the sensor sends or gets back; the failure through the level
# filter matters where the filter differs (level-list).
LEVEL_CASES = [
    pytest.param(build, expected, id=f"{expected}-{build}")
    for build, expected in [
        ("today", "matched"),
        ("level-list", "matched"),
        ("no-retry-after", "matched"),
        ("environments-redirect", "matched"),
        ("today", "failed"),
        ("level-list", "failed"),
    ]
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(("build", "expected"), LEVEL_CASES, indirect=["build"])
def test_level_filter_on_each_build(build, in_order_logs, emulator, posthog_conn, mode, expected):
    """``level`` plus the failure levels go as several levels, which every build must read (§6.3).

    The lines appear after the first poke, so the deferrable mode's trigger reads them.
    """
    if build == "no-retry-after":
        emulator.faults.add("status", status=429, retry_after=0, path="/logs", times=1)
    start = utcnow()
    lines = [
        (0.1, "WARNING", f"Batch export for range {R2} is slow"),
        (0.2, "INFO", f"Batch export for range {R2} finished successfully with 7 records exported"),
    ]
    if expected == "failed":
        lines.insert(1, (0.15, "ERROR", ERROR_TEXT))
    emulator.state.add_log_entries(
        EXPORT_ID, [entry(seconds_after(start, s), lvl, msg) for s, lvl, msg in lines]
    )
    sensor = sensor_for_mode(
        mode, level="INFO", message_pattern=FINISHED, since=start, poke_interval=0.05, timeout=1.5
    )
    context = make_context(FakeTI(start), FakeStateStore())
    if expected == "failed":
        with pytest.raises(PostHogBatchExportLogError, match="non-recoverable"):
            MODES[mode](sensor, context)
    else:
        assert MODES[mode](sensor, context)["entry"]["message"].endswith("with 7 records exported")
    sent = [record.query.get("level") for record in api_requests(emulator) if record.path.endswith("/logs/")]
    assert ["INFO", "ERROR", "INFO,ERROR"] in sent


@pytest.mark.parametrize("build", ["logs-no-key-scope"], indirect=True)
def test_logs_refused_to_keys_on_older_builds(build, emulator, posthog_conn):
    # Some builds give ``logs`` no personal-API-key scope (§2.2): the task fails with PostHog's reason.
    start = utcnow()
    with pytest.raises(PostHogError, match="does not support Personal API Key access"):
        sensor_for_mode("poke", message_pattern=FINISHED).execute(make_context(FakeTI(start)))


def test_a_refusal_in_the_triggerer_ends_the_task_without_retries(emulator, posthog_conn):
    """A 404 read by the trigger fails the task at once, as the same 404 in the worker does."""
    unknown = "01900000-0000-7000-8000-0000000000ff"
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=unknown, since=utcnow().isoformat(), poll_interval=0.05, hook_params=FAST_HOOK
    )
    payload = run_trigger(trigger).payload
    assert (payload["status"], payload["final"]) == ("error", True)
    sensor = sensor_for_mode("deferrable", batch_export_id=unknown, silent_fail=True, soft_fail=True)
    with pytest.raises(AirflowFailException, match="HTTP 404"):
        sensor.resume_execution("execute_complete", {"event": payload}, make_context(FakeTI(utcnow())))


def test_idle_polls_do_not_write_the_task_state_store(in_order_logs, emulator, posthog_conn):
    """The settled mark follows the clock; only news is worth a write to the metadata database."""
    store = FakeStateStore()
    context = make_context(FakeTI(utcnow() - timedelta(minutes=10)), store)
    sensor = sensor_for_mode("poke", message_pattern=FINISHED)
    sensor.begin()
    for _ in range(3):
        assert sensor.poke(context) is False
    assert store.writes == 1  # since and the first cursor
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(utcnow(), -1), "INFO", "news")])
    assert sensor.poke(context) is False
    assert store.writes == 2
    assert fresh(sensor).poke(context) is False  # a rescheduled poke carries on from the store
    assert store.get(STATE_KEY)["cursor"]["count"] == 1
