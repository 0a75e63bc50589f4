"""Dashboard collaborator endpoints (docs/posthog-api.md §7.3, ``ee/api/dashboard_collaborator.py``).

The list is a bare array. Adding a collaborator runs PostHog's checks in PostHog's order: the
permission class (edit rights) first, then field validation, then the serializer's ``validate``.
"""

from __future__ import annotations

from typing import Any

from ..web.calls import Call, Response
from ..web.errors import not_found, validation_error
from ..web.fields import iso, parse_choice, parse_uuid, required
from .access import (
    EVERYONE_CAN_EDIT,
    ONLY_COLLABORATORS_CAN_EDIT,
    can_restrict,
    effective_restriction_level,
    get_dashboard,
    get_editable_dashboard,
    user_basic,
)

DASHBOARD_NOT_FOUND = "Dashboard not found."


def _serialize(call: Call, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "dashboard_id": record["dashboard_id"],
        "user": user_basic(call, record["user_uuid"]),
        "level": record["level"],
        "added_at": iso(record["added_at"]),
        "updated_at": iso(record["updated_at"]),
    }


def _records(call: Call, dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for record in call.state.collaborators if record["dashboard_id"] == dashboard["id"]]


def list_collaborators(call: Call) -> Response:
    """GET ``collaborators/``: every explicit privilege (levels 21 and 37), oldest first."""
    dashboard = get_dashboard(call, DASHBOARD_NOT_FOUND)
    records = sorted(_records(call, dashboard), key=lambda record: record["added_at"])
    return Response(200, [_serialize(call, record) for record in records])


def add_collaborator(call: Call) -> Response:
    """POST ``collaborators/`` ``{"user_uuid", "level"}``: 201 with the new collaborator."""
    dashboard = get_editable_dashboard(call, DASHBOARD_NOT_FOUND)
    data = call.data()
    # Field validation, in the serializer's field order (level is declared before user_uuid).
    if "level" not in data:
        raise required("level")
    level = parse_choice(data["level"], (EVERYONE_CAN_EDIT, ONLY_COLLABORATORS_CAN_EDIT), "level")
    if "user_uuid" not in data:
        raise required("user_uuid")
    user_uuid = parse_uuid(data["user_uuid"], "user_uuid")
    if effective_restriction_level(call, dashboard) <= EVERYONE_CAN_EDIT:
        raise validation_error("Cannot add collaborators to a dashboard on the lowest restriction level.")
    if level != ONLY_COLLABORATORS_CAN_EDIT:
        raise validation_error("Only edit access can be explicitly specified currently.")
    if user_uuid not in call.state.users:
        raise validation_error("User does not exist.")
    if call.state.membership_level(user_uuid, dashboard["team_id"]) is None:
        raise validation_error("Cannot add collaborators that have no access to the project.")
    if can_restrict(call, dashboard, user_uuid):
        raise validation_error(
            "Cannot add collaborators that already have inherent access "
            "(the dashboard owner or a project admins)."
        )
    if any(record["user_uuid"] == user_uuid for record in _records(call, dashboard)):
        raise validation_error("User already is a collaborator.")
    record = call.state.add_collaborator(dashboard["id"], user_uuid, level)
    return Response(201, _serialize(call, record))


def remove_collaborator(call: Call) -> Response:
    """DELETE ``collaborators/{user_uuid}/``: 204; the collaborator is looked up before the level check."""
    dashboard = get_editable_dashboard(call, DASHBOARD_NOT_FOUND)
    user_uuid = call.params["user_uuid"].lower()
    record = next((r for r in _records(call, dashboard) if r["user_uuid"] == user_uuid), None)
    if record is None:
        raise not_found()
    if effective_restriction_level(call, dashboard) <= EVERYONE_CAN_EDIT:
        raise validation_error(
            "Cannot remove collaborators from a dashboard on the lowest restriction level."
        )
    call.state.collaborators.remove(record)
    return Response(204)
