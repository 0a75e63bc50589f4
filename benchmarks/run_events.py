"""
Item 12: run event watchers (``PostHogBatchExportRunEventTrigger``): what watching many exports costs.

In ``scripts/bench.sh``, or alone: ``python -m benchmarks.run_events [--smoke] [--e2e] [--out FILE]``
(from the work tree, with ``.venv``). A script, not a timed test. It measures, against the emulator
in a subprocess:

1. **Requests per poll interval** with 1, 100 and 1,000 watched exports in one project, in both
   modes: the shared project poll (the default) and one poll per watcher (``shared_poll=False``).
   Also the requests the watchers made to start.
2. **RSS and event-loop lag** of the process running the 1,000 watchers (what a triggerer adds).
3. With ``--e2e``: **time from a run finishing to the DAG run being queued**, from the e2e test
   with a real scheduler and triggerer (``tests/e2e_scheduler/test_run_events_scheduler.py``).

It prints a table and writes the figures as JSON (default ``benchmarks/run_events.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Figure, memory_figure, shared_and_alone
from tests.helpers.airflow_stack import spawn_emulator

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="phenv-bench-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
TICK = 0.01


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def create_exports(url: str, key: str, project: str, count: int) -> list[str]:
    import httpx

    ids = []
    with httpx.Client(
        base_url=f"{url}/api/environments/{project}/", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        for number in range(count):
            answer = api.post(
                "batch_exports/",
                json={
                    "name": f"bench export {number}",
                    "interval": "hour",
                    "destination": {
                        "type": "Postgres",
                        "config": {"database": "d", "host": "db", "port": 5432},
                    },
                },
            )
            answer.raise_for_status()
            ids.append(answer.json()["id"])
    return ids


def api_requests(url: str) -> list[dict[str, Any]]:
    import httpx

    return [
        r for r in httpx.get(f"{url}/_emulator/requests", timeout=60).json() if r["path"].startswith("/api/")
    ]


def clear_requests(url: str) -> None:
    import httpx

    httpx.delete(f"{url}/_emulator/requests")


async def measure(
    url: str, exports: list[str], *, shared: bool, interval: float, intervals: int
) -> dict[str, Any]:
    """Run one watcher per export for a while; count requests per poll, RSS and loop lag."""
    from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunEventTrigger

    loop = asyncio.get_running_loop()
    gc.collect()
    baseline = rss_mb()
    clear_requests(url)
    lags: list[float] = []
    peak = [baseline]
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - before - TICK)
            peak[0] = max(peak[0], rss_mb())

    triggers = [
        PostHogBatchExportRunEventTrigger(export_id, poll_interval=interval, shared_poll=shared)
        for export_id in exports
    ]
    streams = [t.run() for t in triggers]

    async def consume(stream: Any) -> None:
        async for _ in stream:
            pass

    began = time.monotonic()
    tasks = [asyncio.create_task(consume(stream)) for stream in streams]
    watch = asyncio.create_task(ticker())

    def started() -> int:
        return sum(t._watch is not None and t._watch.started for t in triggers)

    # Watchers polling alone on a short budget may take the hour's pace to start: two minutes at most.
    while started() < len(triggers) and time.monotonic() - began < 120:
        await asyncio.sleep(0.05)
    started_in, started_count = time.monotonic() - began, started()
    await asyncio.sleep(interval / 2)
    startup = len(await asyncio.to_thread(api_requests, url))
    await asyncio.to_thread(clear_requests, url)
    lags.clear()
    await asyncio.sleep(interval * intervals)
    sent = await asyncio.to_thread(api_requests, url)
    steady = len(sent)
    steady_bytes = sum(r.get("response_bytes") or 0 for r in sent)
    steady_lags = sorted(lags)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, watch, return_exceptions=True)
    return {
        "mode": "shared project poll" if shared else "one poll per watcher (shared_poll=False)",
        "watchers": len(exports),
        "poll_interval_s": interval,
        "startup_requests": startup,
        "started_in_s": round(started_in, 2),
        "started": started_count,
        "requests_per_interval": round(steady / intervals, 1),
        "response_kb_per_interval": round(steady_bytes / intervals / 1024, 1),
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(peak[0], 1),
        "rss_added_mb": round(peak[0] - baseline, 1),
        "loop_lag_p50_ms": round(1000 * statistics.median(steady_lags), 1) if steady_lags else None,
        "loop_lag_p99_ms": round(1000 * steady_lags[int(0.99 * (len(steady_lags) - 1))], 1)
        if steady_lags
        else None,
        "loop_lag_max_ms": round(1000 * steady_lags[-1], 1) if steady_lags else None,
    }


def child(url: str, listing: str, count: str, mode: str, timing: str) -> int:
    import logging

    logging.disable(logging.WARNING)
    interval, intervals = timing.split(":")
    exports = json.loads(Path(listing).read_text())[: int(count)]
    row = asyncio.run(
        measure(url, exports, shared=mode == "shared", interval=float(interval), intervals=int(intervals))
    )
    print(json.dumps(row))
    return 0


def e2e_latency() -> dict[str, Any]:
    """Run the scheduler e2e test and read its 'run finished -> DAG run queued' line."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "tests/e2e_scheduler/test_run_events_scheduler.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    match = re.search(r"run finished -> event DAG run queued \(s\), poll interval 1 s: (\{.*\})", done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads(match.group(1))


def rows(sizes: tuple[int, ...], interval: float, intervals: int, out: Path | None = None) -> list[dict]:
    """One row per size and mode, each measured in a fresh process against one emulator."""
    import logging

    logging.disable(logging.WARNING)
    process, _, url, key, project = spawn_emulator()
    # Stopped like an interrupt, so the emulator subprocess is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = {
        **os.environ,
        "AIRFLOW_CONN_POSTHOG_DEFAULT": json.dumps(
            {"conn_type": "posthog", "host": url, "password": key, "extra": {"project_id": project}}
        ),
    }
    measured: list[dict] = []
    try:
        exports = create_exports(url, key, project, max(sizes))
        listing = Path(tempfile.mkdtemp(prefix="phenv-bench-")) / "exports.json"
        listing.write_text(json.dumps(exports))
        for count in sizes:
            for mode in ("shared", "own"):
                # A fresh process per size and mode, so RSS is that of these watchers alone.
                command = [sys.executable, "-m", "benchmarks.run_events", "--child", url, str(listing)]
                command += [str(count), mode, f"{interval}:{intervals}"]
                done = subprocess.run(
                    command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
                )
                if done.returncode != 0:
                    raise RuntimeError(done.stderr[-3000:])
                measured.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(measured[-1]), flush=True)
                if out is not None:  # what is done so far
                    out.write_text(json.dumps({"runs": measured}, indent=2) + "\n")
    finally:
        process.terminate()
        process.wait(10)
    return measured


