"""
Item 11: many deferred waits on one project and one key, PostHog's limits on: the shared project poll.

One event loop (a triggerer) runs ``waits`` ``PostHogBatchExportRunTrigger``: nine in ten wait for an
exported hour (a deferred run sensor), one in ten for a backfill, spread over ``min(waits, 100)``
exports of one project. The emulator enforces PostHog's 480 requests a minute and 4,800 an hour; it
runs in this process, so its CPU counts in the loop lag. Each export gets one backfill of an old
hour whose run ends at a moment spread over the ``spread`` poll intervals after the first; the run waits wait
for that hour, the backfill waits for that backfill. The same waits then run as they did before the
shared poll (each reads its own export or backfill every interval: the reference column), for at
most ``spread + 3`` intervals.

Counted: 429 answers; requests per poll interval while the runs are at work, and how many of them
read the exports list; the time from a run's end (the emulator's) to its wait's event, median and
p99; the RSS the waits add and the event loop's lag (p99 of 10 ms ticks).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from phenv_emulator import PostHogEmulator
from phenv_emulator.batch_exports.runs import ends_at

from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger, PostHogPollTrigger
from airflow_provider_phenv.validation import format_timestamp
from benchmarks.harness import Figure, median, memory_figure, percentile, shared_and_alone
from benchmarks.run_events import TICK, rss_mb

DESTINATION = {"type": "Postgres", "config": {"database": "d", "host": "db", "port": 5432}}


def _arrange(emulator: PostHogEmulator, exports: int, interval: float, spread: int) -> list[dict[str, Any]]:
    """One export per slot, each with a backfill of an old hour ending within ``spread`` intervals."""
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    arranged = []
    for number in range(exports):
        export = emulator.state.add_batch_export(f"bench {number}", DESTINATION)
        duration = interval * (1.5 + spread * number / exports)  # past every wait's first poll
        emulator.state.set_run_outcome(export["id"], "completed", duration=duration)
        backfill = emulator.state.start_backfill(export["id"], hour, hour + timedelta(hours=1))
        arranged.append({"export": export["id"], "backfill": backfill["id"], "hour": hour})
    return arranged


def _triggers(arranged: list[dict[str, Any]], waits: int, interval: float, end: float) -> list[Any]:
    triggers = []
    for number in range(waits):
        slot = arranged[number % len(arranged)]
        common = {"batch_export_id": slot["export"], "poll_interval": interval, "end_time": end}
        if number % 10 == 9:
            triggers.append(PostHogBatchExportRunTrigger(backfill_id=slot["backfill"], **common))
        else:
            since, until = slot["hour"], slot["hour"] + timedelta(hours=1)
            triggers.append(
                PostHogBatchExportRunTrigger(
                    since=format_timestamp(since), until=format_timestamp(until), **common
                )
            )
    return triggers


async def _measure(triggers: list[Any], shared: bool) -> tuple[list[tuple[float, dict]], list[float], float]:
    """Each trigger's first event and when it came; the loop's lags; the RSS added (MB)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    gc.collect()
    baseline = peak = rss_mb()
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal peak
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - before - TICK)
            peak = max(peak, rss_mb())

    async def one(number: int, trigger: Any) -> tuple[float, dict]:
        # Tasks defer at moments of their own: the starts spread over one interval. The reference:
        # the polling base's own loop, each wait reading alone.
        await asyncio.sleep(number / len(triggers) * trigger.poll_interval)
        events = trigger.run() if shared else PostHogPollTrigger.run(trigger)
        try:
            event = await events.__anext__()
        finally:
            await events.aclose()
        return time.time(), event.payload

    watch = asyncio.create_task(ticker())
    results = await asyncio.gather(*(one(number, trigger) for number, trigger in enumerate(triggers)))
    done.set()
    await watch
    return results, lags, peak - baseline


