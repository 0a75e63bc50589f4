"""Endpoints below one batch export: ``logs``, ``runs`` and ``backfills`` (docs/posthog-api.md §6.3, §6.9).

The runs and backfills viewsets filter on the export id of the path and the team, not on an
existing, undeleted export: their lists answer an empty page for an unknown export (and keep
showing a deleted export's rows), their detail routes 404. A malformed export id fails the UUID
lookup in the lists and in a backfill's creation, an unhandled error: 500.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..store.log_store import LogQuery
from ..web.calls import Call, Response, cursor_page, limit_offset_page
from ..web.errors import not_found, server_error, validation_error
from ..web.fields import parse_datetime, parse_int
from . import backfills
from .export_views import create_backfill, get_export, too_many_backfills
from .queries import order, ordering_terms, run_query
from .runs import ACTIVE_STATUSES, cancel_run, run_status, serialize_run

_BACKFILL_ORDERING_FIELDS = ("created_at", "start_at")
# The query that ``create_backfill`` refuses to backfill from the start of the data.
_START_PLACEHOLDER = "{data_interval_start}"


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
    run = call.state.runs.get(call.params["run_id"])
    if run is None or run["batch_export_id"] != export["id"]:
        raise not_found()
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


def _export_id(call: Call) -> str:
    """The export id of the path, which the runs and backfills querysets filter on."""
    try:
        return str(uuid.UUID(call.params["export_id"]))
    except ValueError:
        raise server_error() from None  # Django's ValidationError for the UUID field, unhandled


def _team_runs(call: Call, export_id: str) -> list[dict[str, Any]]:
    """The runs of ``export_id`` if that export is in the call's team (deleted or not)."""
    export = call.state.batch_exports.get(export_id)
    if export is None or export["team_id"] != call.team["id"]:
        return []
    return call.state.runs_of(export_id)


def list_runs(call: Call) -> Response:
    """GET ``runs/``: cursor pages of 100, filtered and ordered by the query (:mod:`.run_query`)."""
    now = call.state.now()
    query = run_query(call, now)
    runs = [run for run in _team_runs(call, _export_id(call)) if query.matches(run, now)]
    runs = order(runs, query.ordering)
    page = cursor_page(call, runs, page_size=100)
    page["results"] = [serialize_run(run, now) for run in page["results"]]
    return Response(200, page)


def _get_run(call: Call) -> dict[str, Any]:
    """The run of the path, if the route's query (default: created in the last 7 days) keeps it."""
    now = call.state.now()
    query = run_query(call, now)
    run = call.state.runs.get(call.params["run_id"])
    export = call.state.batch_exports.get(call.params["export_id"])
    if (
        run is None
        or export is None
        or run["batch_export_id"] != export["id"]
        or export["team_id"] != call.team["id"]
        or not query.matches(run, now)
    ):
        raise not_found()
    return run


def retrieve_run(call: Call) -> Response:
    """GET ``runs/{run_id}/`` (404 outside the query's window)."""
    return Response(200, serialize_run(_get_run(call), call.state.now()))


def cancel_export_run(call: Call) -> Response:
    """POST ``runs/{run_id}/cancel/``: only a Starting or Running run can be cancelled."""
    run = _get_run(call)
    now = call.state.now()
    status = run_status(run, now)
    if status not in ACTIVE_STATUSES:
        raise validation_error(f"Cannot cancel a run that is in '{status}' status")
    cancel_run(run, call.state.logs, now)
    return Response(200, {"cancelled": True})


def retry_run(call: Call) -> Response:
    """POST ``runs/{run_id}/retry/``: a backfill of the run's interval; 201 with its *workflow* id.

    ``backfill_export`` returns ``<export id>-Backfill-<start>-<end>`` (UTC ``isoformat()``), and
    the backfill row gets a UUID of its own when the workflow creates it. No concurrency limit
    and no validation apply; a retry while that workflow still runs is a 500.
    """
    run = _get_run(call)
    export = call.state.batch_exports[run["batch_export_id"]]
    backfill = create_backfill(call, export, run["data_interval_start"], run["data_interval_end"])
    return Response(201, {"backfill_id": backfill["workflow_id"]})


def _team_backfills(call: Call, export_id: str) -> list[dict[str, Any]]:
    """The backfill rows (created by now) of ``export_id``, in the call's team."""
    now = call.state.now()
    return [
        backfill
        for backfill in call.state.backfills.values()
        if backfill["batch_export_id"] == export_id
        and backfill["team_id"] == call.team["id"]
        and backfills.is_visible(backfill, now)
    ]


