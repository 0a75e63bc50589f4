"""Dashboard access controls (docs/posthog-api.md §7.4): the caller's effective level on a dashboard
and who may change its rules, as ``UserAccessControl`` computes them
(``products/access_control/backend/facade/user_access_control.py``).

Rules are ``state.access_controls`` rows ``(resource "dashboard", resource_id, organization_member
| None, role | None) → access_level``; a row with neither member nor role is the dashboard's
default rule. Resource-wide rules ("all dashboards") and project-level rules are not modelled:
project admins are the organization's admins and owners.
"""

from __future__ import annotations

from typing import Any

from ..store.records import ACCESS_CONTROL, ROLE_BASED_ACCESS
from ..store.seed import ADMIN
from ..store.state import EmulatorState

#: ``ordered_access_levels("dashboard")``, lowest first.
LEVELS = ("none", "viewer", "editor", "manager")
#: ``default_access_level``, ``minimum_access_level``, ``highest_access_level`` for dashboards.
DEFAULT_LEVEL, MINIMUM_LEVEL, MAXIMUM_LEVEL = "editor", "none", "manager"
RESOURCE = "dashboard"


def organization_of(state: EmulatorState, dashboard: dict[str, Any]) -> str:
    """The id of the dashboard's organization."""
    return str(state.teams[dashboard["team_id"]]["organization_id"])


def supported(state: EmulatorState, dashboard: dict[str, Any]) -> bool:
    """``access_controls_supported``: the organization has ``access_control`` (without it stored
    rules are kept but ignored, "stale rules in the DB must be ignored, not enforced")."""
    return state.has_feature(organization_of(state, dashboard), ACCESS_CONTROL)


def rules_of(state: EmulatorState, dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stored rule of the dashboard, oldest first."""
    resource_id = str(dashboard["id"])
    return [
        rule
        for rule in state.access_controls
        if rule["resource"] == RESOURCE and rule["resource_id"] == resource_id
    ]


def _explicit_rules(state: EmulatorState, dashboard: dict[str, Any], user_uuid: str) -> list[dict[str, Any]]:
    """The caller's member rules, plus their roles' rules when the organization has RBAC
    (``_user_role_ids`` is empty otherwise)."""
    organization_id = organization_of(state, dashboard)
    membership = state.membership(user_uuid, organization_id)
    member_id = membership["id"] if membership else None
    role_ids: set[str] = set()
    if state.has_feature(organization_id, ROLE_BASED_ACCESS):
        role_ids = {
            role["id"]
            for role in state.roles.values()
            if role["organization_id"] == organization_id and user_uuid in role["members"]
        }
    return [
        rule
        for rule in rules_of(state, dashboard)
        if (rule["organization_member"] is not None and rule["organization_member"] == member_id)
        or (rule["role"] is not None and rule["role"] in role_ids)
    ]


def _highest(rules: list[dict[str, Any]]) -> str:
    return max((rule["access_level"] for rule in rules), key=LEVELS.index)


def user_access_level(
    state: EmulatorState, dashboard: dict[str, Any], user_uuid: str, *, explicit: bool = False
) -> str | None:
    """``get_user_access_level``: None without a membership; ``manager`` for the creator and for
    organization admins and owners; ``editor`` without the ``access_control`` feature; else the
    highest of the caller's explicit rules (an explicit ``none`` denies, even below the default
    rule), else the dashboard's default rule, else ``editor``. With ``explicit=True`` (as
    ``check_can_modify_access_levels_for_object`` asks) only the caller's explicit rules count:
    None without one."""
    membership = state.membership(user_uuid, organization_of(state, dashboard))
    if membership is None:
        return None
    if dashboard["created_by"] == user_uuid or membership["level"] >= ADMIN:
        return MAXIMUM_LEVEL
    if not supported(state, dashboard):
        return DEFAULT_LEVEL
    explicit_rules = _explicit_rules(state, dashboard, user_uuid)
    if explicit_rules:
        return _highest(explicit_rules)
    if explicit:
        return None
    defaults = [
        rule
        for rule in rules_of(state, dashboard)
        if rule["organization_member"] is None and rule["role"] is None
    ]
    if defaults:
        return _highest(defaults)
    return DEFAULT_LEVEL


def at_least(level: str | None, required: str) -> bool:
    """Whether ``level`` reaches ``required`` (None, no membership, reaches nothing)."""
    return level is not None and LEVELS.index(level) >= LEVELS.index(required)


def can_modify(state: EmulatorState, dashboard: dict[str, Any], user_uuid: str) -> bool:
    """``check_can_modify_access_levels_for_object``: the creator, organization admins and owners
    (project admins), or a caller with an explicit ``manager`` rule (only with the feature: with
    ``explicit=True`` the system default never counts)."""
    return user_access_level(state, dashboard, user_uuid, explicit=True) == MAXIMUM_LEVEL
