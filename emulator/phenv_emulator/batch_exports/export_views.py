"""Batch export endpoints: list/create/retrieve/update/delete, pause/unpause and destination tests.

Behaviour follows docs/posthog-api.md §5-§6 (the newest ``BatchExportViewSet``).
"""

from __future__ import annotations

import contextlib
import zoneinfo
from collections.abc import Iterator
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
FILTER_TYPES = frozenset({"event", "person", "hogql"})


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
        **dict(zip(("offset_day", "offset_hour"), _shown_offsets(export), strict=True)),
    }


def _validate(
    call: Call,
    data: dict[str, Any],
    instance: dict[str, Any] | None,
    partial: bool,
    tested: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``BatchExportSerializer``: its fields in ``Meta.fields`` order, then ``validate()``.

    DRF validates every field and reports the first error in field order; a 403 raised inside a
    field validator (a missing feature flag) is not a ValidationError and escapes at once.

    :param instance: the stored export when updating (PATCH/PUT).
    :param partial: PATCH semantics: nothing is required.
    :param tested: the stored export whose destination ``run_test_step`` re-tests; PostHog
        validates that payload without an instance, except for the destination.
    :returns: the validated fields, ``offset_day``/``offset_hour`` as stored (see :func:`_schedule`).
    """
    flags = call.team["flags"]
    errors = _FieldErrors()
    values: dict[str, Any] = {}
    with errors.field():
        if "name" in data:
            values["name"] = parse_str(data["name"], "name", allow_blank=False)
        elif not partial:
            raise required("name")
    with errors.field():
        if "model" in data:
            values["model"] = parse_choice(data["model"], MODELS, "model")
            if values["model"] == "hogql" and "hogql-batch-exports" not in flags:
                raise permission_denied("HogQL batch exports are not enabled for this team.")
            if instance is not None and values["model"] != instance["model"]:
                raise validation_error(
                    "Changing models is not supported. Create a new batch export instead.", attr="model"
                )
    with errors.field():
        if "destination" in data:
            existing = tested or instance
            values["destination"] = destinations.validate_destination(
                data["destination"],
                existing=existing["destination"] if existing else None,
                integrations={
                    i["id"]: i for i in call.state.integrations.values() if i["team_id"] == call.team["id"]
                },
                flags=flags,
                partial=partial,
            )
        elif not partial:
            raise required("destination")
    with errors.field():
        if "interval" in data:
            if data["interval"] is None:
                raise validation_error("This field may not be null.", code="null", attr="interval")
            values["interval"] = parse_choice(data["interval"], INTERVALS, "interval")
            if values["interval"] in HIGH_FREQUENCY and "high-frequency-batch-exports" not in flags:
                raise permission_denied("Higher frequency batch exports are not enabled for this team.")
        elif not partial:
            raise required("interval")
    with errors.field():
        if "paused" in data:
            values["paused"] = parse_bool(data["paused"], "paused")
    for key in ("start_at", "end_at"):
        with errors.field():
            if key in data:
                values[key] = None if data[key] is None else parse_datetime(data[key], key)
    with errors.field():
        if "hogql_query" in data:
            values["hogql_query"] = parse_str(data["hogql_query"], "hogql_query", allow_null=True)
    with errors.field():
        if "filters" in data:
            values["filters"] = _filters(data["filters"])
    with errors.field():
        if "timezone" in data:
            values["timezone"] = _timezone(data["timezone"])
    # validate_offset_day/validate_offset_hour read the interval from the request, else the export.
    interval = data.get("interval") or (instance["interval"] if instance else None)
    offsets: dict[str, int | None] = {}
    for key, maximum, applies_to, refusal in (
        ("offset_day", 6, ("week",), "offset_day is not applicable for non-weekly intervals"),
        ("offset_hour", 23, ("day", "week"), "offset_hour is not applicable for non-daily/weekly intervals"),
    ):
        with errors.field():
            if key in data:
                offsets[key] = (
                    None if data[key] is None else parse_int(data[key], key, min_value=0, max_value=maximum)
                )
                if offsets[key] is not None and interval not in applies_to:
                    raise validation_error(refusal, attr=key)
    errors.raise_first()
    # validate(): only once every field is valid.
    if "interval" in values:
        values.update(_schedule(values["interval"], offsets, partial))
    elif offsets:
        # No interval in a PATCH: PostHog's serializer ignores the offsets (INFERRED); they apply
        # to the stored interval here.
        values.update(_schedule(instance["interval"] if instance else "hour", offsets, partial=True))
    model = instance["model"] if instance is not None else values.get("model", "events")
    kind = values.get("destination", instance["destination"] if instance else {}).get("type")
    if kind == "HTTP" and model != "events":
        raise validation_error("HTTP batch exports only support the events model")
    if values.get("filters") is not None and model != "events":
        raise validation_error(
            f"'filters' is only supported for 'events' not '{model}' model", attr="filters"
        )
    if model == "hogql" and values.get("hogql_query", instance["hogql_query"] if instance else None) is None:
        raise validation_error("'hogql_query' is required when 'model' is 'hogql'", attr="hogql_query")
    return values


class _FieldErrors:
    """Collects the first 400 of a serializer's fields; anything else escapes at once."""

    def __init__(self) -> None:
        self.first: ApiError | None = None

    @contextlib.contextmanager
    def field(self) -> Iterator[None]:
        try:
            yield
        except ApiError as error:
            if error.status != 400:
                raise
            self.first = self.first or error

    def raise_first(self) -> None:
        if self.first is not None:
            raise self.first


def _schedule(interval: str, offsets: dict[str, int | None], partial: bool) -> dict[str, Any]:
    """``_validate_interval_offset``: the offsets the export keeps for its interval.

    Stored as PostHog's ``interval_offset`` would decompose: daily exports keep an hour, weekly ones
    a day and an hour (either given resets the other to 0), other intervals none. A PATCH that
    names neither offset keeps the stored ones.
    """
    if interval == "day":
        if "offset_hour" in offsets:
            return {"offset_day": None, "offset_hour": offsets["offset_hour"]}
        return {} if partial else {"offset_day": None, "offset_hour": None}
    if interval == "week":
        if offsets:
            return {
                "offset_day": offsets.get("offset_day") or 0,
                "offset_hour": offsets.get("offset_hour") or 0,
            }
        return {} if partial else {"offset_day": None, "offset_hour": None}
    return {"offset_day": None, "offset_hour": None}


def _shown_offsets(export: dict[str, Any]) -> tuple[int | None, int | None]:
    """``BatchExport.offset_day``/``offset_hour``: 0 when unset on the intervals that use them."""
    if export["interval"] == "week":
        return export["offset_day"] or 0, export["offset_hour"] or 0
    if export["interval"] == "day":
        return None, export["offset_hour"] or 0
    return None, None


def _filters(value: Any) -> Any:
    """``validate_batch_export_filters`` (``products/batch_exports/backend/filters.py``)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise validation_error("'filters' should be an array of filters", attr="filters")
    for item in value:
        if not isinstance(item, dict):
            raise validation_error("Each filter must be an object", attr="filters")
        if "data_interval_start" in item or "data_interval_end" in item:
            raise validation_error(
                "'data_interval_start' and 'data_interval_end' are run attributes and not 'filters'. "
                "Trigger a backfill if you wish to manually control which periods to batch export.",
                attr="filters",
            )
        if item.get("type") not in FILTER_TYPES:
            raise validation_error(
                "Each filter must have a 'type' of one of: "
                + ", ".join(repr(t) for t in sorted(FILTER_TYPES)),
                attr="filters",
            )
    return value


def _timezone(value: Any) -> str:
    """A pytz name (``ChoiceField(TIMEZONES)``); null means UTC."""
    if value is None or value == "UTC":
        return "UTC"
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise validation_error(
            f'"{value}" is not a valid choice.', code="invalid_choice", attr="timezone"
        ) from None
    return str(value)


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
    values = _validate(call, call.data(), instance=None, partial=False)
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
    values = _validate(call, call.data(), instance=export, partial=call.method == "PATCH")
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
    """POST ``batch_exports/{id}/run_test_step/``: the stored config, without keys the destination no
    longer declares, is merged under the body's, and the result validated as a new export's body."""
    export = get_export(call)
    data = call.data()
    step = parse_int(data.get("step", 0), "step")
    destination = data.get("destination")
    if not isinstance(destination, dict) or not isinstance(destination.get("config"), dict):
        # PostHog reads request.data["destination"]["config"] unguarded: a KeyError, so a 500.
        raise server_error()
    stored = destinations.stored_config_for_test(export["destination"])
    data = {**data, "destination": {**destination, "config": {**stored, **destination["config"]}}}
    values = _validate(call, data, instance=None, partial=False, tested=export)
    return Response(200, _run_step(call, values["destination"], step))


def run_test_step_new(call: Call) -> Response:
    """POST ``batch_exports/run_test_step_new/``: full create validation, then one step."""
    data = call.data()
    step = parse_int(data.get("step", 0), "step")
    values = _validate(call, data, instance=None, partial=False)
    return Response(200, _run_step(call, values["destination"], step))


def _run_step(call: Call, destination: dict[str, Any], step: int) -> dict[str, Any]:
    integration = call.state.integrations.get(destination.get("integration") or -1) or {}
    return destination_tests.run_test_step(destination, step, role_arn=integration.get("role_arn"))
