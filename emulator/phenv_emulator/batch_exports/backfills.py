"""Backfills as today's backfill workflow runs them (docs/posthog-api.md §6.9).

Lifecycle. Starting a backfill starts a Temporal workflow, whose first activity creates the row:
``backfill_row_delay`` seconds later (its ``created_at``). Until then the backfill is neither listed
nor retrievable, and its first run starts when the row appears. Runs go one after another, each
when the previous one finished; the backfill goes on after a failed run and ends Completed. It ends
Failed only when the export's schedule is gone (or, with the ``backfill-fails`` switch, at its first
failed run). A terminated workflow (:func:`terminate`) never updates its row again, which stays
Starting or Running for good. :func:`due` and :func:`step` let the store replay that timeline.

Planning (``get_backfill_info``, ``backfill_range``). The emulated team has data at every moment,
so the workflow narrows a start inside an interval to that interval's start (``adjusted_start_at``,
``align_timestamp_to_interval``), then steps one interval at a time, in the export's timezone for
daily and weekly exports, and stops before a step that would pass ``end_at``. A run covers the
interval length before its step's end (``get_data_interval``). A backfill from the start of the
data (no ``start_at``) is one run without an interval start.

Status: Starting (until its first run is Running), Running, then Completed, Failed or Cancelled
(``BatchExportBackfill.Status`` has the run statuses' names but FailedBilling). ``progress``
follows ``BatchExportBackfillSerializer.get_progress``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..store.log_store import LogStore
from ..web.errors import validation_error
from ..web.fields import iso
from .runs import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    RECORDS_PER_HOUR,
    cancel_run,
    ends_at,
    run_status,
)

#: The export intervals and their lengths.
INTERVALS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "every 5 minutes": timedelta(minutes=5),
    "every 15 minutes": timedelta(minutes=15),
}
#: Week days as ``offset_day`` numbers them (0 = Sunday, Temporal's convention).
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
#: The destination types whose backfills may have no ``end_at`` (``backfill_export``).
OPEN_ENDED_TYPES = ("HTTP", "NoOp")
# Runs that count as finished in ``progress`` (``get_finished_runs``).
_FINISHED_RUN_STATUSES = ("Completed", "Failed")
StartRun = Callable[[datetime | None, datetime, datetime], dict[str, Any]]


def parse_bound(value: Any, export: dict[str, Any]) -> datetime:
    """A ``start_at``/``end_at`` as ``validate_date_input`` reads it; 400 (no ``attr``) otherwise.

    Daily and weekly exports take ISO dates, read at the export's ``offset_hour`` in its
    ``timezone`` (a weekly date must fall on its ``offset_day``); other exports take aware ISO
    datetimes.
    """
    if export["interval"] not in ("day", "week"):
        try:
            parsed = _datetime_from_iso(value)
        except (TypeError, ValueError):
            raise validation_error(f"Input {value} is not a valid ISO formatted datetime.") from None
        if parsed.tzinfo is None:
            raise validation_error(f"Input {value} is naive.")
        return parsed
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        raise validation_error(_not_a_date(value)) from None
    if export["interval"] == "week":
        expected = export["offset_day"] or 0
        if day.isoweekday() % 7 != expected:
            raise validation_error(
                f"Input {value} is not on the correct day of the week for this batch export. "
                f"{value} is a {WEEKDAYS[day.isoweekday() % 7]} but this batch export is configured "
                f"to run weekly on {WEEKDAYS[expected]}."
            )
    return datetime.combine(day, time(hour=export["offset_hour"] or 0)).replace(tzinfo=_zone(export))


def _not_a_date(value: Any) -> str:
    """The message for a daily or weekly bound that is no date, telling a datetime apart."""
    try:
        _datetime_from_iso(value)
    except (TypeError, ValueError):
        return f"Input '{value}' is not a valid ISO formatted date."
    return (
        f"Input '{value}' is not a valid ISO formatted date. "
        "Daily or weekly batch export backfills expect only the date component, but a time was included."
    )


def _datetime_from_iso(value: Any) -> datetime:
    """``datetime.fromisoformat`` as PostHog's Python (3.11+) reads a trailing ``Z``, on 3.10 too."""
    if isinstance(value, str) and value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def _zone(export: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(export["timezone"] or "UTC")


def workflow_id(batch_export_id: str, start: datetime | None, end: datetime | None) -> str:
    """``<export id>-Backfill-<start>-<end>``: UTC ``isoformat()``, ``START``/``END`` when open."""
    start_text = start.astimezone(timezone.utc).isoformat() if start else "START"
    end_text = end.astimezone(timezone.utc).isoformat() if end else "END"
    return f"{batch_export_id}-Backfill-{start_text}-{end_text}"


def align_to_interval(moment: datetime, export: dict[str, Any]) -> datetime:
    """The start of the export interval containing ``moment`` (``align_timestamp_to_interval``)."""
    interval = export["interval"]
    if interval not in ("day", "week"):
        seconds = INTERVALS[interval].total_seconds()
        return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, tz=timezone.utc)
    zone = _zone(export)
    local = moment.astimezone(zone)
    hour = export["offset_hour"] or 0
    if interval == "day":
        start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
        length = timedelta(days=1)
    else:
        since_week_start = ((local.weekday() + 1) % 7 - (export["offset_day"] or 0)) % 7
        start = datetime.combine(local.date() - timedelta(days=since_week_start), time(hour=hour), zone)
        length = timedelta(weeks=1)
    return (start - length if start > local else start).astimezone(timezone.utc)


