"""Batch export runs and the log lines a run writes.

A run's status is a function of elapsed time: Starting, then Running, then its final status
(Completed, Failed, FailedRetryable) after its duration; a hanging run never finishes. When a run
starts, its whole log timeline is written with future timestamps (see :mod:`..store.log_store`),
so no background thread is needed.

Log entries carry the run's Temporal workflow run id as ``instance_id``, a UUID of its own that
nothing in the API links to the run's id (docs/posthog-api.md §6.3). Wording is today's
``finish_batch_export_run`` (§6.3), ranges printed as Python datetimes
(``2026-11-28 10:00:00+00:00``); ``Starting batch export ...`` is not visible in current builds:

- INFO ``Batch exporting range <start> - <end> to <Destination>: <target>`` (the insert activity),
- INFO ``Batch export for range <start> - <end> finished successfully with <N> records exported``
  (``no`` when the count is zero or unknown),
- ERROR ``Batch export for range <start> - <end> failed with a non-recoverable error: <error>``,
  then INFO ``Failure notification email for run '<run id>' has been sent``,
- ERROR ``Batch export for range <start> - <end> failed with an error that can be retried: <error>``,
- WARNING ``Batch export for range <start> - <end> was cancelled`` (when cancelled).

A run of an earliest-data backfill has no interval start: its range prints ``START`` and its
record count runs from the export's ``created_at``, where the emulated data begins (§6.9).
After a non-recoverable failure the export may be paused automatically; the two WARNING lines of
that are :func:`auto_pause_entries` (§6.9).
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
# A line written right after another one (the failure notification after the error line).
LINE_AFTER = timedelta(milliseconds=1)
DEFAULT_ERROR = (
    'OperationalError: connection to server at "db.internal.example" (10.0.0.12), port 5432 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)
RECORDS_PER_HOUR = 1000
# PostHog's text, including the missing space after "retries." (§6.9).
AUTO_PAUSED = (
    "Batch export was automatically paused due to exceeding failure threshold and exhausting "
    "all automated retries.The batch export can be unpaused after addressing any errors."
)
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
    start: datetime | None,
    end: datetime,
    outcome: RunOutcome,
    created_at: datetime,
    backfill_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Create a run of ``export`` over ``[start, end)`` and write its log timeline.

    :param logs: where the run's log entries go.
    :param export: the stored batch export.
    :param start: data interval start; None for the one run of an earliest-data backfill.
    :param end: data interval end.
    :param outcome: how and when the run ends.
    :param created_at: when the run starts (may be in the past for seeded history).
    :param backfill_id: the backfill this run belongs to, if any.
    :param run_id: a fixed id (seed data; its workflow run id is then fixed too); random otherwise.
    :returns: the stored run record.
    """
    hours = max((end - (start or export["created_at"])).total_seconds() / 3600, 1 / 60)
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
    """``<start> - <end>`` as PostHog's logger prints datetimes (``str()``), ``START`` when open."""
    return f"{run['data_interval_start'] or 'START'} - {run['data_interval_end']}"


def _entry(run: dict[str, Any], at: datetime, level: str, message: str) -> LogEntry:
    return LogEntry(run["batch_export_id"], run["workflow_run_id"], at, level, message)


def _timeline(run: dict[str, Any], export: dict[str, Any]) -> list[LogEntry]:
    destination = export["destination"]
    spec = DESTINATIONS[destination["type"]]
    start = run["data_interval_start"].isoformat() if run["data_interval_start"] else "START"
    target = spec.log_target(destination["config"], f"{start}-{run['data_interval_end'].isoformat()}")
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
                done + LINE_AFTER,
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


def ends_at(run: dict[str, Any]) -> datetime | None:
    """When the run reaches (or reached) its final status; None for a run that hangs."""
    if run["cancelled_at"] is not None:
        return run["cancelled_at"]
    if run["duration"] is None:
        return None
    return run["created_at"] + run["duration"]


def finished_at(run: dict[str, Any], now: datetime) -> datetime | None:
    """When the run reached a final status, or None while it is active at ``now``."""
    done = ends_at(run)
    return done if done is not None and done <= now else None


def last_updated_at(run: dict[str, Any], now: datetime) -> datetime:
    """The run row's ``last_updated_at`` at ``now``: saved when it starts, runs and finishes."""
    done = finished_at(run, now)
    if done is not None:
        return done
    running = run["created_at"] + run["running_after"]
    return running if running <= now else run["created_at"]


def auto_pause_entries(
    batch_export_id: str, instance_id: str, at: datetime, paused: bool, cancelled: int
) -> list[LogEntry]:
    """The WARNING lines of an automatic pause (``finish_batch_export_run``), wording as PostHog's.

    :param paused: the export was paused now (not already paused).
    :param cancelled: Running backfills cancelled with it; None of them, no second line.
    """
    entries = []
    if paused:
        entries.append(LogEntry(batch_export_id, instance_id, at, "WARNING", AUTO_PAUSED))
    if cancelled:
        plural = cancelled > 1
        entries.append(
            LogEntry(
                batch_export_id,
                instance_id,
                at + LINE_AFTER,
                "WARNING",
                f"{cancelled} ongoing batch export backfill{'s' if plural else ''} "
                f"{'were' if plural else 'was'} cancelled due to exceeding failure threshold "
                " and exhausting all automated retries."
                "The backfill can be triggered again after addressing any errors.",
            )
        )
    return entries


def cancel_run(run: dict[str, Any], logs: LogStore, now: datetime) -> None:
    """Cancel an active run: Cancelled, its remaining lines dropped, a WARNING line written."""
    run["cancelled_at"] = now
    logs.discard_after(run["batch_export_id"], run["workflow_run_id"], now)
    logs.add([_entry(run, now, "WARNING", f"Batch export for range {_range(run)} was cancelled")])


def serialize_run(run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The run as the API returns it (``BatchExportRunSerializer``, ``fields="__all__"``)."""
    status = run_status(run, now)
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
        "finished_at": iso(finished_at(run, now)),
        "last_updated_at": iso(last_updated_at(run, now)),
        "records_total_count": run["records"],
        "bytes_exported": run["records"] * 512 if completed else None,
        "batch_export": run["batch_export_id"],
        "batch_export_on_demand": None,
        "backfill": run["backfill_id"],
    }
