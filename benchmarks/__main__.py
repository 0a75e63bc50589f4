"""
``python -m benchmarks [--smoke] [--out DIR]``: run every item, print a table, write the results.

Use ``scripts/bench.sh``, which prepares ``.venv-bench`` first. Full size writes
``benchmarks/results.json`` and ``BENCHMARKS.md``; ``--smoke`` runs tiny sizes and writes to a
temporary directory. The exit code is non-zero only when an item crashed, never for a missed floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python -m benchmarks` puts the work tree first on sys.path, which would import the provider from
# its sources; move it last so the installed copy is measured, while `benchmarks` and the tests'
# sensor drivers (`tests.helpers.sensor_modes`) still come from the work tree.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT] + [str(ROOT)]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="phenv-bench-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Task log lines (and "execute cannot be called outside of the Task Runner!") would drown the table.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")


@dataclass(frozen=True)
class Sizes:
    import_runs: int = 15
    dashboards: int = 1000
    list_repeats: int = 5
    old_entries: int = 10_000
    polls: int = 5
    poke_interval: float = 1.0
    latency_repeats: int = 8
    triggers: int = 1000
    trigger_seconds: float = 60.0
    trigger_interval: float = 5.0
    retry_repeats: int = 5
    run_history: int = 168
    run_interval: float = 1.0
    run_repeats: int = 6
    budget_waits: int = 1000
    budget_interval: float = 5.0
    budget_reveal: float = 20.0
    many_waits: tuple[int, ...] = (1, 100, 1000, 10_000)
    many_interval: float = 10.0
    many_spread: int = 2
    watchers: tuple[int, ...] = (1, 100, 1000)
    watch_interval: float = 5.0
    watch_intervals: int = 3
    key_loops: int = 100
    key_seconds: float = 65.0
    # Seconds until a started backfill's row exists in the shared emulator (items 2-5, 7, 8); None
    # keeps the emulator's default, PostHog's delay (docs/posthog-api.md §6.9).
    backfill_row_delay: float | None = None


# A smoke run only shows that every item still runs: each size is the least that still produces
# every figure. Most of its time is fresh interpreters importing Airflow (items 1, 6, 10, 12, 13).
SMOKE = Sizes(
    import_runs=1,
    dashboards=20,
    list_repeats=1,
    old_entries=50,
    polls=3,
    poke_interval=0.2,
    latency_repeats=1,
    triggers=10,
    trigger_seconds=1.0,
    trigger_interval=0.5,
    retry_repeats=1,
    run_history=24,
    run_interval=0.2,
    run_repeats=2,
    budget_waits=20,
    budget_interval=0.5,
    budget_reveal=1.0,
    many_waits=(20,),
    many_interval=0.5,
    many_spread=1,
    watchers=(10,),
    watch_interval=0.5,
    watch_intervals=2,
    key_loops=5,
    key_seconds=1.5,
    # Still late (a read right after the start meets no row), but not 2 s for each backfill of item 8.
    backfill_row_delay=0.2,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, results in a temp dir")
    parser.add_argument("--out", type=Path, help="directory for results.json and BENCHMARKS.md")
    parser.add_argument("--command", default="python -m benchmarks", help="the command, for the report")
    parser.add_argument("--only", type=int, action="append", help="run only these items (repeatable)")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite BENCHMARKS.md from results.json (after editing NOTES.md)",
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else Sizes()
    if args.render:
        from benchmarks import report

        report.render(ROOT / "benchmarks" / "results.json", ROOT / "BENCHMARKS.md")
        return 0

    from phenv_emulator import PostHogEmulator

    from benchmarks import (
        budget_load,
        deferral,
        imports,
        latency,
        many_waits,
        operations,
        report,
        retry_after,
        run_events,
        run_waits,
        sensor_polls,
        shared_key,
        structure,
    )
    from benchmarks.harness import Bench, quiet_logs

    quiet_logs()
    started = time.monotonic()
    figures, details, errors = [], {}, {}
    task_rss_mb = 0.0
    # Entries visible at their timestamps: the figures measure the provider, not PostHog's log
    # pipeline, which reveals entries up to seconds late (the emulator's default, §6.3).
    delays = {} if sizes.backfill_row_delay is None else {"backfill_row_delay": sizes.backfill_row_delay}
    with PostHogEmulator(port=0, log_delay=0, **delays) as emulator:
        bench = Bench(emulator)
        items = {
            1: lambda: imports.run(sizes.import_runs),
            2: lambda: operations.run_operations(bench),
            3: lambda: operations.run_listing(bench, sizes.dashboards, sizes.list_repeats),
            4: lambda: sensor_polls.run(bench, sizes.old_entries, sizes.polls),
            5: lambda: latency.run(bench, sizes.poke_interval, sizes.latency_repeats),
            6: lambda: deferral.run(
                sizes.triggers, sizes.trigger_seconds, sizes.trigger_interval, task_rss_mb
            ),
            7: lambda: retry_after.run(bench, sizes.retry_repeats),
            8: lambda: run_waits.run(
                bench, sizes.run_history, sizes.polls, sizes.run_interval, sizes.run_repeats
            ),
            9: lambda: budget_load.run(
                sizes.budget_waits, sizes.budget_interval, sizes.budget_reveal, max_seconds=600
            ),
            10: structure.run,
            11: lambda: many_waits.run(sizes.many_waits, sizes.many_interval, sizes.many_spread),
            12: lambda: run_events.run(sizes.watchers, sizes.watch_interval, sizes.watch_intervals),
            13: lambda: shared_key.run(sizes.key_loops, sizes.key_seconds),
        }
        for item, run in items.items():
            if args.only and item not in args.only:
                continue
            clock = time.monotonic()
            print(f"item {item}...", end=" ", flush=True)
            try:
                item_figures, item_details = run()
            except Exception as error:
                traceback.print_exc()
                errors[str(item)] = f"{type(error).__name__}: {error}"
                print("CRASHED", flush=True)
                continue
            figures += item_figures
            details[str(item)] = {**item_details, "seconds": time.monotonic() - clock}
            task_rss_mb = details.get("1", {}).get("task_process_rss_mb", task_rss_mb)
            print(f"{time.monotonic() - clock:.1f} s", flush=True)

    info = {
        **report.meta(args.command, args.smoke),
        "sizes": sizes.__dict__,
        "seconds": time.monotonic() - started,
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="phenv-bench-smoke-")) if args.smoke else None)
    json_path = (out or ROOT / "benchmarks") / "results.json"
    md_path = (out or ROOT) / "BENCHMARKS.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(json_path, info, figures, details, errors)
    md_path.write_text(report.markdown(info, figures, errors))
    print()
    print(report.table(figures))
    print(
        f"\n{len(figures)} figures, {sum(f.passed is False for f in figures)} floor(s) missed, "
        f"{len(errors)} item(s) crashed, {info['seconds']:.0f} s; wrote {json_path} and {md_path}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
