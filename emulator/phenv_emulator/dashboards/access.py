"""Who may see, edit and restrict a dashboard: the rules dashboard and collaborator endpoints share.

Dashboards are project-wide: any environment of a project lists and reads them all.
"""

from __future__ import annotations

from typing import Any

from ..store.records import ACCESS_CONTROL
from ..web.calls import Call
from ..web.errors import not_found, permission_denied
from .access_control import at_least, organization_of, user_access_level

EVERYONE_CAN_EDIT = 21  # RestrictionLevel.EVERYONE_IN_PROJECT_CAN_EDIT, also PrivilegeLevel.CAN_VIEW
ONLY_COLLABORATORS_CAN_EDIT = 37  # RestrictionLevel.ONLY_COLLABORATORS_CAN_EDIT, also PrivilegeLevel.CAN_EDIT
NO_EDIT_PERMISSION = "You don't have edit permissions for this dashboard."


def user_basic(call: Call, user_uuid: str | None) -> dict[str, Any] | None:
    """``UserBasicSerializer`` fields of a user, or None."""
    user = call.state.users.get(user_uuid or "")
    if user is None:
        return None
    return {key: value for key, value in user.items() if key != "current_team_id"}


def effective_restriction_level(call: Call, dashboard: dict[str, Any]) -> int:
    """The stored level only counts when the organization's ``available_product_features`` has
    ``access_control`` (never with the ``no-access-control`` switch, §7.3, §7.5)."""
    if call.state.has_feature(organization_of(call.state, dashboard), ACCESS_CONTROL):
        return dashboard["restriction_level"]
    return EVERYONE_CAN_EDIT


def can_restrict(call: Call, dashboard: dict[str, Any], user_uuid: str | None = None) -> bool:
    """The creator and project admins may restrict a dashboard (and have inherent edit access)."""
    user_uuid = user_uuid or call.user["uuid"]
    return dashboard["created_by"] == user_uuid or call.state.is_project_admin(
        user_uuid, dashboard["team_id"]
    )


def effective_privilege_level(call: Call, dashboard: dict[str, Any]) -> int:
    """The caller's privilege (``UserDashboardPermissions``): 37 edit or 21 view."""
    if effective_restriction_level(call, dashboard) < ONLY_COLLABORATORS_CAN_EDIT or can_restrict(
        call, dashboard
    ):
        return ONLY_COLLABORATORS_CAN_EDIT
    for record in call.state.collaborators:
        if record["dashboard_id"] == dashboard["id"] and record["user_uuid"] == call.user["uuid"]:
            return record["level"]
    return EVERYONE_CAN_EDIT


def can_edit(call: Call, dashboard: dict[str, Any]) -> bool:
    """Whether the caller may change the dashboard or its collaborators."""
    return effective_privilege_level(call, dashboard) >= ONLY_COLLABORATORS_CAN_EDIT


def find_dashboard(call: Call, dashboard_id: int, include_deleted: bool = False) -> dict[str, Any] | None:
    """A dashboard of any environment of the call's project, or None; soft-deleted ones only with
    ``include_deleted`` (a PATCH restoring one)."""
    dashboard = call.state.dashboards.get(dashboard_id)
    if dashboard is None or (dashboard["deleted"] and not include_deleted):
        return None
    return dashboard if dashboard["team_id"] in call.state.project_team_ids(call.team["id"]) else None


def get_dashboard(call: Call, detail: str = "Not found.", include_deleted: bool = False) -> dict[str, Any]:
    """The dashboard named in the path (see :func:`find_dashboard`); otherwise 404.

    :param detail: the 404 detail (collaborator endpoints say ``Dashboard not found.``).
    :param include_deleted: find soft-deleted dashboards too.
    """
    raw_id = call.params["dashboard_id"]
    dashboard = find_dashboard(call, int(raw_id), include_deleted) if raw_id.isdigit() else None
    if dashboard is None:
        raise not_found(detail)
    return dashboard


def get_permitted_dashboard(call: Call, include_deleted: bool = False) -> dict[str, Any]:
    """The dashboard named in the path once ``DashboardsViewSet``'s object permissions pass, in
    their order (§7.4): 404 when it is not found; ``AccessControlPermission`` (the caller's
    effective level must reach the route's required level, else 403 ``You do not have
    {viewer|editor} access to this resource.``, never 404); then, for a write, the legacy
    ``CanEditDashboard`` (403 ``You don't have edit permissions for this dashboard.``)."""
    dashboard = get_dashboard(call, include_deleted=include_deleted)
    if not at_least(user_access_level(call.state, dashboard, call.user["uuid"]), call.required_level):
        raise permission_denied(f"You do not have {call.required_level} access to this resource.")
    if call.method not in ("GET", "HEAD", "OPTIONS") and not can_edit(call, dashboard):
        raise permission_denied(NO_EDIT_PERMISSION)
    return dashboard


def get_editable_dashboard(
    call: Call, detail: str = "Not found.", include_deleted: bool = False
) -> dict[str, Any]:
    """The dashboard named in the path (see :func:`get_dashboard`) when the caller may edit it; else 403."""
    dashboard = get_dashboard(call, detail, include_deleted)
    if not can_edit(call, dashboard):
        raise permission_denied(NO_EDIT_PERMISSION)
    return dashboard
