"""Backfills: one run per whole export interval, one after another (docs/posthog-api.md §6.9, §13.5,
§13.16, §13.18).

A backfill plans ``floor((end_at - start_at) / interval)`` runs from ``start_at`` (none for a range
shorter than one interval). Its first run starts when it is created and each next one when the
previous one finished, so the timeline is a pure function of the runs' outcomes; :func:`advance`
materialises the runs whose start has come (the store calls it before every read). Like today's
workflow, a backfill goes on after a failed run and ends Completed; with the ``backfill-fails``
switch it stops at the first failure and ends Failed. A hanging run holds the backfill for ever.

Status: Starting (until its first run is Running), Running, then Completed, Failed or Cancelled.
``progress`` is null once Failed or Cancelled, and reports the planned run count for both totals
once Completed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..web.fields import iso
from .runs import ACTIVE_STATUSES, FAILED_STATUSES, finished_at, run_status

#: The export intervals and their lengths.
INTERVALS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "every 5 minutes": timedelta(minutes=5),
    "every 15 minutes": timedelta(minutes=15),
}
StartRun = Callable[[datetime, datetime, datetime], dict[str, Any]]


def new_backfill(
    export: dict[str, Any], start: datetime, end: datetime, interval: timedelta, now: datetime
) -> dict[str, Any]:
    """A backfill record of ``[start, end)`` planned in whole ``interval`` steps from ``start``."""
    count = int((end - start) / interval) if end > start else 0
    return {
        "id": str(uuid.uuid4()),
        "team_id": export["team_id"],
        "batch_export_id": export["id"],
        "start_at": start,
        "end_at": end,
        "created_at": now,
        "intervals": [(start + interval * k, start + interval * (k + 1)) for k in range(count)],
        "run_ids": [],
        "ended_at": None,
        "final_status": None,
        "cancelled_at": None,
    }


def advance(
    backfill: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    now: datetime,
    start_run: StartRun,
    stop_on_failure: bool,
) -> None:
    """Start every run of ``backfill`` whose turn has come by ``now``, and end it when done.

    :param runs: every stored run by id.
    :param start_run: ``start_run(start, end, created_at)`` stores and returns a run of the backfill.
    :param stop_on_failure: end Failed at the first failed run (the ``backfill-fails`` switch).
    """
    while backfill["final_status"] is None and backfill["cancelled_at"] is None:
        done = [runs[run_id] for run_id in backfill["run_ids"]]
        next_start = backfill["created_at"]
        if done:
            ended = finished_at(done[-1], now)
            if ended is None:
                return  # the current run is still active (or hangs)
            if stop_on_failure and run_status(done[-1], now) in FAILED_STATUSES:
                backfill.update(final_status="Failed", ended_at=ended)
                return
            next_start = ended
        if len(done) == len(backfill["intervals"]):
            backfill.update(final_status="Completed", ended_at=next_start)
            return
        if next_start > now:
            return
        start, end = backfill["intervals"][len(done)]
        backfill["run_ids"].append(start_run(start, end, next_start)["id"])


def backfill_status(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> str:
    """Starting, Running, Completed, Failed or Cancelled (call :func:`advance` first)."""
    if backfill["cancelled_at"] is not None:
        return "Cancelled"
    if backfill["final_status"] is not None:
        return str(backfill["final_status"])
    if len(runs) <= 1 and all(run_status(run, now) == "Starting" for run in runs):
        return "Starting"
    return "Running"


def is_active(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> bool:
    """Whether the backfill is Starting or Running."""
    return backfill_status(backfill, runs, now) in ACTIVE_STATUSES


def serialize_backfill(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The backfill as the API returns it, with ``progress``."""
    status = backfill_status(backfill, runs, now)
    total = len(backfill["intervals"])
    finished = len([run for run in runs if run_status(run, now) not in ACTIVE_STATUSES])
    progress: dict[str, Any] | None
    if status in ("Failed", "Cancelled"):
        progress = None
    elif status == "Completed":
        progress = {"total_runs": total, "finished_runs": total, "progress": 1.0}
    else:
        progress = {"total_runs": total, "finished_runs": finished, "progress": finished / total}
    done = backfill["cancelled_at"] or backfill["ended_at"]
    return {
        "id": backfill["id"],
        "status": status,
        "start_at": iso(backfill["start_at"]),
        "end_at": iso(backfill["end_at"]),
        "created_at": iso(backfill["created_at"]),
        "finished_at": iso(done),
        "last_updated_at": iso(done or backfill["created_at"]),
        "total_records_count": sum(run["records"] for run in runs),
        "team": backfill["team_id"],
        "batch_export": backfill["batch_export_id"],
        "progress": progress,
    }
