"""
Item 13: two triggerer processes on one personal API key, PostHog's limits on.

Two processes (two triggerers) each run ``waits`` polling loops that ask for far more than the key
allows: each loop reads a runs list of its own (no two reads alike, so nothing is shared) as fast
as the process's request budget lets it, for ``seconds``. The emulator enforces PostHog's 480
requests a minute and 4,800 an hour per key. With the connection extra ``key_shared_by=2`` each
process takes half of the budget (200 a minute, 2,000 an hour); the reference column is the same
run without it, each process taking the whole budget.

Counted from the emulator's request log: 429 answers; the most requests in any 60 s; and what the
two processes would send in an hour (the steady rate of the run's second half for an hour, plus
the burst above that rate), next to PostHog's 4,800: the run lasts a minute, the hour is extrapolated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from phenv_emulator import SEED, PostHogEmulator

from airflow_provider_phenv.hooks.settings import DEFAULT_PER_MINUTE
from benchmarks.budget_load import _busiest_minute
from benchmarks.harness import Figure, check

# One triggerer: ``waits`` loops, each reading a runs list no other read asks for, until the end.
TRIGGERER = """
import asyncio, itertools, sys, time
from datetime import datetime, timedelta, timezone
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook

async def main(export, waits, seconds):
    end = time.time() + seconds
    numbers = itertools.count()
    async with PostHogAsyncHook(max_retries=0) as hook:
        async def loop():
            while time.time() < end:
                after = datetime.now(timezone.utc) - timedelta(seconds=next(numbers))
                read = hook.list_batch_export_runs(export, after=after)
                try:
                    await asyncio.wait_for(read, end - time.time())
                except Exception:
                    pass
        await asyncio.gather(*(loop() for _ in range(waits)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def _two_triggerers(emulator: PostHogEmulator, waits: int, seconds: float, shared_by: int) -> list[Any]:
    emulator.reset()
    emulator.rate_limiter.configure(enabled=True)
    extra = {"project_id": str(emulator.project_id), "key_shared_by": shared_by}
    conn = {"conn_type": "posthog", "host": emulator.url, "password": emulator.api_key, "extra": extra}
    env = {
        **os.environ,
        "AIRFLOW_CONN_POSTHOG_DEFAULT": json.dumps(conn),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
    command = [sys.executable, "-c", TRIGGERER, SEED.s3_export_id, str(waits), str(seconds)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(2)]
    for process in processes:
        process.wait(timeout=seconds + 300)
    return [record for record in emulator.requests if record.path.startswith("/api/")]


def run(waits: int, seconds: float) -> tuple[list[Figure], dict[str, Any]]:
    with PostHogEmulator(port=0, rate_limit=True) as emulator:
        began = time.monotonic()
        shared = _two_triggerers(emulator, waits, seconds, shared_by=2)
        alone = _two_triggerers(emulator, waits, seconds, shared_by=1)
        elapsed = time.monotonic() - began
    rows = {}
    for name, records in (("shared", shared), ("alone", alone)):
        moments = sorted(record.started_at for record in records)
        # The steady rate of the run's second half, carried on for an hour after the burst it
        # leaves unexplained (the processes start a moment apart, so no fixed second holds it).
        first, last = moments[0], moments[-1]
        middle = (first + last) / 2
        rate = sum(moment > middle for moment in moments) / max(last - middle, 1.0)
        burst = max(0, round(len(moments) - rate * (last - first)))
        rows[name] = {
            "requests": len(records),
            "responses_429": sum(record.status == 429 for record in records),
            "busiest_minute": _busiest_minute(moments),
            "burst": burst,
            "rate_per_s": round(rate, 3),
            "hour_at_most": round(burst + rate * 3600),
        }
    label = f"two triggerers on one key, {waits} polling loops each, {seconds:g} s"
    shared, alone = rows["shared"], rows["alone"]
    # (what, row key, unit, floor, PostHog's limit, note)
    measured = (
        ("responses 429", "responses_429", "responses", "==", 0,
         "key_shared_by=2; reference: without it, each process takes the whole budget"),
        ("most requests in any 60 s", "busiest_minute", "requests", "<=", 480,
         f"PostHog allows 480; each process's budget {DEFAULT_PER_MINUTE // 2} a minute"),
        ("the burst plus the steady rate for an hour", "hour_at_most", "requests", "<=", 4800,
         f"measured: {shared['burst']} at once, then {shared['rate_per_s']}/s; PostHog allows 4,800"),
    )  # fmt: skip
    figures = [
        Figure(13, f"{label}: {what}", shared[key], unit, alone[key], f"{op} {limit}",
               check(shared[key], op, limit), note)
        for what, key, unit, op, limit, note in measured
    ]  # fmt: skip
    return figures, {"rows": rows, "seconds": elapsed}
