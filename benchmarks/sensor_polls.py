"""
Item 4: what one poll costs in steady state, with many old log entries and none new.

The export's log holds ``old_entries`` lines written before the task started, none of which is
the awaited one. Ours: the sensor's ``poke`` (poke and reschedule mode poll this way) and the
trigger's polls (deferrable mode). HTTP provider: HttpSensor on the same logs endpoint with
PostHog's default limit and a ``response_check`` looking for the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import timedelta
from typing import Any

from airflow.providers.http.sensors.http import HttpSensor

from airflow_provider_phenv.emulator import SEED
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
from airflow_provider_phenv.validation import format_timestamp
from benchmarks.harness import HTTP_CONN_ID, Bench, Figure, traffic, utcnow
from tests.helpers.sensor_modes import FakeStateStore, FakeTI, first_event, make_context

EXPORT = SEED.bigquery_export_id
PATTERN = r"finished (successfully )?with (\d+|no) records exported"


def old_log(count: int, before: Any) -> list[dict[str, Any]]:
    """``count`` realistic log lines, one per second, all before ``before``; none matches PATTERN."""
    return [
        {
            "timestamp": before - timedelta(seconds=count - number),
            "level": "INFO",
            "message": f"Batch exporting range 2025-01-01 {number % 24:02d}:00 - {number % 24:02d}:59 "
            f"to BigQuery: hedgebox-analytics.posthog.events (part {number})",
            "instance_id": f"run-{number // 50}",
        }
        for number in range(count)
    ]


def http_check(response: Any) -> bool:
    return any(re.search(PATTERN, entry["message"]) for entry in response.json()["results"])


def trigger_polls(bench: Bench, since: str, polls: int, interval: float) -> list[list[Any]]:
    """Run the trigger for ``polls`` intervals; its requests grouped by poll (gaps > interval / 2)."""
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT, since=since, criteria={"message_pattern": PATTERN}, poll_interval=interval
    )

    async def run() -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await first_event(trigger, timeout=interval * (polls - 0.5))

    bench.emulator.clear_requests()
    asyncio.run(run())
    groups: list[list[Any]] = []
    for record in bench.emulator.requests:
        if groups and record.started_at - groups[-1][-1].started_at < interval / 2:
            groups[-1].append(record)
        else:
            groups.append([record])
    return groups


def run(bench: Bench, old_entries: int, polls: int) -> tuple[list[Figure], dict[str, Any]]:
    bench.reset()
    start = utcnow()
    bench.emulator.state.add_log_entries(EXPORT, old_log(old_entries, start))
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = PostHogBatchExportLogsSensor(
        task_id="wait", batch_export_id=EXPORT, message_pattern=PATTERN, poke_interval=1
    )
    first = bench.measure(lambda: sensor.poke(context))
    steady = bench.measure(lambda: [sensor.poke(context) for _ in range(polls)])
    sensor.hook.close()
    groups = trigger_polls(bench, format_timestamp(start), polls, interval=0.2)
    deferred = [traffic(group) for group in groups]

    http_sensor = HttpSensor(
        task_id="wait_http",
        http_conn_id=HTTP_CONN_ID,
        endpoint=f"{bench.api}/batch_exports/{EXPORT}/logs/",
        response_check=http_check,
        poke_interval=1,
    )
    http_steady = bench.measure(lambda: [http_sensor.poke(context) for _ in range(polls)])

    # On the seeded log alone (runs that finished hours ago): does a first poke wrongly succeed?
    bench.reset()
    fresh_context = make_context(FakeTI(utcnow()), FakeStateStore())
    fresh_sensor = PostHogBatchExportLogsSensor(
        task_id="wait", batch_export_id=EXPORT, message_pattern=PATTERN, poke_interval=1
    )
    false_success = {
        "ours": bool(fresh_sensor.poke(fresh_context)),
        "http": bool(http_sensor.poke(fresh_context)),
    }
    fresh_sensor.hook.close()

    per_poll = steady.requests / polls
    bytes_per_poll = steady.response_bytes / polls
    http_bytes = http_steady.response_bytes / polls
    trigger_requests = max(t.requests for t in deferred)
    trigger_bytes = max(t.response_bytes for t in deferred)
    details = {
        "old_entries": old_entries,
        "polls": polls,
        "first_poke": first.to_json(),
        "steady_pokes": steady.to_json(),
        "trigger_polls": [t.to_json() for t in deferred],
        "http_sensor_pokes": http_steady.to_json(),
        "first_poke_succeeds_on_old_runs": false_success,
    }
    figures = [
        Figure(
            4,
            f"sensor poll, {old_entries} old entries: requests per poll",
            per_poll,
            "requests",
            http_steady.requests / polls,
            "<= 1",
            per_poll <= 1,
            f"poke/reschedule; {steady.connections} connection(s) for {polls} pokes in poke mode, "
            f"HttpSensor {http_steady.connections}",
        ),
        Figure(
            4,
            f"sensor poll, {old_entries} old entries: response bytes per poll",
            round(bytes_per_poll),
            "bytes",
            round(http_bytes),
            "<= 1024",
            bytes_per_poll <= 1024,
            "HttpSensor reads PostHog's default page of 50 entries each poke",
        ),
        Figure(
            4,
            "trigger poll (deferrable), same log: requests / bytes per poll (max)",
            f"{trigger_requests} / {trigger_bytes}",
            "requests / bytes",
            None,
            "<= 1 / <= 1024",
            trigger_requests <= 1 and trigger_bytes <= 1024,
            f"{len(deferred)} polls; HttpSensor cannot defer with a response_check",
        ),
        Figure(
            4,
            "first poke on a log with only runs finished before the task: wrongly succeeds?",
            "yes" if false_success["ours"] else "no",
            "",
            "yes" if false_success["http"] else "no",
            note="HttpSensor with the default limit and no after= sees old runs' lines",
        ),
    ]
    return figures, details