def _figures(row: dict[str, Any], alone: dict[str, Any]) -> list[Figure]:
    label = f"{row['watchers']} run event watchers on one project"
    return [
        Figure(
            12,
            f"{label}: requests per poll interval / to start",
            f"{row['requests_per_interval']} / {row['startup_requests']}",
            "requests",
            f"{alone['requests_per_interval']} / {alone['startup_requests']}",
            "<= 2",
            row["requests_per_interval"] <= 2,
            f"poll interval {row['poll_interval_s']} s; reference: shared_poll=False",
        ),
        memory_figure(
            12,
            label,
            row,
            alone,
            f"all started in {row['started_in_s']} s; alone: {alone['started']} started in "
            f"{alone['started_in_s']} s",
        ),
    ]


def run(sizes: tuple[int, ...], interval: float, intervals: int) -> tuple[list[Figure], dict[str, Any]]:
    """Item 12: requests per poll, startup requests, RSS and loop lag of run event watchers."""
    measured = rows(sizes, interval, intervals)
    return [
        figure for row, alone in shared_and_alone(measured, "watchers") for figure in _figures(row, alone)
    ], {"rows": measured}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_events")
    parser.add_argument("--smoke", action="store_true", help="1 and 10 watchers, short intervals")
    parser.add_argument("--e2e", action="store_true", help="also run the scheduler e2e test for latency")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "run_events.json")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of watched exports (1 100 1000)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)  # url exports-file count mode interval
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    sizes, interval, intervals = ((1, 10), 0.5, 2) if args.smoke else ((1, 100, 1000), 5.0, 3)
    sizes = tuple(args.sizes or sizes)

    results: dict[str, Any] = {"runs": rows(sizes, interval, intervals, args.out), "latency_s": None}
    if args.e2e:
        results["latency_s"] = e2e_latency()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print("| watchers | mode | requests / poll | KB / poll | to start | RSS added | loop lag p50/p99/max |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for row in results["runs"]:
        print(
            f"| {row['watchers']} | {row['mode']} | {row['requests_per_interval']} | "
            f"{row['response_kb_per_interval']} | "
            f"{row['startup_requests']} | {row['rss_added_mb']} MB | "
            f"{row['loop_lag_p50_ms']} / {row['loop_lag_p99_ms']} / {row['loop_lag_max_ms']} ms |"
        )
    if results["latency_s"]:
        print(f"\nrun finished -> event DAG run queued (s), poll interval 1 s: {results['latency_s']}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
