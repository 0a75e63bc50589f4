"""
Item 6, the triggerer side: many log triggers in one asyncio loop, as a triggerer would run them.

Run as a script by :mod:`benchmarks.deferral` (``python -I benchmarks/trigger_load.py ...``) in its
own process, so the emulator's threads neither share its GIL nor count in its memory. It is
standalone on purpose: with ``-I`` only the installed packages are importable. It prints one JSON
line: RSS before and during the run, event-loop lag samples, and how the triggers ended.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

# The seeded exports that have logs; the triggers are spread over them.
EXPORTS = (
    "01900000-0000-7000-8000-0000000000e1",
    "01900000-0000-7000-8000-0000000000e2",
    "01900000-0000-7000-8000-0000000000e3",
)
TICK = 0.01


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


async def first_event(trigger: Any) -> dict[str, Any]:
    generator = trigger.run()
    try:
        event = await generator.__anext__()
        return event.payload
    finally:
        await generator.aclose()


async def main(count: int, duration: float, interval: float, stagger: float, freeze: bool) -> dict[str, Any]:
    from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
    from airflow_provider_phenv.validation import format_timestamp

    loop = asyncio.get_running_loop()
    gc.collect()
    objects = len(gc.get_objects())
    if freeze:
        # What Airflow's dag processor and LocalExecutor do after start-up: the objects alive now
        # (Airflow's own, ~1M) leave the collector's view, so a full collection walks only new ones.
        gc.freeze()
    baseline = status_mb("VmRSS")
    lags: list[tuple[float, float]] = []
    rss: list[tuple[float, float]] = []
    done = asyncio.Event()
    started = loop.time()

    async def ticker() -> None:
        # A coroutine that wants to wake every TICK: how late it wakes is the loop's lag.
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append((before - started, loop.time() - before - TICK))

    async def sampler() -> None:
        while not done.is_set():
            rss.append((loop.time() - started, status_mb("VmRSS")))
            await asyncio.sleep(0.5)

    async def one(number: int) -> dict[str, Any]:
        # Trigger number n arrives at n / count * stagger, as tasks deferring at random moments
        # would (stagger 0: all at once, as after a triggerer restart); each runs for `duration`.
        await asyncio.sleep(number / count * stagger)
        trigger = PostHogBatchExportLogsTrigger(
            batch_export_id=EXPORTS[number % len(EXPORTS)],
            since=format_timestamp(datetime.now(timezone.utc)),
            criteria={"message_pattern": r"finished (successfully )?with (\d+|no) records exported"},
            poll_interval=interval,
            end_time=time.time() + duration,
        )
        return await first_event(trigger)

    # Garbage-collector pauses stop the loop too; recorded to tell them apart from our own code.
    collections: list[tuple[float, int, float]] = []
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            pause = time.perf_counter() - gc_started.pop()
            collections.append((loop.time() - started, info["generation"], pause))

    gc.callbacks.append(on_gc)
    watchers = [asyncio.create_task(ticker()), asyncio.create_task(sampler())]
    events = await asyncio.gather(*(one(number) for number in range(count)), return_exceptions=True)
    done.set()
    await asyncio.gather(*watchers)
    gc.callbacks.remove(on_gc)
    statuses = Counter(
        event["status"] if isinstance(event, dict) else type(event).__name__ for event in events
    )
    errors = [
        event.get("message") for event in events if isinstance(event, dict) and event["status"] == "error"
    ]
    return {
        "triggers": count,
        "duration": duration,
        "interval": interval,
        "stagger": stagger,
        "gc_frozen": freeze,
        "objects_at_start": objects,
        "elapsed": loop.time() - started,
        "baseline_rss_mb": baseline,
        "rss_mb": rss,
        "peak_rss_mb": status_mb("VmHWM"),
        "end_rss_mb": status_mb("VmRSS"),
        "lags": lags,
        "gc": collections,
        "statuses": dict(statuses),
        "first_errors": errors[:3],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--stagger", type=float, default=0.0)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() before the triggers start")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(
        json.dumps(asyncio.run(main(args.triggers, args.duration, args.interval, args.stagger, args.freeze)))
    )
