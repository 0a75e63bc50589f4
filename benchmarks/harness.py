"""
What every benchmark shares: figures, the emulator with both connections, and request counting.

Both providers talk to the same in-process emulator: ``posthog_default`` (this provider) and
``posthog_http`` (an ``http`` connection with ``Authorization: Bearer`` in its extra, which
HttpHook sends as a header). Everything is counted from the emulator's request log, so the two
are measured by the same ruler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.helpers.sensor_modes import first_event

HTTP_CONN_ID = "posthog_http"


@dataclass
class Figure:
    """
    One number of the report, with the HTTP provider's number for the same thing where one exists.

    :param item: the issue's item number (1-7).
    :param name: what was measured.
    :param ours: this provider's value.
    :param unit: unit of ``ours`` and ``http``.
    :param http: apache-airflow-providers-http's value, or None when it has no equivalent.
    :param floor: the floor as text (``<= 20``), or None.
    :param passed: whether ``ours`` reaches the floor; None without a floor.
    :param note: anything needed to read the number.
    """

    item: int
    name: str
    ours: float | int | str
    unit: str
    http: float | int | str | None = None
    floor: str | None = None
    passed: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """ours / http, when both are numbers and http is not zero."""
        numbers = (int, float)
        if isinstance(self.ours, numbers) and isinstance(self.http, numbers) and self.http:
            return self.ours / self.http
        return None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def latency_figure(
    item: int,
    name: str,
    average: Callable[[list[float]], float],
    ours: list[float],
    overhead_ms: float,
    http: list[float] | None = None,
    http_note: str | None = None,
    **floor: Any,
) -> Figure:
    """
    A wait's latency in seconds: ``average`` of ``ours``, next to HttpSensor's where it has one.

    The note gives our worst sample, what our task took after the deciding poll (``overhead_ms``)
    and ``http_note`` on HttpSensor; without one, that HttpSensor cannot defer. ``floor``: the
    Figure's ``floor`` and ``passed``.
    """
    note = f"max {max(ours):.3f} s; after the deciding poll: {overhead_ms:.1f} ms"
    note += (
        f" ({http_note})" if http_note is not None else "; HttpSensor with a response_check does not defer"
    )
    http_value = round(average(http), 3) if http else None
    return Figure(item, name, round(average(ours), 3), "s", http_value, note=note, **floor)


def shared_and_alone(rows: list[dict[str, Any]], size: str) -> Iterator[tuple[dict, dict]]:
    """Each row of a shared project poll, with the row of the same ``size`` whose waits poll alone."""
    for row in rows:
        if row["mode"] == "shared project poll":
            yield row, next(other for other in rows if other[size] == row[size] and other is not row)


def memory_figure(item: int, label: str, row: dict, alone: dict, note: str) -> Figure:
    """RSS added and event-loop lag p99 of a shared poll's row, beside its waits polling alone."""
    return Figure(
        item,
        f"{label}: RSS added / event-loop lag p99",
        f"{row['rss_added_mb']} MB / {row['loop_lag_p99_ms']} ms",
        "",
        f"{alone['rss_added_mb']} MB / {alone['loop_lag_p99_ms']} ms",
        note=note,
    )


def check(value: float, op: str, limit: float) -> bool:
    """Whether ``value`` reaches a floor written as ``op limit``."""
    return {"<=": value <= limit, ">=": value >= limit, "==": value == limit}[op]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation, so p99 of 100 samples is a real sample)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def quiet_logs() -> None:
    """Task and hook log lines would drown the table; errors still show."""
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("airflow", "airflow.task", "airflow_provider_phenv", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class Traffic:
    """What the emulator saw while one operation ran."""

    requests: int
    connections: int
    response_bytes: int
    statuses: list[int | None]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Bench:
    """
    The emulator plus both connections; :meth:`measure` counts what one operation sent.

    :param emulator: a started ``PostHogEmulator``.
    """

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = json.dumps(
            {
                "conn_type": "posthog",
                "host": emulator.url,
                "password": emulator.api_key,
                "extra": {"project_id": str(emulator.project_id)},
            }
        )
        os.environ[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "http",
                "host": emulator.host,
                "port": emulator.port,
                "schema": "http",
                "extra": {"Authorization": f"Bearer {emulator.api_key}"},
            }
        )

    @property
    def api(self) -> str:
        """Path prefix of the seeded project, for HttpOperator endpoints."""
        return f"/api/environments/{self.emulator.project_id}"

    def reset(self) -> None:
        self.emulator.reset()

    @contextmanager
    def counting(self) -> Iterator[list[Traffic]]:
        """Count the API requests made inside the block; the result is appended to the yielded list."""
        self.emulator.clear_requests()
        box: list[Traffic] = []
        started = time.perf_counter()
        yield box
        seconds = time.perf_counter() - started
        box.append(traffic(self.emulator.requests, seconds))

    def measure(self, operation: Callable[[], Any]) -> Traffic:
        """Run ``operation`` once and return its traffic."""
        with self.counting() as box:
            operation()
        return box[0]


def traffic(records: list[Any], seconds: float = 0.0) -> Traffic:
    """Summarise request-log records (control endpoints are never in the log)."""
    api = [record for record in records if record.path.startswith("/api/")]
    return Traffic(
        requests=len(api),
        connections=len({record.connection_id for record in api}),
        response_bytes=sum(record.response_bytes for record in api),
        statuses=[record.status for record in api],
        seconds=seconds,
    )


def fake_context() -> dict[str, Any]:
    """What operators get from the task runner and read here: nothing but a mapping."""
    return {}


def idle_trigger_polls(bench: Bench, trigger: Any, polls: int, interval: float) -> list[list[Any]]:
    """Run ``trigger`` for ``polls`` intervals; its requests grouped by poll (gaps > interval / 2)."""

    async def run() -> None:
        try:
            event = await first_event(trigger, timeout=interval * (polls - 0.5))
        except asyncio.TimeoutError:
            return  # idle all along, as it should be
        raise RuntimeError(f"the trigger fired {event.payload}: its polls were not idle")

    bench.emulator.clear_requests()
    asyncio.run(run())
    groups: list[list[Any]] = []
    for record in bench.emulator.requests:
        if groups and record.started_at - groups[-1][-1].started_at < interval / 2:
            groups[-1].append(record)
        else:
            groups.append([record])
    return groups