def plan(
    export: dict[str, Any], start: datetime | None, end: datetime
) -> list[tuple[datetime | None, datetime]]:
    """The runs' data intervals, in order, for a backfill from ``start`` (already adjusted) to ``end``."""
    length = INTERVALS[export["interval"]]
    if start is None:
        return [(None, end)]
    # Daily and weekly steps are taken in local time, so a DST day lasts 23 or 25 hours.
    zone = _zone(export) if length >= timedelta(days=1) else timezone.utc
    step_end, last = start.astimezone(zone) + length, end.astimezone(zone)
    intervals: list[tuple[datetime | None, datetime]] = []
    while step_end <= last:
        run_end = step_end.astimezone(timezone.utc)
        intervals.append((run_end - length, run_end))
        step_end += length
    return intervals


def new_backfill(
    export: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
    *,
    requested_at: datetime,
    row_delay: float,
    backfill_id: str | None = None,
) -> dict[str, Any]:
    """A backfill of ``[start, end)`` started at ``requested_at``, its row due ``row_delay`` s later.

    :param start: None backfills from the start of the data.
    :param end: None (open-ended exports only) backfills up to when the row appears.
    :param backfill_id: the row's id (``create_backfill`` generates it up front; otherwise random).
    """
    created_at = requested_at + timedelta(seconds=row_delay)
    adjusted = start if start is None else _adjusted_start(export, start)
    data_start = adjusted or export["created_at"]
    hours = max(((end or created_at) - data_start).total_seconds(), 0) / 3600
    return {
        "id": backfill_id or str(uuid.uuid4()),
        "workflow_id": workflow_id(export["id"], start, end),
        "team_id": export["team_id"],
        "batch_export_id": export["id"],
        "start_at": start,
        "end_at": end,
        "adjusted_start_at": adjusted,
        "requested_at": requested_at,
        "created_at": created_at,
        "interval": INTERVALS[export["interval"]],
        "intervals": plan(export, adjusted, end or created_at),
        "estimated_records": round(hours * RECORDS_PER_HOUR),
        "run_ids": [],
        "ended_at": None,
        "final_status": None,
        "cancelled_at": None,
        "terminated_at": None,
    }


def _adjusted_start(export: dict[str, Any], start: datetime) -> datetime:
    """``get_backfill_info``: with data at every moment, the start of the interval holding ``start``."""
    aligned = align_to_interval(start, export)
    return start if aligned == start else aligned.astimezone(start.tzinfo)


def is_visible(backfill: dict[str, Any], now: datetime) -> bool:
    """Whether the workflow has created the row by ``now``."""
    return bool(backfill["created_at"] <= now)


def workflow_is_running(backfill: dict[str, Any]) -> bool:
    """Whether the backfill's Temporal workflow is still open (its id cannot be started again)."""
    return backfill["final_status"] is None and backfill["cancelled_at"] is None and not _terminated(backfill)


def _terminated(backfill: dict[str, Any]) -> bool:
    return backfill["terminated_at"] is not None


def due(backfill: dict[str, Any], runs: list[dict[str, Any]]) -> datetime | None:
    """When the backfill's next :func:`step` happens; None while a run is active or once it is over."""
    if not workflow_is_running(backfill):
        return None
    return ends_at(runs[-1]) if runs else backfill["created_at"]


def step(
    backfill: dict[str, Any],
    runs: list[dict[str, Any]],
    at: datetime,
    start_run: StartRun,
    *,
    schedule_exists: bool,
    stop_on_failure: bool,
) -> None:
    """Take the step :func:`due` announced for ``at``: start the next run, or end the backfill.

    :param runs: the backfill's runs so far, oldest first.
    :param start_run: ``start_run(start, end, created_at)`` stores and returns a run of the backfill.
    :param schedule_exists: whether the export's Temporal schedule is still there (else: Failed).
    :param stop_on_failure: end Failed at the first failed run (the ``backfill-fails`` switch).
    """
    remaining = len(backfill["intervals"]) - len(runs)
    if runs and stop_on_failure and run_status(runs[-1], at) in FAILED_STATUSES:
        backfill.update(final_status="Failed", ended_at=at)
    elif (remaining or not runs) and not schedule_exists:
        backfill.update(final_status="Failed", ended_at=at)  # TemporalScheduleNotFoundError
    elif not remaining:
        backfill.update(final_status="Completed", ended_at=at)
    else:
        start, end = backfill["intervals"][len(runs)]
        backfill["run_ids"].append(start_run(start, end, at)["id"])


