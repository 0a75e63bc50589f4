"""
How long each sensor mode takes to notice a new log entry on the emulator, at one poll interval.

Run: ``.venv/bin/python -m tests.sensors.measure_latency [poll_interval] [samples]``.

It drives the sensor as the unit tests do (poke loop; reschedule as fresh instances re-run after
the reschedule date; deferrable as first poke, trigger in this process, resume), so it measures
the sensor's own delay without the scheduler's. ``tests/e2e_scheduler`` prints the same numbers
under a real scheduler and triggerer. This is a measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="phenv-latency-"))


def _wait(run, sensor, context, finished: list[float]) -> None:
    run(sensor, context)
    finished.append(time.monotonic())


def main(poll_interval: float = 1.0, samples: int = 5) -> None:
    from airflow_provider_phenv.emulator import PostHogEmulator
    from tests.sensors.logs_helpers import (
        EXPORT_ID,
        MODES,
        FakeStateStore,
        FakeTI,
        entry,
        make_context,
        sensor_for_mode,
        utcnow,
    )
    from tests.support import connection_json

    with PostHogEmulator(port=0) as emulator:
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = connection_json(emulator)
        results: dict[str, list[float]] = {}
        for mode, run in MODES.items():
            for _ in range(samples):
                emulator.reset()
                start = utcnow()
                sensor = sensor_for_mode(
                    mode, message_pattern="^done$", poke_interval=poll_interval, timeout=60
                )
                finished: list[float] = []
                context = make_context(FakeTI(start), FakeStateStore())
                waiter = threading.Thread(target=_wait, args=(run, sensor, context, finished))
                waiter.start()
                # Write the line at a random phase of the poll cycle, already visible when written.
                time.sleep(poll_interval + random.uniform(0, poll_interval))
                written = time.monotonic()
                emulator.state.add_log_entries(
                    EXPORT_ID, [entry(utcnow() - timedelta(microseconds=1), "INFO", "done")]
                )
                waiter.join(30)
                results.setdefault(mode, []).append(finished[0] - written)
        print(f"poll interval {poll_interval} s, {samples} samples, seconds from write to sensor result:")
        for mode, values in results.items():
            mean, low, high = statistics.mean(values), min(values), max(values)
            print(f"  {mode:<11} mean {mean:.2f}  min {low:.2f}  max {high:.2f}")


if __name__ == "__main__":
    main(*(float(arg) if index == 0 else int(arg) for index, arg in enumerate(sys.argv[1:])))
