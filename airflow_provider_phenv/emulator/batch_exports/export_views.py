"""Batch export endpoints: list/create/retrieve/update/delete, pause/unpause and destination tests.

Behaviour follows docs/posthog-api.md §5-§6 (the newest ``BatchExportViewSet``).
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from ..web.calls import Call, Response, limit_offset_page
from ..web.errors import ApiError, not_found, permission_denied, server_error, validation_error
from ..web.fields import iso, parse_bool, parse_choice, parse_datetime, parse_int, parse_str, required
from . import destination_tests, destinations
from .backfills import INTERVALS, workflow_id
from .runs import serialize_run

HIGH_FREQUENCY = ("every 5 minutes", "every 15 minutes")
MODELS = ("events", "persons", "sessions", "hogql")


def get_export(call: Call) -> dict[str, Any]:
    """The export named in the path, in the call's team and not deleted; otherwise 404."""
    export = call.state.batch_exports.get(call.params["export_id"])
    if export is None or export["deleted"] or export["team_id"] != call.team["id"]:
        raise not_found()
    return export


def serialize_export(call: Call, export: dict[str, Any]) -> dict[str, Any]:
    """The export as ``BatchExportSerializer`` returns it: secrets stripped, latest 10 runs."""
    now = call.state.now()
    return {
        "id": export["id"],
        "team_id": export["team_id"],
        "name": export["name"],
        "model": export["model"],
        "destination": destinations.public_destination(export["destination"]),
        "interval": export["interval"],
        "paused": export["paused"],
        "created_at": iso(export["created_at"]),
        "last_updated_at": iso(export["last_updated_at"]),
        "last_paused_at": iso(export["last_paused_at"]),
        "start_at": iso(export["start_at"]),
        "end_at": iso(export["end_at"]),
        "latest_runs": [serialize_run(run, now) for run in call.state.runs_of(export["id"])[:10]],
        "hogql_query": export["hogql_query"],
        "hogql_modifiers": None,
        "primary_key": None,
        "version_key": None,
        "incremental_mode": None,
        "schema": None,
        "filters": export["filters"],
        "timezone": export["timezone"],
        "offset_day": export["offset_day"],
        "offset_hour": export["offset_hour"],
    }


def _validate(
    call: Call, data: dict[str, Any], existing: dict[str, Any] | None, partial: bool
) -> dict[str, Any]:
    """Validate a create/update payload in the serializer's field order; returns the given fields.

    :param existing: the stored export when updating or re-testing (destination merge rules apply).
    :param partial: PATCH semantics: nothing is required.
    """
    flags = call.team["flags"]
    values: dict[str, Any] = {}
    if not partial and "name" not in data:
        raise required("name")
    if "name" in data:
        values["name"] = parse_str(data["name"], "name", allow_blank=False)
    if "model" in data:
        values["model"] = parse_choice(data["model"], MODELS, "model")
        if values["model"] == "hogql" and "hogql-batch-exports" not in flags:
            raise permission_denied("HogQL batch exports are not enabled for this team.")
    if not partial and "destination" not in data:
        raise required("destination")
    if "destination" in data:
        integration_ids = {
            i["id"] for i in call.state.integrations.values() if i["team_id"] == call.team["id"]
        }
        values["destination"] = destinations.validate_destination(
            data["destination"],
            existing=existing["destination"] if existing else None,
            integration_ids=integration_ids,
            flags=flags,
        )
    if not partial and "interval" not in data:
        raise required("interval")
    interval = existing["interval"] if existing else None
    if "interval" in data:
        interval = values["interval"] = parse_choice(data["interval"], INTERVALS, "interval")
        if interval in HIGH_FREQUENCY and "high-frequency-batch-exports" not in flags:
            raise permission_denied("Higher frequency batch exports are not enabled for this team.")
    if "paused" in data:
        values["paused"] = parse_bool(data["paused"], "paused")
    for key in ("start_at", "end_at"):
        if data.get(key) is not None:
            values[key] = parse_datetime(data[key], key)
    if "hogql_query" in data:
        values["hogql_query"] = parse_str(data["hogql_query"], "hogql_query", allow_null=True)
    if "filters" in data:
        values["filters"] = data["filters"]
    if "timezone" in data:
        values["timezone"] = _timezone(data["timezone"])
    _validate_offsets(data, interval, values)
    model = values.get("model", existing["model"] if existing else "events")
    kind = values.get("destination", existing["destination"] if existing else {}).get("type")
    if kind == "HTTP" and model != "events":
        raise validation_error("HTTP batch exports only support the events model")
    return values