def backfill_status(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> str:
    """Starting, Running, Completed, Failed or Cancelled (the store replays the timeline first)."""
    if _terminated(backfill):
        now = backfill["terminated_at"]  # the row keeps the status it had
    elif backfill["cancelled_at"] is not None:
        return "Cancelled"
    elif backfill["final_status"] is not None:
        return str(backfill["final_status"])
    started = [run for run in runs if run["created_at"] <= now]
    if len(started) <= 1 and all(run_status(run, now) == "Starting" for run in started):
        return "Starting"
    return "Running"


def is_active(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> bool:
    """Whether the backfill's row exists and is Starting or Running (what the 429 limit counts)."""
    return is_visible(backfill, now) and backfill_status(backfill, runs, now) in ACTIVE_STATUSES


def cancel(backfill: dict[str, Any], runs: list[dict[str, Any]], logs: LogStore, at: datetime) -> None:
    """Cancel the backfill and its active runs (``cancel_running_batch_export_backfill``)."""
    for run in runs:
        if run_status(run, at) in ACTIVE_STATUSES:
            cancel_run(run, logs, at)
    backfill["cancelled_at"] = at


def terminate(backfill: dict[str, Any], at: datetime) -> None:
    """Terminate the workflow: no further run starts and the row is never updated again."""
    backfill["terminated_at"] = at


def _running_since(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> datetime | None:
    """When the workflow saved the row as Running (with ``adjusted_start_at`` and the estimate)."""
    since = runs[0]["created_at"] + runs[0]["running_after"] if runs else backfill["ended_at"]
    stop = backfill["cancelled_at"] or backfill["terminated_at"] or now
    return since if since is not None and since <= stop else None


def serialize_backfill(backfill: dict[str, Any], runs: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The row as ``BatchExportBackfillSerializer`` returns it (``__all__`` fields plus ``progress``)."""
    status = backfill_status(backfill, runs, now)
    since = _running_since(backfill, runs, now)
    adjusted = backfill["adjusted_start_at"] if since else None
    finished = backfill["cancelled_at"] or backfill["ended_at"]
    completed = [run["records"] for run in runs if run_status(run, now) == "Completed"]
    records: int | None = None
    if since is not None:
        # Estimated when Running; the sum of Completed runs once over (the estimate if none).
        records = sum(completed) if finished and completed else backfill["estimated_records"]
    return {
        "id": backfill["id"],
        "progress": _progress(backfill, runs, status, adjusted, records, finished, now),
        "start_at": iso(backfill["start_at"]),
        "end_at": iso(backfill["end_at"]),
        "status": status,
        "created_at": iso(backfill["created_at"]),
        "finished_at": iso(finished),
        "last_updated_at": iso(finished or since or backfill["created_at"]),
        "total_records_count": records,
        "adjusted_start_at": iso(adjusted),
        "team": backfill["team_id"],
        "batch_export": backfill["batch_export_id"],
    }


def _progress(
    backfill: dict[str, Any],
    runs: list[dict[str, Any]],
    status: str,
    adjusted: datetime | None,
    records: int | None,
    finished: datetime | None,
    now: datetime,
) -> dict[str, Any] | None:
    """``get_progress``: totals from ``total_expected_runs``, finished runs are Completed or Failed."""
    total = _total_expected_runs(backfill, status, adjusted, records, finished, now)
    if status == "Completed":
        return {"total_runs": total, "finished_runs": total, "progress": 1.0}
    if status not in ACTIVE_STATUSES or not total or (backfill["start_at"] is None and adjusted is None):
        return None
    done = len([run for run in runs if run_status(run, now) in _FINISHED_RUN_STATUSES])
    total = max(total, done)
    return {"total_runs": total, "finished_runs": done, "progress": round(done / total, 1)}


def _total_expected_runs(
    backfill: dict[str, Any],
    status: str,
    adjusted: datetime | None,
    records: int | None,
    finished: datetime | None,
    now: datetime,
) -> int | None:
    """``BatchExportBackfill.total_expected_runs``: whole or partial intervals, rounded up."""
    start = adjusted or backfill["start_at"]
    if start is None:
        return 1  # everything in one run
    if records == 0:
        return 0
    end = backfill["end_at"] or finished or (now if status == "Running" else None)
    if end is None:
        return None
    return math.ceil((end - start) / backfill["interval"])
