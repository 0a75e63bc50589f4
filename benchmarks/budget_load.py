"""
Item 9: a thousand mixed deferred waits on one key, with PostHog's rate limit on.

One event loop (a triggerer) runs ``waits`` triggers on one personal API key against an emulator
that enforces PostHog's limits (480 requests a minute, 4,800 an hour): half wait for a log line of
one of the seeded exports, half for a data interval that a run PostHog is busy with covers. Every
condition comes true ``reveal`` seconds in. Polling every ``poll_interval`` seconds, the waits ask
for far more than the limit allows (1,000 every 5 s is 12,000 a minute); the shared request budget
must keep them under it, with no 429, and every wait must still end.

Counted from the emulator's request log: 429 answers, the most requests in any 60 s window, waits
ended, and the time from the reveal to each wait's event.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from phenv_emulator import SEED, PostHogEmulator

from airflow_provider_phenv.hooks.settings import DEFAULT_PER_MINUTE
from airflow_provider_phenv.triggers.batch_exports import (
    PostHogBatchExportLogsTrigger,
    PostHogBatchExportRunTrigger,
)
from airflow_provider_phenv.validation import format_timestamp
from benchmarks.harness import Figure, median, percentile
from tests.helpers.sensor_modes import first_event

EXPORTS = (SEED.s3_export_id, SEED.bigquery_export_id, SEED.postgres_export_id)
# Today's success wording and the older one; the emulator writes the former.
PATTERN = r"finished (successfully )?with (\d+|no) records exported"


def _arrange(emulator: PostHogEmulator, reveal: float, intervals: int) -> tuple[datetime, list[datetime]]:
    """Make every wait's condition come true ``reveal`` seconds from now."""
    now = datetime.now(timezone.utc)
    for export in EXPORTS:
        emulator.state.add_log_entries(
            export,
            [
                {
                    "timestamp": now + timedelta(seconds=reveal),
                    "level": "INFO",
                    "message": "Batch export for range A - B finished successfully with 7 records exported",
                    "instance_id": "bench",
                }
            ],
        )
    # Runs over old hours that finish at the reveal: one per interval the run waits wait for.
    hour = now.replace(minute=0, second=0, microsecond=0)
    starts = [hour - timedelta(hours=30 + number) for number in range(intervals)]
    emulator.state.set_run_outcome(SEED.s3_export_id, "completed", duration=reveal)
    for start in starts:
        emulator.state.start_run(SEED.s3_export_id, start, start + timedelta(hours=1))
    return now, starts


def _triggers(waits: int, starts: list[datetime], since: datetime, poll: float, end: float) -> list[Any]:
    common = {"poll_interval": poll, "end_time": end}
    triggers: list[Any] = []
    for number in range(waits):
        if number % 2:
            start = starts[number % len(starts)]
            triggers.append(
                PostHogBatchExportRunTrigger(
                    batch_export_id=SEED.s3_export_id,
                    since=format_timestamp(start),
                    until=format_timestamp(start + timedelta(hours=1)),
                    **common,
                )
            )
        else:
            triggers.append(
                PostHogBatchExportLogsTrigger(
                    batch_export_id=EXPORTS[number % len(EXPORTS)],
                    since=format_timestamp(since),
                    criteria={"message_pattern": PATTERN},
                    **common,
                )
            )
    return triggers


async def _run_all(triggers: list[Any], poll: float) -> list[tuple[float, dict[str, Any]]]:
    async def one(number: int, trigger: Any) -> tuple[float, dict[str, Any]]:
        # Tasks defer at random moments: spread the starts over one poll interval.
        await asyncio.sleep(number / len(triggers) * poll)
        event = await first_event(trigger, timeout=3600)
        return time.time(), event.payload

    return await asyncio.gather(*(one(number, trigger) for number, trigger in enumerate(triggers)))


def _busiest_minute(moments: list[float]) -> int:
    moments = sorted(moments)
    busiest, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= 60.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def run(
    waits: int, poll_interval: float, reveal: float, max_seconds: float
) -> tuple[list[Figure], dict[str, Any]]:
    saved_connection = os.environ.get("AIRFLOW_CONN_POSTHOG_DEFAULT")
    with PostHogEmulator(port=0, rate_limit=True) as emulator:
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = json.dumps(
            {
                "conn_type": "posthog",
                "host": emulator.url,
                "password": emulator.api_key,
                "extra": {"project_id": str(emulator.project_id)},
            }
        )
        since, starts = _arrange(emulator, reveal, intervals=max(1, waits // 20))
        emulator.clear_requests()
        revealed_at = time.time() + reveal
        triggers = _triggers(waits, starts, since, poll_interval, end=time.time() + max_seconds)
        results = asyncio.run(_run_all(triggers, poll_interval))
        records = [record for record in emulator.requests if record.path.startswith("/api/")]
    if saved_connection is None:
        os.environ.pop("AIRFLOW_CONN_POSTHOG_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = saved_connection
    statuses = [payload["status"] for _moment, payload in results]
    noticed = [moment - revealed_at for moment, payload in results if payload["status"] == "success"]
    throttled = sum(record.status == 429 for record in records)
    busiest = _busiest_minute([record.started_at for record in records])
    ended = statuses.count("success")
    details = {
        "waits": waits,
        "poll_interval": poll_interval,
        "reveal_s": reveal,
        "requests": len(records),
        "responses_429": throttled,
        "busiest_minute": busiest,
        "statuses": {status: statuses.count(status) for status in set(statuses)},
        "noticed_s": {
            "median": median(noticed),
            "p95": percentile(noticed, 95),
            "max": max(noticed, default=None),
        },
    }
    demand = round(waits * 60 / poll_interval)
    figures = [
        Figure(
            9,
            f"{waits} mixed deferred waits on one key, PostHog's limit on: responses 429",
            throttled,
            "responses",
            None,
            "== 0",
            throttled == 0,
            f"{len(records)} requests; the waits would ask for {demand} a minute unbudgeted",
        ),
        Figure(
            9,
            f"{waits} mixed deferred waits: most requests in any 60 s",
            busiest,
            "requests",
            None,
            f"<= {DEFAULT_PER_MINUTE}",
            busiest <= DEFAULT_PER_MINUTE,
            "the shared budget's default; PostHog allows 480",
        ),
        Figure(
            9,
            f"{waits} mixed deferred waits: waits that ended with their condition",
            ended,
            "waits",
            None,
            f"== {waits}",
            ended == waits,
            f"statuses {details['statuses']}",
        ),
        Figure(
            9,
            f"{waits} mixed deferred waits: time from the condition to the event (median / max)",
            f"{median(noticed):.1f} / {max(noticed, default=float('nan')):.1f}",
            "s",
            None,
            note=f"poll interval {poll_interval} s, stretched by the budget when it is short",
        ),
    ]
    return figures, details