def _timezone(value: Any) -> str:
    if value is None or value == "UTC":
        return "UTC"
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise validation_error(
            f'"{value}" is not a valid choice.', code="invalid_choice", attr="timezone"
        ) from None
    return str(value)


def _validate_offsets(data: dict[str, Any], interval: str | None, values: dict[str, Any]) -> None:
    """``offset_day`` (0-6, weekly only) and ``offset_hour`` (0-23, daily or weekly only)."""
    if data.get("offset_day") is not None:
        values["offset_day"] = parse_int(data["offset_day"], "offset_day", min_value=0, max_value=6)
        if interval != "week":
            raise validation_error("offset_day is not applicable for non-weekly intervals")
    if data.get("offset_hour") is not None:
        values["offset_hour"] = parse_int(data["offset_hour"], "offset_hour", min_value=0, max_value=23)
        if interval not in ("day", "week"):
            # Wording not confirmed from PostHog's source; it mirrors the offset_day message.
            raise validation_error("offset_hour is not applicable for non-daily or non-weekly intervals")


def list_batch_exports(call: Call) -> Response:
    """GET ``batch_exports/``: the team's exports, newest first, without deleted or Workflows ones."""
    exports = [
        export
        for export in call.state.batch_exports.values()
        if export["team_id"] == call.team["id"]
        and not export["deleted"]
        and export["destination"]["type"] != "Workflows"
    ]
    exports.sort(key=lambda export: export["created_at"], reverse=True)
    page = limit_offset_page(call, exports)
    page["results"] = [serialize_export(call, export) for export in page["results"]]
    return Response(200, page)


def create_batch_export(call: Call) -> Response:
    """POST ``batch_exports/``: 201 with the new export."""
    values = _validate(call, call.data(), existing=None, partial=False)
    export = call.state.add_batch_export(
        values.pop("name"),
        values.pop("destination"),
        interval=values.pop("interval"),
        team_id=call.team["id"],
        **values,
    )
    return Response(201, serialize_export(call, export))


def retrieve_batch_export(call: Call) -> Response:
    """GET ``batch_exports/{id}/``."""
    return Response(200, serialize_export(call, get_export(call)))


def update_batch_export(call: Call) -> Response:
    """PATCH/PUT ``batch_exports/{id}/``: the destination type cannot change; config keys merge."""
    export = get_export(call)
    values = _validate(call, call.data(), existing=export, partial=call.method == "PATCH")
    export.update(values, last_updated_at=call.state.now())
    return Response(200, serialize_export(call, export))


def delete_batch_export(call: Call) -> Response:
    """DELETE ``batch_exports/{id}/``: soft delete (also pauses), 204."""
    export = get_export(call)
    export.update(deleted=True, paused=True, last_updated_at=call.state.now())
    return Response(204)


def pause_batch_export(call: Call) -> Response:
    """POST ``pause/``: 200 ``{"paused": true}``; a no-op (nothing changes) when already paused."""
    export = get_export(call)
    if not export["paused"]:
        if export["schedule_missing"]:
            raise validation_error("Invalid request to pause a BatchExport could not be carried out")
        now = call.state.now()
        export.update(
            paused=True, last_paused_at=call.state.paused_at(export["id"], now), last_updated_at=now
        )
    return Response(200, {"paused": True})


