"""Batch export runs and backfills, and the log lines a run writes.

A run's status is a function of elapsed time: Starting, then Running, then Completed or Failed
after its duration. When a run starts, its whole log timeline is written with future timestamps
(see :mod:`..store.log_store`), so no background thread is needed.

Log wording is PostHog's own, from its batch export workflows
(``products/batch_exports/backend/temporal/``):

- ``Starting batch export for range %s - %s`` (``start_batch_export_run``),
- ``Batch exporting range %s - %s to <Destination>: <target>`` (each ``insert_into_*`` activity),
- ``Batch export for range %s - %s finished with %d records exported`` (the insert activities),
- ``Batch export failed with non-retryable error: %s`` (``finish_batch_export_run``, ERROR).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..store.log_store import LogEntry, LogStore
from ..web.fields import iso
from .destinations import DESTINATIONS

RUN_STATUSES = (
    "Cancelled",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "FailedRetryable",
    "FailedBilling",
    "Terminated",
    "TimedOut",
    "Running",
    "Starting",
)
ACTIVE_STATUSES = ("Starting", "Running")
# Fractions of the run's duration at which each phase begins.
_RUNNING_AT = 0.4
_STARTING_LOG_AT = 0.05
DEFAULT_ERROR = (
    'OperationalError: connection to server at "db.internal.example" (10.0.0.12), port 5432 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)
RECORDS_PER_HOUR = 1000


@dataclass(frozen=True)
class RunOutcome:
    """How the runs of one export end.

    :param outcome: ``"completed"`` or ``"failed"``.
    :param duration: seconds from start to the final status and last log line.
    :param error_message: the error of a failed run (a realistic Postgres error by default).
    """

    outcome: str = "completed"
    duration: float = 2.0
    error_message: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in ("completed", "failed"):
            raise ValueError(f"outcome must be 'completed' or 'failed', not {self.outcome!r}")
        if self.duration < 0:
            raise ValueError("duration must not be negative")


def start_run(
    logs: LogStore,
    export: dict[str, Any],
    *,
    start: datetime,
    end: datetime,
    outcome: RunOutcome,
    created_at: datetime,
    backfill_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Create a run of ``export`` over ``[start, end)`` and write its log timeline.

    :param logs: where the run's log entries go.
    :param export: the stored batch export.
    :param start: data interval start.
    :param end: data interval end.
    :param outcome: how and when the run ends.
    :param created_at: when the run starts (may be in the past for seeded history).
    :param backfill_id: the backfill this run belongs to, if any.
    :param run_id: a fixed id (seed data); a random UUID otherwise.
    :returns: the stored run record.
    """
    hours = max((end - start).total_seconds() / 3600, 1 / 60)
    run = {
        "id": run_id or str(uuid.uuid4()),
        "batch_export_id": export["id"],
        "created_at": created_at,
        "duration": timedelta(seconds=outcome.duration),
        "failed": outcome.outcome == "failed",
        "error": (outcome.error_message or DEFAULT_ERROR) if outcome.outcome == "failed" else None,
        "records": round(hours * RECORDS_PER_HOUR),
        "data_interval_start": start,
        "data_interval_end": end,
        "backfill_id": backfill_id,
        "cancelled_at": None,
    }
    logs.add(_timeline(run, export))
    return run


def _timeline(run: dict[str, Any], export: dict[str, Any]) -> list[LogEntry]:
    destination = export["destination"]
    spec = DESTINATIONS[destination["type"]]
    start, end = run["data_interval_start"].isoformat(), run["data_interval_end"].isoformat()
    target = spec.log_target(destination["config"], f"{start}-{end}")
    exporting = f"Batch exporting range {start} - {end} to {spec.log_name}"
    lines = [
        (_STARTING_LOG_AT, "INFO", f"Starting batch export for range {start} - {end}"),
        (_RUNNING_AT, "INFO", f"{exporting}: {target}" if target else exporting),
    ]
    if run["failed"]:
        lines.append((1.0, "ERROR", f"Batch export failed with non-retryable error: {run['error']}"))
    else:
        lines.append(
            (
                1.0,
                "INFO",
                f"Batch export for range {start} - {end} finished with {run['records']} records exported",
            )
        )
    return [
        LogEntry(export["id"], run["id"], run["created_at"] + run["duration"] * fraction, level, message)
        for fraction, level, message in lines
    ]


def run_status(run: dict[str, Any], now: datetime) -> str:
    """The run's status at ``now``."""
    if run["cancelled_at"] is not None:
        return "Cancelled"
    elapsed = now - run["created_at"]
    if elapsed >= run["duration"]:
        return "Failed" if run["failed"] else "Completed"
    return "Running" if elapsed >= run["duration"] * _RUNNING_AT else "Starting"


def finished_at(run: dict[str, Any], now: datetime) -> datetime | None:
    """When the run reached a final status, or None while it is active."""
    if run["cancelled_at"] is not None:
        return run["cancelled_at"]
    done = run["created_at"] + run["duration"]
    return done if done <= now else None


def cancel_run(run: dict[str, Any], logs: LogStore, now: datetime) -> None:
    """Cancel an active run: its status becomes Cancelled and its remaining log lines are dropped."""
    run["cancelled_at"] = now
    logs.discard_after(run["batch_export_id"], run["id"], now)


def serialize_run(run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The run as the API returns it (``BatchExportRunSerializer``, ``fields="__all__"``)."""
    status = run_status(run, now)
    done = finished_at(run, now)
    completed = status == "Completed"
    return {
        "id": run["id"],
        "status": status,
        "records_completed": run["records"] if completed else None,
        "records_failed": None,
        "latest_error": run["error"] if status == "Failed" else None,
        "data_interval_start": iso(run["data_interval_start"]),
        "data_interval_end": iso(run["data_interval_end"]),
        "cursor": None,
        "created_at": iso(run["created_at"]),
        "finished_at": iso(done),
        "last_updated_at": iso(done or run["created_at"]),
        "records_total_count": run["records"],
        "bytes_exported": run["records"] * 512 if completed else None,
        "batch_export": run["batch_export_id"],
        "batch_export_on_demand": None,
        "backfill": run["backfill_id"],
    }


def backfill_status(runs: list[dict[str, Any]], now: datetime) -> str:
    """A backfill's status from its runs (the run statuses without FailedBilling)."""
    statuses = [run_status(run, now) for run in runs]
    for status in ("Running", "Starting", "Failed", "Cancelled"):
        if status in statuses:
            return "Running" if status == "Starting" else status
    return "Completed"


def serialize_backfill(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The backfill as the API returns it, with ``progress``."""
    status = backfill_status(runs, now)
    finished = [run for run in runs if run_status(run, now) not in ACTIVE_STATUSES]
    ends = [end for end in (finished_at(run, now) for run in finished) if end is not None]
    done = max(ends) if status not in ACTIVE_STATUSES and ends and len(ends) == len(finished) else None
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
        "progress": {
            "total_runs": len(runs),
            "finished_runs": len(finished),
            "progress": len(finished) / len(runs) if runs else 1.0,
        },
    }
