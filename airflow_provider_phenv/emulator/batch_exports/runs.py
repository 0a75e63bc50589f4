"""Batch export runs and the log lines a run writes.

A run's status is a function of elapsed time: Starting, then Running, then its final status
(Completed, Failed, FailedRetryable) after its duration; a hanging run never finishes. When a run
starts, its whole log timeline is written with future timestamps (see :mod:`..store.log_store`),
so no background thread is needed.

Log entries carry the run's Temporal workflow run id as ``instance_id``, a UUID of its own that
nothing in the API links to the run's id (docs/posthog-api.md §13.1). Wording is today's
``finish_batch_export_run`` (§6.3, §13.2), ranges printed as Python datetimes
(``2026-11-28 10:00:00+00:00``); ``Starting batch export ...`` is not visible in current builds:

- INFO ``Batch exporting range <start> - <end> to <Destination>: <target>`` (the insert activity),
- INFO ``Batch export for range <start> - <end> finished successfully with <N> records exported``
  (``no`` when the count is zero or unknown),
- ERROR ``Batch export for range <start> - <end> failed with a non-recoverable error: <error>``,
  then INFO ``Failure notification email for run '<run id>' has been sent``,
- ERROR ``Batch export for range <start> - <end> failed with an error that can be retried: <error>``,
- WARNING ``Batch export for range <start> - <end> was cancelled`` (when cancelled).
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
FAILED_STATUSES = ("Failed", "FailedRetryable")
#: Outcomes a run can be given, and the final status each ends in (a hanging run has none).
FINAL_STATUS = {"completed": "Completed", "failed": "Failed", "failed_retryable": "FailedRetryable"}
OUTCOMES = (*FINAL_STATUS, "hang")
# Fraction of the run's duration after which it is Running and logs its export line.
_RUNNING_AT = 0.4
# The failure notification follows the error line.
_NOTIFICATION_AFTER = timedelta(milliseconds=1)
DEFAULT_ERROR = (
    'OperationalError: connection to server at "db.internal.example" (10.0.0.12), port 5432 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)
RECORDS_PER_HOUR = 1000
_WORKFLOW_NAMESPACE = uuid.UUID("01900000-0000-7000-8000-00000000cafe")


@dataclass(frozen=True)
class RunOutcome:
    """How a run ends.

    :param outcome: ``"completed"``, ``"failed"`` (non-recoverable), ``"failed_retryable"`` or
        ``"hang"`` (Running for ever, until cancelled).
    :param duration: seconds from start to the final status and last log line (for ``hang``: the
        Running status comes after 40 % of it).
    :param error_message: the error of a failed run (a realistic Postgres error by default).
    :param records: records exported; None: 1000 per hour of data. 0 logs ``no records``.
    :param times: apply to the next ``times`` runs only (then the standing outcome applies);
        None makes it the export's standing outcome.
    """

    outcome: str = "completed"
    duration: float = 2.0
    error_message: str | None = None
    records: int | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")
        if self.duration < 0:
            raise ValueError("duration must not be negative")
        if self.records is not None and self.records < 0:
            raise ValueError("records must not be negative")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1")


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
    :param run_id: a fixed id (seed data; its workflow run id is then fixed too); random otherwise.
    :returns: the stored run record.
    """
    hours = max((end - start).total_seconds() / 3600, 1 / 60)
    duration = timedelta(seconds=outcome.duration)
    run_id = run_id or str(uuid.uuid4())
    failed = outcome.outcome in ("failed", "failed_retryable")
    run = {
        "id": run_id,
        "batch_export_id": export["id"],
        "workflow_run_id": str(uuid.uuid5(_WORKFLOW_NAMESPACE, run_id)),
        "created_at": created_at,
        "running_after": duration * _RUNNING_AT,
        "duration": None if outcome.outcome == "hang" else duration,
        "outcome": outcome.outcome,
        "error": (outcome.error_message or DEFAULT_ERROR) if failed else None,
        "records": round(hours * RECORDS_PER_HOUR) if outcome.records is None else outcome.records,
        "data_interval_start": start,
        "data_interval_end": end,
        "backfill_id": backfill_id,
        "cancelled_at": None,
    }
    logs.add(_timeline(run, export))
    return run


def _range(run: dict[str, Any]) -> str:
    """``<start> - <end>`` as PostHog's logger prints datetimes (``str()``)."""
    return f"{run['data_interval_start']} - {run['data_interval_end']}"


def _entry(run: dict[str, Any], at: datetime, level: str, message: str) -> LogEntry:
    return LogEntry(run["batch_export_id"], run["workflow_run_id"], at, level, message)


def _timeline(run: dict[str, Any], export: dict[str, Any]) -> list[LogEntry]:
    destination = export["destination"]
    spec = DESTINATIONS[destination["type"]]
    start, end = run["data_interval_start"].isoformat(), run["data_interval_end"].isoformat()
    target = spec.log_target(destination["config"], f"{start}-{end}")
    exporting = f"Batch exporting range {_range(run)} to {spec.log_name}"
    entries = [
        _entry(
            run,
            run["created_at"] + run["running_after"],
            "INFO",
            f"{exporting}: {target}" if target else exporting,
        )
    ]
    if run["duration"] is None:
        return entries
    done = run["created_at"] + run["duration"]
    prefix = f"Batch export for range {_range(run)}"
    if run["outcome"] == "failed":
        entries.append(
            _entry(run, done, "ERROR", f"{prefix} failed with a non-recoverable error: {run['error']}")
        )
        entries.append(
            _entry(
                run,
                done + _NOTIFICATION_AFTER,
                "INFO",
                f"Failure notification email for run '{run['id']}' has been sent",
            )
        )
    elif run["outcome"] == "failed_retryable":
        entries.append(
            _entry(run, done, "ERROR", f"{prefix} failed with an error that can be retried: {run['error']}")
        )
    else:
        count = run["records"] or "no"
        entries.append(
            _entry(run, done, "INFO", f"{prefix} finished successfully with {count} records exported")
        )
    return entries


def run_status(run: dict[str, Any], now: datetime) -> str:
    """The run's status at ``now``."""
    if run["cancelled_at"] is not None:
        return "Cancelled"
    elapsed = now - run["created_at"]
    if run["duration"] is not None and elapsed >= run["duration"]:
        return FINAL_STATUS[run["outcome"]]
    return "Running" if elapsed >= run["running_after"] else "Starting"


def finished_at(run: dict[str, Any], now: datetime) -> datetime | None:
    """When the run reached a final status, or None while it is active."""
    if run["cancelled_at"] is not None:
        return run["cancelled_at"]
    if run["duration"] is None:
        return None
    done = run["created_at"] + run["duration"]
    return done if done <= now else None


def cancel_run(run: dict[str, Any], logs: LogStore, now: datetime) -> None:
    """Cancel an active run: Cancelled, its remaining lines dropped, a WARNING line written."""
    run["cancelled_at"] = now
    logs.discard_after(run["batch_export_id"], run["workflow_run_id"], now)
    logs.add([_entry(run, now, "WARNING", f"Batch export for range {_range(run)} was cancelled")])


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
        "latest_error": run["error"] if status in FAILED_STATUSES else None,
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