def unpause_batch_export(call: Call) -> Response:
    """POST ``unpause/`` with optional ``{"backfill": bool}``: 200 ``{"paused": false}`` (docs §6.5).

    The body is validated before the export is looked up. ``paused=False`` is saved first, so a
    retry after a lost answer is a no-op and starts nothing. With ``backfill`` true, a backfill
    from ``last_paused_at`` to the saved ``last_updated_at`` starts then (``backfill_export``
    directly: no concurrency limit); never paused, it backfills from the start of the data (the
    ``unpause-null-500`` build fails with 500 instead). Its row comes late, like every backfill's;
    the answer carries no backfill id.
    """
    data = call.data()
    if "backfill" in data and data["backfill"] is None:
        raise validation_error("This field may not be null.", code="null", attr="backfill")
    backfill = parse_bool(data.get("backfill", False), "backfill")
    export = get_export(call)
    if export["paused"]:
        if export["schedule_missing"]:
            raise validation_error("Invalid request to unpause a BatchExport could not be carried out")
        now = call.state.now()
        export.update(paused=False, last_updated_at=now)
        if backfill:
            if export["last_paused_at"] is None and "unpause-null-500" in call.state.switches:
                raise server_error()  # that build's TypeError, after the commit
            create_backfill(call, export, export["last_paused_at"], now)
    return Response(200, {"paused": False})


def too_many_backfills(limit: int) -> ApiError:
    """PostHog's ``TooManyConcurrentBackfills``: a 429 of type ``server_error``, no ``Retry-After``."""
    return ApiError(
        429,
        "server_error",
        "too_many_concurrent_backfills",
        f"This team already has {limit} batch export backfills running. "
        "Wait for some to finish or cancel them before creating more.",
    )


def create_backfill(
    call: Call,
    export: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
    *,
    backfill_id: str | None = None,
) -> dict[str, Any]:
    """``service.backfill_export``: start the backfill workflow and return the stored backfill.

    Its workflow id is ``<export id>-Backfill-<start>-<end>``; while a workflow of that id is still
    open Temporal refuses to start another, an unhandled error: 500 (docs §6.9).
    """
    if call.state.backfill_workflow_running(workflow_id(export["id"], start, end)):
        raise server_error()
    return call.state.start_backfill(export["id"], start, end, backfill_id=backfill_id)


def destination_test_steps(call: Call) -> Response:
    """GET ``batch_exports/test/?destination=<Type>``: the steps; bare 400/404 without an envelope."""
    kind = call.arg("destination")
    if not kind:
        return Response(400)
    steps = destination_tests.describe_test_steps(kind)
    if not steps:
        return Response(404)
    return Response(200, {"steps": steps})


def run_test_step(call: Call) -> Response:
    """POST ``batch_exports/{id}/run_test_step/``: the body's config is merged over the stored one."""
    export = get_export(call)
    data = call.data()
    step = parse_int(data.get("step", 0), "step")
    if "destination" not in data:
        # PostHog reads request.data["destination"] unguarded: a KeyError, so a 500.
        raise server_error()
    values = _validate(call, data, existing=export, partial=False)
    return Response(200, _run_step(call, values["destination"], step))


def run_test_step_new(call: Call) -> Response:
    """POST ``batch_exports/run_test_step_new/``: full create validation, then one step."""
    data = call.data()
    step = parse_int(data.get("step", 0), "step")
    values = _validate(call, data, existing=None, partial=False)
    return Response(200, _run_step(call, values["destination"], step))


def _run_step(call: Call, destination: dict[str, Any], step: int) -> dict[str, Any]:
    integration = call.state.integrations.get(destination.get("integration") or -1) or {}
    return destination_tests.run_test_step(destination, step, role_arn=integration.get("role_arn"))
