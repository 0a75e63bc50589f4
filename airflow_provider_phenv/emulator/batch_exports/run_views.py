"""Endpoints below one batch export: ``logs``, ``runs`` and ``backfills`` (docs/posthog-api.md §6.3, §6.9)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from ..store.log_store import LogQuery
from ..web.calls import Call, Response, cursor_page, limit_offset_page
from ..web.errors import not_found, validation_error
from ..web.fields import DATETIME_FORMAT_ERROR, parse_choice, parse_datetime, parse_int
from .backfills import backfill_status, serialize_backfill
from .export_views import create_backfill, get_export
from .runs import ACTIVE_STATUSES, RUN_STATUSES, cancel_run, run_status, serialize_run

_RELATIVE_RE = re.compile(r"^-(\d+)([hdwmy])$")
# Hours per unit of a relative datetime (a month counts 30 days, a year 365).
_RELATIVE_HOURS = {"h": 1, "d": 24, "w": 7 * 24, "m": 30 * 24, "y": 365 * 24}
_RUN_ORDERINGS = ("-created_at", "created_at", "-data_interval_start", "data_interval_start")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def export_logs(call: Call) -> Response:
    """GET ``batch_exports/{id}/logs/``: newest first, at most ``limit`` (1-500, default 50).

    The export is looked up before the query is validated, as PostHog does. ``after`` and ``before``
    are exclusive; ``level`` is a comma list (a list field with ``level-list``: repeat it);
    ``search`` is a case-insensitive substring; ``instance_id`` a workflow run id (§6.3).
    """
    export = get_export(call)
    return Response(200, _logs_page(call, export["id"], call.arg("instance_id")))


def run_logs(call: Call) -> Response:
    """GET ``batch_exports/{id}/runs/{run_id}/logs/``: an empty page.

    PostHog's view filters on a ``run_id`` parent lookup that does not exist, and entries carry
    the workflow run id anyway (§6.3): nothing comes back for a run id.
    """
    export = get_export(call)
    _get_run(call, export)
    return Response(200, _logs_page(call, export["id"], "", validate_only=True))


def _levels(call: Call) -> frozenset[str] | None:
    """Newer builds split one value on commas; older ones (``level-list``) take each value whole."""
    if "level-list" in call.state.switches:
        values = [value.strip().upper() for value in call.query.get("level", [])]
    else:
        values = [level.strip().upper() for level in (call.arg("level") or "").split(",")]
    return frozenset(value for value in values if value) or None


def _logs_page(
    call: Call, export_id: str, instance_id: str | None, validate_only: bool = False
) -> dict[str, Any]:
    limit_arg = call.arg("limit")
    limit = 50 if limit_arg is None else parse_int(limit_arg, "limit", min_value=1, max_value=500)
    bounds = {key: parse_datetime(call.arg(key), key) for key in ("after", "before") if call.arg(key)}
    levels = _levels(call)
    query = LogQuery(
        limit=limit,
        after=bounds.get("after"),
        before=bounds.get("before"),
        levels=levels,
        search=call.arg("search") or None,
        instance_id=instance_id or None,
    )
    found = [] if validate_only else call.state.visible_logs(export_id, query)
    entries = [entry.as_json() for entry in found]
    # The page size is read from the same ``limit`` parameter, so ``next`` is always null.
    return limit_offset_page(call, entries)


def _get_run(call: Call, export: dict[str, Any]) -> dict[str, Any]:
    run = call.state.runs.get(call.params["run_id"])
    if run is None or run["batch_export_id"] != export["id"]:
        raise not_found()
    return run


def _moment(value: str | None, attr: str, now: datetime) -> datetime:
    """An ISO datetime or a relative one such as ``-7d`` or ``-24h`` (callers pass a value)."""
    assert value is not None
    match = _RELATIVE_RE.match(value.strip())
    if match:
        return now - timedelta(hours=int(match.group(1)) * _RELATIVE_HOURS[match.group(2)])
    if not value.strip():
        raise validation_error(DATETIME_FORMAT_ERROR, code="invalid", attr=attr)
    return parse_datetime(value, attr)


def list_runs(call: Call) -> Response:
    """GET ``runs/``: cursor pages of 100, ``status`` repeatable, last 7 days by default."""
    export = get_export(call)
    now = call.state.now()
    statuses = {parse_choice(status, RUN_STATUSES, "status") for status in call.query.get("status", [])}
    ordering = parse_choice(call.arg("ordering") or "-created_at", _RUN_ORDERINGS, "ordering")
    field = ordering.lstrip("-")
    if field == "created_at":
        low = _moment(call.arg("after") or "-7d", "after", now)
        high = _moment(call.arg("before"), "before", now) if call.arg("before") else now
    else:
        # Ordered by interval: ``start``/``end`` filter the data interval and after/before are ignored.
        low = (
            _moment(call.arg("start"), "start", now)
            if call.arg("start")
            else datetime.min.replace(tzinfo=now.tzinfo)
        )
        high = (
            _moment(call.arg("end"), "end", now)
            if call.arg("end")
            else datetime.max.replace(tzinfo=now.tzinfo)
        )
        field = "data_interval_start"
    runs = [
        run
        for run in call.state.runs_of(export["id"])
        if low <= run[field] <= high and (not statuses or run_status(run, now) in statuses)
    ]
    runs.sort(key=lambda run: run[field], reverse=ordering.startswith("-"))
    page = cursor_page(call, runs, page_size=100)
    page["results"] = [serialize_run(run, now) for run in page["results"]]
    return Response(200, page)


def retrieve_run(call: Call) -> Response:
    """GET ``runs/{run_id}/``."""
    return Response(200, serialize_run(_get_run(call, get_export(call)), call.state.now()))


def cancel_export_run(call: Call) -> Response:
    """POST ``runs/{run_id}/cancel/``: only a Starting or Running run can be cancelled."""
    run = _get_run(call, get_export(call))
    now = call.state.now()
    status = run_status(run, now)
    if status not in ACTIVE_STATUSES:
        raise validation_error(f"Cannot cancel a run that is in '{status}' status")
    cancel_run(run, call.state.logs, now)
    return Response(200, {"cancelled": True})


def retry_run(call: Call) -> Response:
    """POST ``runs/{run_id}/retry/``: backfills the run's interval again; 201 ``{"backfill_id"}``."""
    export = get_export(call)
    run = _get_run(call, export)
    backfill_id = create_backfill(call, export, run["data_interval_start"], run["data_interval_end"])
    return Response(201, {"backfill_id": backfill_id})


