"""``/_emulator/...`` endpoints: drive an emulator running in another process (the demo, CLI tests).

No authentication, no faults, not recorded in the request log. PostHog never uses this prefix.

- ``GET /_emulator/requests`` — the request log as a JSON list; ``DELETE`` clears it.
- ``POST /_emulator/faults`` — body with the arguments of ``faults.add``; ``DELETE`` clears them.
- ``POST /_emulator/reset`` — back to the seed state, no faults, empty request log.
- ``GET /_emulator/state`` — exports (paused flags, runs), dashboards, collaborators, pending faults.
- ``POST /_emulator/log_entries/{batch_export_id}`` — body: a list of log entries to add.
- ``POST /_emulator/run_outcome/{batch_export_id}`` — body with the arguments of ``set_run_outcome``
  (fail, hang, take longer, for the next ``times`` runs or from now on).
- ``GET /_emulator/switches`` — the older-build switches on, the log delay and seed, the backfill
  limit, and every switch available; ``POST`` — body with the arguments of ``state.set_switches``.
- ``POST /_emulator/shift_last_paused_at/{batch_export_id}`` — body ``{"seconds": n}``.
- ``POST /_emulator/backdate_pauses`` — body ``{"seconds": n, "batch_export_id": id or null}``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

from ..batch_exports.runs import run_status
from ..store.seed import SEED
from ..store.state import EmulatorState
from ..store.switches import OLD_BUILDS
from .calls import Response
from .errors import ApiError, method_not_allowed, not_found, parse_error, validation_error
from .faults import FaultInjector
from .fields import iso
from .request_log import RecordedRequest

PREFIX = "/_emulator/"


class Controlled(Protocol):
    """What the control endpoints drive: :class:`~.server.PostHogEmulator`."""

    state: EmulatorState
    faults: FaultInjector

    @property
    def requests(self) -> list[RecordedRequest]: ...

    def clear_requests(self) -> None: ...

    def reset(self) -> None: ...


def handle_control(
    emulator: Controlled, method: str, path: str, body: Any, body_error: str | None
) -> Response:
    """Answer one control request.

    :param emulator: the running emulator.
    :param method: HTTP method.
    :param path: request path (starting with ``/_emulator/``).
    :param body: the parsed JSON body, or None.
    :param body_error: the JSON parser's message when the body is not JSON.
    """
    parts = path.removeprefix(PREFIX).strip("/").split("/")
    try:
        if body_error is not None:
            raise parse_error(body_error)
        return _dispatch(emulator, method, parts, body)
    except ApiError as error:
        return Response(error.status, error.body())
    except (ValueError, TypeError, KeyError) as error:
        return Response(400, validation_error(f"{type(error).__name__}: {error}").body())


def _dispatch(emulator: Controlled, method: str, parts: list[str], body: Any) -> Response:
    resource, argument = parts[0], "/".join(parts[1:])
    if resource == "requests" and not argument:
        if method == "GET":
            return Response(200, [asdict(record) for record in emulator.requests])
        if method == "DELETE":
            emulator.clear_requests()
            return Response(204)
        raise method_not_allowed(method)
    if resource == "faults" and not argument:
        if method == "POST":
            fault = emulator.faults.add(**(body or {}))
            return Response(201, asdict(fault))
        if method == "DELETE":
            emulator.faults.clear()
            return Response(204)
        raise method_not_allowed(method)
    if resource == "reset" and not argument:
        _require(method, "POST")
        emulator.reset()
        return Response(204)
    if resource == "state" and not argument:
        _require(method, "GET")
        return Response(200, {**_summary(emulator.state), "faults": emulator.faults.pending()})
    if resource == "log_entries" and argument:
        _require(method, "POST")
        if not isinstance(body, list):
            raise validation_error("Expected a JSON list of log entries.")
        _known_export(emulator, argument)
        emulator.state.add_log_entries(argument, body)
        return Response(201, {"added": len(body)})
    if resource == "run_outcome" and argument:
        _require(method, "POST")
        _known_export(emulator, argument)
        emulator.state.set_run_outcome(argument, **(body or {}))
        return Response(204)
    if resource == "switches" and not argument:
        if method == "POST":
            emulator.state.set_switches(**(body or {}))
        elif method != "GET":
            raise method_not_allowed(method)
        return Response(200, {**emulator.state.switches.as_json(), "available": OLD_BUILDS})
    if resource == "shift_last_paused_at" and argument:
        _require(method, "POST")
        _known_export(emulator, argument)
        emulator.state.shift_last_paused_at(argument, float((body or {})["seconds"]))
        return Response(204)
    if resource == "backdate_pauses" and not argument:
        _require(method, "POST")
        emulator.state.backdate_pauses(**(body or {}))
        return Response(204)
    raise not_found()


def _require(method: str, expected: str) -> None:
    if method != expected:
        raise method_not_allowed(method)


def _known_export(emulator: Controlled, batch_export_id: str) -> None:
    if batch_export_id not in emulator.state.batch_exports:
        raise not_found(f"Unknown batch export {batch_export_id}.")


def _summary(state: EmulatorState) -> dict[str, Any]:
    """A compact JSON view of exports, dashboards and collaborators."""
    with state.lock:
        now = state.now()
        return {
            "project_id": SEED.project_id,
            "batch_exports": [
                {
                    "id": export["id"],
                    "team_id": export["team_id"],
                    "name": export["name"],
                    "type": export["destination"]["type"],
                    "paused": export["paused"],
                    "deleted": export["deleted"],
                    "last_paused_at": iso(export["last_paused_at"]),
                    "last_updated_at": iso(export["last_updated_at"]),
                    "log_entries": state.logs.count(export["id"]),
                    "runs": [
                        {"id": run["id"], "status": run_status(run, now)}
                        for run in state.runs_of(export["id"])
                    ],
                }
                for export in state.batch_exports.values()
            ],
            "dashboards": [
                {
                    "id": dashboard["id"],
                    "team_id": dashboard["team_id"],
                    "name": dashboard["name"],
                    "pinned": dashboard["pinned"],
                    "restriction_level": dashboard["restriction_level"],
                    "deleted": dashboard["deleted"],
                }
                for dashboard in state.dashboards.values()
            ],
            "collaborators": [
                {
                    "dashboard_id": record["dashboard_id"],
                    "user_uuid": record["user_uuid"],
                    "level": record["level"],
                }
                for record in state.collaborators
            ],
        }
