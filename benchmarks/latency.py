"""
Item 5: time from a matching log entry's arrival to sensor success, per mode, at one poke interval.

A waiter thread runs the sensor, driven as the tests drive it (``tests/helpers/sensor_modes.py``);
the main thread writes the matching line one poll interval plus a phase after the sensor started,
and notes the moment.
Latency is the time from that write to the sensor's return. The phases are spread evenly over the
poll cycle ((k + 0.5) / n of it for run k of n), the same for every sensor, so the mean is
interval / 2 plus the mode's own overhead, without the noise of random phases.

HttpSensor runs the same way in poke and reschedule mode (with a ``response_check`` it never
defers), with ``after=<task start>`` as a careful DAG author would template it: without it, its
check matches the line of a run that finished before the task began. In-process, so the
scheduler's own delays are not included.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.http.sensors.http import HttpSensor

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
from airflow_provider_phenv.validation import format_timestamp
from benchmarks.harness import HTTP_CONN_ID, Bench, Figure, latency_figure, utcnow
from benchmarks.sensor_polls import EXPORT, http_check
from tests.helpers.sensor_modes import MODES, FakeStateStore, FakeTI, make_context

MESSAGE = (
    "Batch export for range 2026-11-28 11:00:00+00:00 - 2026-11-28 12:00:00+00:00 "
    "finished successfully with 1000 records exported"
)


def _sensor(kind: str, mode: str, bench: Bench, interval: float, start: datetime) -> Any:
    common = {
        "poke_interval": interval,
        "timeout": 120,
        "mode": "reschedule" if mode == "reschedule" else "poke",
    }
    if kind == "http":
        return HttpSensor(
            task_id=f"http_{mode}",
            http_conn_id=HTTP_CONN_ID,
            endpoint=f"{bench.api}/batch_exports/{EXPORT}/logs/",
            request_params={"after": format_timestamp(start)},
            response_check=http_check,
            **common,
        )
    return PostHogBatchExportLogsSensor(
        task_id=f"ours_{mode}",
        batch_export_id=EXPORT,
        message_pattern=r"finished (successfully )?with (\d+|no) records exported",
        deferrable=mode == "deferrable",
        **common,
    )


def one(bench: Bench, kind: str, mode: str, interval: float, phase: float) -> tuple[float, float]:
    """
    Seconds from writing the matching entry to the sensor's return, and the part of it after the
    poll that read the entry (the mode's own overhead; the rest is waiting for that poll).
    """
    bench.reset()
    start = utcnow()
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = _sensor(kind, mode, bench, interval, start)
    finished: list[float] = []
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            MODES[mode](sensor, context)
            finished.append(time.time())
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(interval * (1 + phase))  # after the first poke
    written = time.time()  # wall clock, as the emulator's request log
    # Stamped a microsecond ago, so it is visible as soon as it is written.
    bench.emulator.state.add_log_entries(
        EXPORT,
        [{"timestamp": utcnow() - timedelta(microseconds=1), "level": "INFO", "message": MESSAGE}],
    )
    waiter.join(interval * 10 + 30)
    if errors:
        raise errors[0]
    if not finished:
        raise RuntimeError(f"{kind} sensor in {mode} mode did not finish")
    deciding = min(r.started_at for r in bench.emulator.requests if r.started_at >= written)
    return finished[0] - written, finished[0] - deciding


def run(bench: Bench, interval: float, repeats: int) -> tuple[list[Figure], dict[str, Any]]:
    samples: dict[str, list[float]] = {}
    after_poll: dict[str, list[float]] = {}
    phases = [(k + 0.5) / repeats for k in range(repeats)]
    for mode in MODES:
        for kind in ("ours", "http"):
            if kind == "http" and mode == "deferrable":
                continue
            runs = [one(bench, kind, mode, interval, phase) for phase in phases]
            samples[f"{kind} {mode}"] = [total for total, _ in runs]
            after_poll[f"{kind} {mode}"] = [overhead for _, overhead in runs]
    details = {
        "poke_interval": interval,
        "phases": phases,
        "latency_s": samples,
        "after_deciding_poll_s": after_poll,
    }
    return _figures(samples, after_poll, interval, repeats), details


def _figures(
    samples: dict[str, list[float]], after_poll: dict[str, list[float]], interval: float, repeats: int
) -> list[Figure]:
    figures = []
    for mode in MODES:
        http = samples.get(f"http {mode}")
        http_note = (
            f"HttpSensor {statistics.mean(after_poll[f'http {mode}']) * 1000:.1f} ms" if http else None
        )
        figures.append(
            latency_figure(
                5,
                f"entry to success, {mode} mode (mean of {repeats} phases, poke_interval {interval:g} s)",
                statistics.mean,
                samples[f"ours {mode}"],
                statistics.mean(after_poll[f"ours {mode}"]) * 1000,
                http,
                http_note,
            )
        )
    return figures