def _get_backfill(call: Call) -> dict[str, Any]:
    rows = _team_backfills(call, call.params["export_id"])
    found = [backfill for backfill in rows if backfill["id"] == call.params["backfill_id"]]
    if not found:
        raise not_found()
    return found[0]


def _serialize(call: Call, backfill: dict[str, Any]) -> dict[str, Any]:
    runs = call.state.backfill_runs(backfill["id"])
    return backfills.serialize_backfill(backfill, runs, call.state.now())


def list_backfills(call: Call) -> Response:
    """GET ``backfills/``: cursor pages of 50, ``ordering`` ``created_at`` or ``start_at`` (``-`` for
    descending; default ``-created_at``), ties in id order (descending with a descending ordering)."""
    terms = ordering_terms(call, _BACKFILL_ORDERING_FIELDS, "-created_at")
    by_id = sorted(_team_backfills(call, _export_id(call)), key=lambda backfill: str(backfill["id"]))
    rows = order(by_id[::-1] if terms[0].startswith("-") else by_id, terms)
    page = cursor_page(call, rows, page_size=50)
    page["results"] = [_serialize(call, backfill) for backfill in page["results"]]
    return Response(200, page)


def retrieve_backfill(call: Call) -> Response:
    """GET ``backfills/{backfill_id}/``: 404 until the workflow has created the row."""
    return Response(200, _serialize(call, _get_backfill(call)))


def create_export_backfill(call: Call) -> Response:
    """POST ``backfills/`` ``{"start_at", "end_at"}``: 201 ``{"backfill_id"}`` at once, the row later.

    In ``create_backfill``'s order: the earliest-data flag, the team's limit of Starting/Running
    rows (429; rows not created yet do not count), the bounds (:func:`.backfills.parse_bound`),
    then, with both bounds, their order and a future ``end_at``. Without ``end_at`` only open-ended
    exports backfill; for the others ``backfill_export`` raises unhandled: 500.
    """
    state = call.state
    export = state.batch_exports.get(_export_id(call))
    if export is None or export["team_id"] != call.team["id"]:
        raise not_found("BatchExport not found.")  # deleted exports are found
    data = call.data()
    start_input, end_input = data.get("start_at"), data.get("end_at")
    if start_input is None:
        if "batch-export-earliest-backfill" not in call.team["flags"]:
            raise validation_error("Backfilling from the beginning of time is not enabled for this team.")
        if export["model"] == "hogql" and _START_PLACEHOLDER in (export["hogql_query"] or ""):
            raise validation_error(
                f"This query references {_START_PLACEHOLDER}, which is unavailable when backfilling from "
                f"the beginning of time. Provide 'start_at' or remove {_START_PLACEHOLDER} from the query."
            )
    limit = state.switches.max_concurrent_backfills
    if state.active_backfills(call.team["id"]) >= limit:
        raise too_many_backfills(limit)
    start = None if start_input is None else backfills.parse_bound(start_input, export)
    end = None if end_input is None else backfills.parse_bound(end_input, export)
    if end is None and export["destination"]["type"] not in backfills.OPEN_ENDED_TYPES:
        raise server_error()  # BatchExportWithNoEndNotAllowedError
    if start is not None and end is not None:
        if start >= end:
            raise validation_error("The initial backfill datetime 'start_at' must be before 'end_at'")
        if end > state.now():
            raise validation_error(f"The provided 'end_at' ({end.isoformat()}) is in the future")
    backfill_id = str(uuid.uuid4())
    create_backfill(call, export, start, end, backfill_id=backfill_id)
    return Response(201, {"backfill_id": backfill_id})


def cancel_backfill(call: Call) -> Response:
    """POST ``backfills/{backfill_id}/cancel/``: only a Starting or Running row; no more runs start.

    A terminated workflow cannot be cancelled: PostHog logs that and answers 200 all the same,
    and the row stays as it was.
    """
    backfill = _get_backfill(call)
    now = call.state.now()
    runs = call.state.backfill_runs(backfill["id"])
    status = backfills.backfill_status(backfill, runs, now)
    if status not in ACTIVE_STATUSES:
        raise validation_error(f"Cannot cancel a backfill that is in '{status}' status")
    if backfills.workflow_is_running(backfill):
        backfills.cancel(backfill, runs, call.state.logs, now)
    return Response(200, {"cancelled": True})
