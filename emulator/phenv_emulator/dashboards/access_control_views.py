"""``dashboards/{id}/access_controls/`` (docs/posthog-api.md §7.4): ``AccessControlViewSetMixin``'s
per-object action (``products/access_control/backend/presentation/access_control.py``).

GET needs ``access_control:read`` (or ``:write``) and the caller's ``viewer`` level; PUT needs
``access_control:write``, ``editor`` and the legacy edit right (``get_permitted_dashboard``), then
the body runs ``AccessControlSerializer``: field checks in field order, then ``validate``.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..store.records import ROLE_BASED_ACCESS
from ..web.calls import Call, Response
from ..web.errors import permission_denied, validation_error
from ..web.fields import copied, iso, parse_str, required
from .access import get_permitted_dashboard
from .access_control import (
    DEFAULT_LEVEL,
    LEVELS,
    MAXIMUM_LEVEL,
    MINIMUM_LEVEL,
    RESOURCE,
    can_modify,
    organization_of,
    rules_of,
    supported,
    user_access_level,
)

#: ``AccessControlSerializer.validate``'s cap on objects of one resource with rules in a team
#: (``MAX_OBJECTS_WITH_ACCESS_CONTROL`` in PostHog's tests, patched there to 3).
OBJECT_CAP = 1000
INVALID_MEMBER = (
    "Invalid organization member id. Use the 'id' field from the "
    "/api/organizations/<organization_id>/members/ endpoint."
)


def _serialize(rule: dict[str, Any]) -> dict[str, Any]:
    """``AccessControlSerializer``: no ``id``; ``created_by`` is never set on this path."""
    return {
        **copied(rule, "access_level", "resource", "resource_id", "organization_member", "role"),
        "created_by": None,
        "created_at": iso(rule["created_at"]),
        "updated_at": iso(rule["updated_at"]),
    }


def get_access_controls(call: Call) -> Response:
    """GET: the dashboard's rules (``[]`` without the ``access_control`` feature) and the caller's level."""
    dashboard = get_permitted_dashboard(call)
    state, user_uuid = call.state, call.user["uuid"]
    return Response(
        200,
        {
            "access_controls": [_serialize(rule) for rule in rules_of(state, dashboard)]
            if supported(state, dashboard)
            else [],
            "available_access_levels": list(LEVELS),
            "default_access_level": DEFAULT_LEVEL,
            "minimum_access_level": MINIMUM_LEVEL,
            "maximum_access_level": MAXIMUM_LEVEL,
            "user_access_level": user_access_level(state, dashboard, user_uuid),
            "user_can_edit_access_levels": can_modify(state, dashboard, user_uuid),
            # No resource-wide rules are modelled: what the dashboard inherits is the system default.
            "inherited_access": {
                "access_level": DEFAULT_LEVEL,
                "source": "system_default",
                "source_subject": None,
                "source_resource": RESOURCE,
                "source_resource_id": None,
                "source_display_name": None,
            },
        },
    )


def _access_level(data: dict[str, Any]) -> str | None:
    if "access_level" not in data:
        raise required("access_level")
    level = parse_str(data["access_level"], "access_level", allow_null=True)
    if level is not None and level not in LEVELS:
        raise validation_error(
            f"Invalid access level. Must be one of: {', '.join(LEVELS)}", attr="access_level"
        )
    return level


def _uuid_text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _member(call: Call, data: dict[str, Any]) -> dict[str, Any] | None:
    """``OrganizationMemberField``: a membership id (not a user uuid), of any organization."""
    value = data.get("organization_member")
    if value is None:
        return None
    member_id = _uuid_text(value)
    if member_id is None:
        raise validation_error(INVALID_MEMBER, attr="organization_member")
    membership = next((m for m in call.state.memberships.values() if m["id"] == member_id), None)
    if membership is None:
        raise validation_error(
            f'Invalid pk "{value}" - object does not exist.',
            code="does_not_exist",
            attr="organization_member",
        )
    return membership


def _role(call: Call, data: dict[str, Any]) -> dict[str, Any] | None:
    """``role``: a ``PrimaryKeyRelatedField`` to ``Role`` (UUID primary key), of any organization."""
    value = data.get("role")
    if value is None:
        return None
    if isinstance(value, bool):
        raise validation_error(
            "Incorrect type. Expected pk value, received bool.", code="incorrect_type", attr="role"
        )
    role_id = _uuid_text(value)
    if role_id is None:
        raise validation_error(f"\u201c{value}\u201d is not a valid UUID.", attr="role")
    role = call.state.roles.get(role_id)
    if role is None:
        raise validation_error(
            f'Invalid pk "{value}" - object does not exist.', code="does_not_exist", attr="role"
        )
    return role


def put_access_control(call: Call) -> Response:
    """PUT ``{"access_level", "organization_member"?, "role"?}``: upsert the rule keyed by
    (dashboard, member, role) → 200 with it; ``access_level: null`` deletes it → 204 (also when
    there was none). ``resource``/``resource_id`` in the body are overwritten by the URL's."""
    dashboard = get_permitted_dashboard(call)
    state = call.state
    data = call.data()
    level = _access_level(data)
    membership = _member(call, data)
    role = _role(call, data)
    organization_id = organization_of(state, dashboard)
    if membership is not None and role is not None:
        raise validation_error("You can not scope an access control to both a member and a role.")
    if role is not None and not state.has_feature(organization_id, ROLE_BASED_ACCESS):
        raise permission_denied("Role-based access controls require the Role-based access feature.")
    if role is not None and role["organization_id"] != organization_id:
        raise validation_error("The role must belong to the same organization as this project.")
    if membership is not None and membership["organization_id"] != organization_id:
        raise validation_error("The member must belong to the same organization as this project.")
    if not can_modify(state, dashboard, call.user["uuid"]):
        raise permission_denied(f"Must be {MAXIMUM_LEVEL} to modify {RESOURCE} permissions.")
    existing = rules_of(state, dashboard)
    if level is not None and not existing:
        team_ids = state.project_team_ids(dashboard["team_id"])
        overridden = {
            rule["resource_id"]
            for rule in state.access_controls
            if rule["resource"] == RESOURCE
            and int(rule["resource_id"]) in state.dashboards
            and state.dashboards[int(rule["resource_id"])]["team_id"] in team_ids
        }
        if len(overridden) >= OBJECT_CAP:
            raise validation_error(
                f"Reached the limit of {OBJECT_CAP} {RESOURCE}s with access control overrides."
            )
    member_id = membership["id"] if membership else None
    role_id = role["id"] if role else None
    match = next(
        (rule for rule in existing if rule["organization_member"] == member_id and rule["role"] == role_id),
        None,
    )
    if level is None:
        if match is not None:
            state.access_controls.remove(match)
        return Response(204)
    rule = state.add_access_control(dashboard["id"], level, organization_member=member_id, role=role_id)
    return Response(200, _serialize(rule))
