"""The batch export logs trigger, run with asyncio against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from datetime import timedelta

import pytest

from airflow_provider_phenv.triggers.batch_exports import EVENT_STATUSES, PostHogBatchExportLogsTrigger
from airflow_provider_phenv.validation import format_timestamp
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import (
    EXPORT_ID,
    FAST_HOOK,
    entry,
    first_event,
    run_trigger,
    seconds_after,
    utcnow,
)

FINISHED = r"finished (successfully )?with (\d+|no) records exported"


CRITERIA = ("level", "message_pattern", "search", "instance_id", "failure_pattern", "fail_on_levels")


def make_trigger(since, **kwargs) -> PostHogBatchExportLogsTrigger:
    """A trigger as the sensor builds it: the criteria travel as one object."""
    criteria = {name: kwargs.pop(name) for name in CRITERIA if name in kwargs}
    criteria.setdefault("message_pattern", FINISHED)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("hook_params", FAST_HOOK)
    return PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT_ID, since=since.isoformat(), criteria=criteria, **kwargs
    )


def rebuild(serialized: tuple[str, dict]) -> PostHogBatchExportLogsTrigger:
    """What the triggerer does with the stored classpath and kwargs."""
    classpath, kwargs = serialized
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def test_serialize_round_trip_holds_plain_values_only():
    trigger = make_trigger(
        utcnow(),
        level=["INFO"],
        search="finished",
        instance_id="run-1",
        failure_pattern="non-recoverable",
        project_id=1,
        end_time=time.time() + 60,
        first_poll_at=time.time() + 5,
        cursor={
            "after": "2026-01-01T00:00:00Z",
            "seen": {"2026-01-01T00:00:01Z": ["0123456789abcdef"]},
            "count": 7,
        },
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_phenv.triggers.batch_exports.PostHogBatchExportLogsTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rebuild((classpath, kwargs)).serialize() == (classpath, kwargs)
    assert kwargs["cursor"] == {
        "after": "2026-01-01T00:00:00.000000Z",
        "seen": {"2026-01-01T00:00:01.000000Z": ["0123456789abcdef"]},
        "count": 7,
    }
    serde = pytest.importorskip("airflow.sdk.serde", reason="Airflow < 3.2 stores trigger kwargs as JSON")
    assert serde.deserialize(serde.serialize(kwargs)) == kwargs  # Airflow >= 3.2 stores kwargs with serde


def test_bad_kwargs_fail_at_construction():
    with pytest.raises(ValueError, match="Invalid failure_pattern"):
        make_trigger(utcnow(), failure_pattern="(")
    with pytest.raises(ValueError, match="Invalid cursor"):
        make_trigger(utcnow(), cursor={"seen": []})
    with pytest.raises(ValueError, match=r"Invalid backoff .fast. in hook_params"):
        make_trigger(utcnow(), hook_params={"backoff": "fast"})
    for bad in (-1, True, "60"):
        with pytest.raises(ValueError, match=rf"Invalid poll_interval {bad!r}: expected a non-negative"):
            make_trigger(utcnow(), poll_interval=bad)
    assert make_trigger(utcnow(), poll_interval=0).poll_interval == 0.0  # poll back to back


def test_success_event_with_entry_and_cursor(in_order_logs, emulator, posthog_conn):
    start = utcnow()
    emulator.state.add_log_entries(
        EXPORT_ID,
        [
            entry(
                seconds_after(start, -1), "INFO", "finished successfully with 1 records exported"
            ),  # before since
            entry(seconds_after(start, 0.1), "INFO", "Batch exporting range"),
            entry(seconds_after(start, 0.3), "INFO", "finished successfully with 2 records exported"),
        ],
    )
    event = run_trigger(make_trigger(start))
    payload = event.payload
    assert payload["status"] == "success" and payload["status"] in EVENT_STATUSES
    assert payload["entry"]["message"] == "finished successfully with 2 records exported"
    assert payload["cursor"]["count"] == 2
    assert payload["batch_export_id"] == EXPORT_ID
    assert len(json.dumps(payload)) < 600  # an event, like XCom, carries one entry and the cursor
    assert {record.method for record in api_requests(emulator)} == {"GET"}


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_failed_event_names_the_reason(emulator, posthog_conn):
    start = utcnow()
    emulator.state.add_log_entries(
        EXPORT_ID,
        [
            entry(
                seconds_after(start, 0.1),
                "ERROR",
                "Batch export for range x failed with a non-recoverable error: x",
            )
        ],
    )
    payload = run_trigger(make_trigger(start)).payload
    assert payload["status"] == "failed"
    assert payload["reason"] == "level ERROR is in fail_on_levels"
    assert payload["entry"]["level"] == "ERROR"


def test_timeout_event_at_end_time_carries_the_cursor(in_order_logs, emulator, posthog_conn):
    start = utcnow()
    emulator.state.add_log_entries(EXPORT_ID, [entry(seconds_after(start, 0.05), "INFO", "still running")])
    began = time.monotonic()
    payload = run_trigger(make_trigger(start, end_time=time.time() + 0.25)).payload
    assert 0.2 < time.monotonic() - began < 3
    assert payload["status"] == "timeout"
    assert payload["cursor"]["count"] == 1
    assert "timed out" in payload["message"]


def test_first_poll_waits_for_first_poll_at(in_order_logs, emulator, posthog_conn):
    start = utcnow()
    emulator.state.add_log_entries(
        EXPORT_ID,
        [entry(seconds_after(start, -0.5), "INFO", "finished successfully with 1 records exported")],
    )
    began = time.time()
    payload = run_trigger(make_trigger(seconds_after(start, -1), first_poll_at=began + 0.25)).payload
    assert payload["status"] == "success"
    [request] = api_requests(emulator)
    assert request.started_at >= began + 0.25


def test_first_poll_at_never_delays_past_the_deadline(emulator, posthog_conn):
    began = time.monotonic()
    trigger = make_trigger(utcnow(), first_poll_at=time.time() + 60, end_time=time.time() + 0.3)
    assert run_trigger(trigger).payload["status"] == "timeout"
    assert time.monotonic() - began < 3
    assert len(api_requests(emulator)) == 1  # one last look at the deadline


def test_persistent_error_is_an_error_event_not_success(emulator, posthog_conn):
    unknown = "01900000-0000-7000-8000-0000000000ff"
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=unknown, since=utcnow().isoformat(), poll_interval=0.05
    )
    payload = run_trigger(trigger).payload
    assert payload["status"] == "error"
    assert "HTTP 404" in payload["message"]
    assert len(api_requests(emulator)) == 1  # a 404 is not retried


def test_503_is_retried_inside_the_trigger(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    emulator.state.add_log_entries(
        EXPORT_ID, [entry(seconds_after(start, 1), "INFO", "finished successfully with 3 records exported")]
    )
    emulator.faults.add("status", status=503, path="/logs", times=2)
    payload = run_trigger(make_trigger(start)).payload
    assert payload["status"] == "success"
    assert [record.status for record in api_requests(emulator)] == [503, 503, 200]


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_429_is_retried_after_retry_after(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    emulator.state.add_log_entries(
        EXPORT_ID, [entry(seconds_after(start, 1), "INFO", "finished successfully with 3 records exported")]
    )
    emulator.faults.add("status", status=429, retry_after=1, path="/logs", times=1)
    payload = run_trigger(make_trigger(start)).payload
    assert payload["status"] == "success"
    throttled, retried = api_requests(emulator)
    assert (throttled.status, retried.status) == (429, 200)
    # The backoff would be 10 ms; the 1 s wait is PostHog's Retry-After.
    assert retried.started_at - throttled.started_at >= 0.95


def test_burst_of_1200_entries_between_two_polls(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=5)
    burst = [
        entry(seconds_after(start, 1 + (index // 3) / 1000), "INFO", f"part {index}") for index in range(1200)
    ]
    burst.append(entry(seconds_after(start, 3), "INFO", "finished successfully with 1200 records exported"))

    async def scenario():
        waiting = asyncio.create_task(first_event(make_trigger(start)))
        await asyncio.sleep(0.2)  # a few empty polls
        assert not waiting.done()
        emulator.state.add_log_entries(EXPORT_ID, burst)
        return await waiting

    payload = asyncio.run(scenario()).payload
    assert payload["status"] == "success"
    assert payload["cursor"]["count"] == 1201  # all read, each once
    pages = [record for record in api_requests(emulator) if "before" in record.query]
    assert len(pages) == 2  # the burst took 3 requests: the newest 500, then two pages back


def test_restart_from_serialize_mid_wait_misses_nothing_and_counts_nothing_twice(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=2)
    last = seconds_after(start, 3)
    emulator.state.add_log_entries(
        EXPORT_ID,
        [
            entry(seconds_after(start, 1), "INFO", "Batch exporting range"),
            entry(seconds_after(start, 2), "INFO", "Still exporting, half way"),
            entry(last, "INFO", "Still exporting"),
        ],
    )
    original = make_trigger(start)
    stored_at_defer = original.serialize()  # what the metadata database holds

    async def run_then_stop() -> tuple[str, dict]:
        waiting = asyncio.create_task(first_event(original))
        # Two polls, nothing decisive: the first one's entries are judged before the second is sent.
        deadline = time.monotonic() + 10
        while len(api_requests(emulator)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not waiting.done()
        waiting.cancel()  # the triggerer stops
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return original.serialize()

    mid_wait = asyncio.run(run_then_stop())
    assert mid_wait[1]["cursor"]["count"] == 3
    assert mid_wait[1]["cursor"]["after"] == format_timestamp(start)  # all three still in the window

    # While no triggerer runs: a late entry sharing the cursor's microsecond, then the match.
    emulator.state.add_log_entries(
        EXPORT_ID,
        [
            entry(last, "INFO", "Late line, same microsecond"),
            entry(seconds_after(start, 4), "INFO", "finished successfully with 9 records exported"),
        ],
    )
    emulator.clear_requests()
    resumed = run_trigger(rebuild(mid_wait)).payload
    assert resumed["status"] == "success"
    assert resumed["cursor"]["count"] == 5  # 3 before the restart + 2 after: none missed, none twice
    (first_request,) = api_requests(emulator)[:1]
    assert first_request.query["after"] == [format_timestamp(start)]

    # Airflow rebuilds the trigger from the kwargs stored at defer time: same outcome, same cursor.
    assert run_trigger(rebuild(stored_at_defer)).payload == resumed


def test_trigger_never_blocks_the_event_loop(emulator, posthog_conn):
    start = utcnow() - timedelta(minutes=1)
    emulator.state.add_log_entries(
        EXPORT_ID,
        [entry(seconds_after(start, 1 + index / 1000), "INFO", f"line {index}") for index in range(1000)]
        + [entry(seconds_after(start, 2), "INFO", "finished successfully with 1000 records exported")],
    )

    async def scenario() -> float:
        lag = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal lag
            while not done.is_set():
                before = time.monotonic()
                await asyncio.sleep(0.01)
                lag = max(lag, time.monotonic() - before - 0.01)

        ticking = asyncio.create_task(ticker())
        event = await first_event(make_trigger(start))
        done.set()
        await ticking
        assert event.payload["status"] == "success"
        return lag

    # Connection lookup and HTTP are awaited; only judging 1,000 entries runs on the loop.
    assert asyncio.run(scenario()) < 0.5