def _backfill_runs(call: Call, backfill_id: str) -> list[dict[str, Any]]:
    return call.state.backfill_runs(backfill_id)


def _get_backfill(call: Call, export: dict[str, Any]) -> dict[str, Any]:
    backfill = call.state.backfills.get(call.params["backfill_id"])
    if backfill is None or backfill["batch_export_id"] != export["id"]:
        raise not_found()
    return backfill


def list_backfills(call: Call) -> Response:
    """GET ``backfills/``: cursor pages of 50, newest first."""
    export = get_export(call)
    now = call.state.now()
    backfills = [b for b in call.state.backfills.values() if b["batch_export_id"] == export["id"]]
    backfills.sort(key=lambda backfill: backfill["created_at"], reverse=True)
    page = cursor_page(call, backfills, page_size=50)
    page["results"] = [serialize_backfill(b, _backfill_runs(call, b["id"]), now) for b in page["results"]]
    return Response(200, page)


def retrieve_backfill(call: Call) -> Response:
    """GET ``backfills/{backfill_id}/``."""
    backfill = _get_backfill(call, get_export(call))
    return Response(200, serialize_backfill(backfill, _backfill_runs(call, backfill["id"]), call.state.now()))


def _aware(value: Any, attr: str, dates_only: bool) -> datetime:
    """Backfill bounds carry a timezone (``Input X is naive.``); daily and weekly exports take dates.

    A bare date (``2024-01-01``) is midnight UTC. The wording of the dates-only error is not
    confirmed from PostHog's source.
    """
    text = str(value).strip()
    if dates_only and _DATE_RE.match(text):
        return parse_datetime(f"{text}T00:00:00+00:00", attr)
    parsed = parse_datetime(value, attr)
    if dates_only and (parsed.hour, parsed.minute, parsed.second, parsed.microsecond) != (0, 0, 0, 0):
        raise validation_error(
            f"Backfills of daily and weekly batch exports take dates only: '{attr}' is {value}."
        )
    if not (text.endswith(("Z", "z")) or re.search(r"[+-]\d{2}:?\d{2}$", text)):
        raise validation_error(f"Input {value} is naive.")
    return parsed


def create_export_backfill(call: Call) -> Response:
    """POST ``backfills/`` ``{"start_at", "end_at"}``: 201 ``{"backfill_id"}``; one run per interval.

    Too many running backfills in the team → 429 ``too_many_concurrent_backfills``.
    """
    export = get_export(call)
    data = call.data()
    now = call.state.now()
    dates_only = export["interval"] in ("day", "week")
    end_at = _aware(data["end_at"], "end_at", dates_only) if data.get("end_at") is not None else now
    if data.get("start_at") is None:
        if "batch-export-earliest-backfill" not in call.team["flags"]:
            raise validation_error("Backfilling from the beginning of time is not enabled for this team.")
        start_at = export["created_at"]
    else:
        start_at = _aware(data["start_at"], "start_at", dates_only)
    if start_at >= end_at:
        raise validation_error("The initial backfill datetime 'start_at' must be before 'end_at'")
    if end_at > now:
        raise validation_error(f"The provided 'end_at' ({data['end_at']}) is in the future")
    return Response(201, {"backfill_id": create_backfill(call, export, start_at, end_at)})


def cancel_backfill(call: Call) -> Response:
    """POST ``backfills/{backfill_id}/cancel/``: only a Starting or Running backfill; no more runs start."""
    backfill = _get_backfill(call, get_export(call))
    now = call.state.now()
    runs = _backfill_runs(call, backfill["id"])
    status = backfill_status(backfill, runs, now)
    if status not in ACTIVE_STATUSES:
        raise validation_error(f"Cannot cancel a backfill that is in '{status}' status")
    for run in runs:
        if run_status(run, now) in ACTIVE_STATUSES:
            cancel_run(run, call.state.logs, now)
    backfill["cancelled_at"] = now
    return Response(200, {"cancelled": True})