def _one_run(waits: int, interval: float, spread: int, shared: bool) -> dict[str, Any]:
    saved = os.environ.get("AIRFLOW_CONN_POSTHOG_DEFAULT")
    emulator = PostHogEmulator(
        port=0, rate_limit=True, backfill_row_delay=0, max_concurrent_backfills=10**6, log_delay=0
    )
    with emulator:
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = json.dumps(
            {
                "conn_type": "posthog",
                "host": emulator.url,
                "password": emulator.api_key,
                "extra": {"project_id": str(emulator.project_id)},
            }
        )
        arranged = _arrange(emulator, min(waits, 100), interval, spread)
        emulator.clear_requests()
        began = time.time()
        cap = interval * (spread + 3)
        triggers = _triggers(arranged, waits, interval, end=began + cap)
        results, lags, rss_added = asyncio.run(_measure(triggers, shared))
        ended = time.time()
        runs = {slot["export"]: emulator.state.runs_of(slot["export"])[0] for slot in arranged}
        finished = {export: ends_at(run).timestamp() for export, run in runs.items()}
        records = [record for record in emulator.requests if record.path.startswith("/api/")]
    if saved is None:
        os.environ.pop("AIRFLOW_CONN_POSTHOG_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = saved
    noticed = [
        moment - max(finished[trigger.wait.batch_export_id], began)
        for trigger, (moment, payload) in zip(triggers, results, strict=True)
        if payload["status"] == "success"
    ]
    intervals = max((ended - began) / interval, 1.0)
    lags.sort()
    return {
        "waits": waits,
        "exports": len(arranged),
        "mode": "shared project poll" if shared else "each wait alone (reference)",
        "requests": len(records),
        "requests_per_interval": round(len(records) / intervals, 1),
        "list_reads_per_interval": round(
            sum(record.path.endswith("/batch_exports/") for record in records) / intervals, 1
        ),
        "responses_429": sum(record.status == 429 for record in records),
        "ended": sum(payload["status"] == "success" for _moment, payload in results),
        "noticed_median_s": median(noticed),
        "noticed_p99_s": percentile(noticed, 99),
        "rss_added_mb": round(rss_added, 1),
        "loop_lag_p99_ms": round(1000 * percentile(lags, 99), 1) if lags else None,
    }


def _figures(row: dict[str, Any], reference: dict[str, Any], interval: float, spread: int) -> list[Figure]:
    label = f"{row['waits']} deferred waits over {row['exports']} exports, one key"
    return [
        Figure(
            11,
            f"{label}: responses 429",
            row["responses_429"],
            "responses",
            reference["responses_429"],
            "== 0",
            row["responses_429"] == 0,
            f"{row['ended']} of {row['waits']} waits ended; each alone: {reference['ended']} within "
            f"{spread + 3} intervals",
        ),
        Figure(
            11,
            f"{label}: requests per poll interval (exports list reads)",
            f"{row['requests_per_interval']} ({row['list_reads_per_interval']})",
            "requests",
            reference["requests_per_interval"],
            note="the list once per interval, plus each backfill's own reads when its run ends",
        ),
        Figure(
            11,
            f"{label}: run end to event, median / p99",
            f"{row['noticed_median_s']:.1f} / {row['noticed_p99_s']:.1f}",
            "s",
            None,
            f"<= {interval + 5:g} / <= {2 * interval:g}",
            row["noticed_median_s"] <= interval + 5 and row["noticed_p99_s"] <= 2 * interval,
            f"poll interval {interval:g} s; each alone: {reference['noticed_median_s']:.1f} / "
            f"{reference['noticed_p99_s']:.1f} s",
        ),
        memory_figure(11, label, row, reference, "the emulator runs in the same process"),
    ]


def run(sizes: tuple[int, ...], interval: float, spread: int) -> tuple[list[Figure], dict[str, Any]]:
    rows = [_one_run(waits, interval, spread, shared) for waits in sizes for shared in (True, False)]
    pairs = shared_and_alone(rows, "waits")
    return [figure for row, alone in pairs for figure in _figures(row, alone, interval, spread)], {
        "rows": rows
    }
