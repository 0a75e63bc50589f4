"""``/_emulator/...`` endpoints: drive an emulator running in another process (the demo, CLI tests).

No authentication, no faults, not recorded in the request log. PostHog never uses this prefix.

- ``GET /_emulator/requests`` — the request log as a JSON list; ``DELETE`` clears it.
- ``POST /_emulator/faults`` — body with the arguments of ``faults.add``; ``DELETE`` clears them.
- ``POST /_emulator/reset`` — back to the seed state, no faults, empty request log.
- ``GET /_emulator/state`` — exports (paused flags, runs), dashboards, collaborators, users (with
  their access to the seeded project), pending faults.

A body that does not fit (not an object, an unknown or missing field, a wrong type) is answered
with 400 ``validation_error`` naming the field, as PostHog would, never with a Python error.
- ``POST /_emulator/log_entries/{batch_export_id}`` — body: a list of log entries to add.
- ``POST /_emulator/run_outcome/{batch_export_id}`` — body with the arguments of ``set_run_outcome``
  (fail, hang, take longer, for the next ``times`` runs or from now on).
- ``GET /_emulator/switches`` — the older-build switches on, the log delay and seed, the backfill
  limit and row delay, the auto-pause threshold, and every switch available; ``POST`` — body with
  the arguments of ``state.set_switches`` (e.g. ``{"backfill_row_delay": 0}``).
- ``POST /_emulator/shift_last_paused_at/{batch_export_id}`` — body ``{"seconds": n}``.
- ``POST /_emulator/backdate_pauses`` — body ``{"seconds": n, "batch_export_id": id or null}``.
- ``POST /_emulator/terminate_backfill/{backfill_id}`` — no body: the backfill's workflow is
  terminated, its row stays Starting or Running for good (``state.terminate_backfill``).
- ``POST /_emulator/auto_pause/{batch_export_id}`` — no body: pause the export now as the failure
  threshold does (``state.auto_pause``).
- ``POST /_emulator/membership`` — body ``{"level": 1|8|15, "user_uuid"?, "organization_id"?}``:
  change a member's level (default: the seeded key owner in the seeded organization), e.g.
  ``{"level": 1}`` makes the seeded key a plain member's (``state.set_membership_level``).
- ``POST /_emulator/members`` — body ``{"count": n, "level"?, "organization_id"?}``: add ``n`` new
  users as members (``state.add_members``), so the members list has pages; 201 with
  ``{"members": [{"id", "user_uuid", "email"}]}``.
- ``POST /_emulator/product_features`` — body ``{"features": [...], "organization_id"?}``: exactly
  these ``available_product_features`` keys (``access_control``, ``role_based_access``;
  ``state.set_product_features``); 200 with the organization's features as the API shows them.
  The ``no-access-control`` switch takes ``access_control`` away whatever this says.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
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
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        return Response(400, validation_error(f"Invalid control request: {text}").body())


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
            fault = emulator.faults.add(**_arguments(body, emulator.faults.add, "a fault"))
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
        emulator.state.set_run_outcome(
            argument, **_arguments(body, emulator.state.set_run_outcome, "a run outcome", skip=1)
        )
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
    if resource == "terminate_backfill" and argument:
        _require(method, "POST")
        if argument not in emulator.state.backfills:
            raise not_found(f"Unknown backfill {argument}.")
        emulator.state.terminate_backfill(argument)
        return Response(204)
    if resource == "auto_pause" and argument:
        _require(method, "POST")
        _known_export(emulator, argument)
        emulator.state.auto_pause(argument)
        return Response(204)
    if resource == "membership" and not argument:
        _require(method, "POST")
        emulator.state.set_membership_level(
            **_arguments(body, emulator.state.set_membership_level, "a membership")
        )
        return Response(204)
    if resource == "members" and not argument:
        _require(method, "POST")
        added = emulator.state.add_members(**_arguments(body, emulator.state.add_members, "new members"))
        return Response(
            201,
            {
                "members": [
                    {
                        "id": membership["id"],
                        "user_uuid": membership["user_uuid"],
                        "email": emulator.state.users[membership["user_uuid"]]["email"],
                    }
                    for membership in added
                ]
            },
        )
    if resource == "product_features" and not argument:
        _require(method, "POST")
        arguments = _arguments(body, emulator.state.set_product_features, "product features")
        emulator.state.set_product_features(**arguments)
        organization_id = arguments.get("organization_id", SEED.organization_id)
        return Response(200, {"features": emulator.state.product_features(organization_id)})
    raise not_found()


def _arguments(body: Any, function: Callable[..., Any], what: str, *, skip: int = 0) -> dict[str, Any]:
    """
    The keyword arguments a control body gives ``function``, checked against its signature.

    :param body: the parsed JSON body (``None`` for none).
    :param function: what the arguments are for (``faults.add``...).
    :param what: how messages name the body.
    :param skip: leading parameters the URL provides, not the body.
    """
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    names = [parameter.name for parameter in parameters]
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise validation_error(
            f"Expected a JSON object with the fields of {what} ({', '.join(names)}), "
            f"got {type(body).__name__}."
        )
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise validation_error(
            f"Unknown field {unknown[0]!r} for {what}; expected: {', '.join(names)}.", attr=unknown[0]
        )
    for parameter in parameters:
        if parameter.default is inspect.Parameter.empty and parameter.name not in body:
            raise validation_error(
                f"Field {parameter.name!r} is required for {what}.", code="required", attr=parameter.name
            )
    for name, value in body.items():
        expected = _NUMBER_FIELDS.get(name)
        if (
            expected is not None
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, expected))
        ):
            raise validation_error(f"Field {name!r} of {what} must be a number, got {value!r}.", attr=name)
        if name in _TEXT_FIELDS and value is not None and not isinstance(value, str):
            raise validation_error(f"Field {name!r} of {what} must be a string, got {value!r}.", attr=name)
    return body


_NUMBER_FIELDS: dict[str, tuple[type, ...]] = {
    "times": (int,),
    "status": (int,),
    "retry_after": (int, float),
    "delay": (int, float),
    "duration": (int, float),
    "count": (int,),
    "level": (int,),
}
_TEXT_FIELDS = frozenset(
    {"kind", "method", "path", "outcome", "error_message", "user_uuid", "organization_id"}
)


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
            "users": users_summary(state),
            "organizations": [
                {
                    "id": organization["id"],
                    "name": organization["name"],
                    "available_product_features": state.product_features(organization["id"]),
                    "members": [
                        {"id": m["id"], "user_uuid": m["user_uuid"], "level": m["level"]}
                        for m in state.memberships.values()
                        if m["organization_id"] == organization["id"]
                    ],
                }
                for organization in state.organizations.values()
            ],
            "access_controls": [
                {
                    "resource_id": rule["resource_id"],
                    "organization_member": rule["organization_member"],
                    "role": rule["role"],
                    "access_level": rule["access_level"],
                }
                for rule in state.access_controls
            ],
        }


def users_summary(state: EmulatorState) -> list[dict[str, Any]]:
    """Each user with their email and their access to the seeded project (``None``: no access)."""
    with state.lock:
        users = []
        for user in state.users.values():
            level = state.membership_level(user["uuid"], SEED.team_id)
            access = (
                None
                if level is None
                else ("admin" if state.is_project_admin(user["uuid"], SEED.team_id) else "member")
            )
            users.append({"uuid": user["uuid"], "email": user["email"], "project_access": access})
        return users
