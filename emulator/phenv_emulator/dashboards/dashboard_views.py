"""Dashboard endpoints (docs/posthog-api.md §7.1-7.2); who may do what is :mod:`.access`."""

from __future__ import annotations

import copy
from typing import Any

from ..web.calls import Call, Response, limit_offset_page
from ..web.errors import permission_denied, validation_error
from ..web.fields import iso, parse_bool, parse_choice, parse_int, parse_str
from .access import (
    EVERYONE_CAN_EDIT,
    ONLY_COLLABORATORS_CAN_EDIT,
    can_restrict,
    effective_privilege_level,
    effective_restriction_level,
    find_dashboard,
    get_permitted_dashboard,
    user_basic,
)
from .access_control import user_access_level

#: ``posthog/helpers/trigram_search.py``.
MAX_SEARCH_LENGTH = 200
# Built-in template keys (posthog/helpers/dashboard_templates.py): name, description, filters and
# the tiles they create. A template's description and filters replace the request's (§7.2).
TEMPLATES = {
    "DEFAULT_APP": (
        "Product analytics",
        "",
        {"date_from": "-30d"},
        ("Daily active users (DAUs)", "Weekly active users (WAUs)", "Retention"),
    ),
    "WEBSITE_TRAFFIC": (
        "Website traffic",
        "",
        {"date_from": "-30d"},
        ("Website unique users", "Page views", "Top referrers"),
    ),
}


def serialize_basic(call: Call, dashboard: dict[str, Any]) -> dict[str, Any]:
    """``DashboardBasicSerializer``: what the list returns (no tiles)."""
    privilege = effective_privilege_level(call, dashboard)
    return {
        "id": dashboard["id"],
        "name": dashboard["name"],
        "description": dashboard["description"],
        "pinned": dashboard["pinned"],
        "created_at": iso(dashboard["created_at"]),
        "created_by": user_basic(call, dashboard["created_by"]),
        "last_accessed_at": iso(dashboard["last_accessed_at"]),
        "last_viewed_at": iso(dashboard["last_viewed_at"]),
        "folder": None,
        "is_shared": dashboard["is_shared"],
        "deleted": dashboard["deleted"],
        "creation_mode": dashboard["creation_mode"],
        "tags": list(dashboard["tags"]),
        "restriction_level": dashboard["restriction_level"],
        "effective_restriction_level": effective_restriction_level(call, dashboard),
        "effective_privilege_level": privilege,
        "user_access_level": user_access_level(call.state, dashboard, call.user["uuid"]),
        "access_control_version": "v1" if dashboard["restriction_level"] > EVERYONE_CAN_EDIT else "v2",
        "last_refresh": iso(dashboard["last_refresh"]),
        "team_id": dashboard["team_id"],
    }


def serialize_full(call: Call, dashboard: dict[str, Any]) -> dict[str, Any]:
    """``DashboardSerializer``: the shared fields plus filters, variables and ``tiles``."""
    basic = serialize_basic(call, dashboard)
    del basic["folder"]
    return {
        **basic,
        "filters": dashboard["filters"],
        "variables": dashboard["variables"],
        "breakdown_colors": dashboard["breakdown_colors"],
        "data_color_theme_id": dashboard["data_color_theme_id"],
        "persisted_filters": dashboard["filters"],
        "persisted_variables": dashboard["variables"],
        "quick_filter_ids": [],
        "tiles": copy.deepcopy(dashboard["tiles"]),
    }


def list_dashboards(call: Call) -> Response:
    """GET ``dashboards/``: project-wide, pinned first then by name; hides deleted and unlisted
    dashboards and those the caller's access level is ``none`` on (§7.4).

    ``search`` (§7.1): PostHog ranks dashboards by trigram similarity of name, description and
    tags; the emulator does not rank, it only refuses a search longer than 200 characters and
    otherwise answers every dashboard (a superset, which a client matching names itself handles).
    """
    search = call.arg("search")
    if search and len(search) > MAX_SEARCH_LENGTH:
        raise validation_error(
            f"Search query must be {MAX_SEARCH_LENGTH} characters or fewer.", attr="search"
        )
    tags = set(call.query.get("tags", []))
    creation_mode = call.arg("creation_mode")
    team_ids = call.state.project_team_ids(call.team["id"])
    found = [
        dashboard
        for dashboard in call.state.dashboards.values()
        if dashboard["team_id"] in team_ids
        and not dashboard["deleted"]
        and dashboard["creation_mode"] != "unlisted"
        and (not tags or tags & set(dashboard["tags"]))
        and (creation_mode is None or dashboard["creation_mode"] == creation_mode)
        and user_access_level(call.state, dashboard, call.user["uuid"]) != "none"
    ]
    # Postgres sorts NULL names last in ascending order.
    found.sort(key=lambda d: (not d["pinned"], d["name"] is None, d["name"] or ""))
    page = limit_offset_page(call, found)
    page["results"] = [serialize_basic(call, dashboard) for dashboard in page["results"]]
    return Response(200, page)


def _filters(value: Any) -> dict[str, Any]:
    """Only a truthy non-dict is rejected (``[]`` and ``""`` pass and store ``{}``)."""
    if value and not isinstance(value, dict):
        raise validation_error("Filters must be a dictionary")
    return value or {}


def _editable_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate the writable fields present in ``data`` (DRF field-level checks)."""
    values: dict[str, Any] = {}
    if "name" in data:
        values["name"] = parse_str(data["name"], "name", allow_null=True, max_length=400)
    if "description" in data:
        values["description"] = parse_str(data["description"], "description", allow_null=True) or ""
    if "pinned" in data:
        values["pinned"] = parse_bool(data["pinned"], "pinned")
    if "tags" in data:
        if not isinstance(data["tags"], list):
            raise validation_error(
                f'Expected a list of items but got type "{type(data["tags"]).__name__}".',
                code="not_a_list",
                attr="tags",
            )
        values["tags"] = [parse_str(tag, "tags") for tag in data["tags"]]
    if "restriction_level" in data:
        values["restriction_level"] = parse_choice(
            data["restriction_level"], (EVERYONE_CAN_EDIT, ONLY_COLLABORATORS_CAN_EDIT), "restriction_level"
        )
    if "filters" in data:
        values["filters"] = _filters(data["filters"])
    if isinstance(data.get("variables"), dict):
        values["variables"] = data["variables"]
    if isinstance(data.get("breakdown_colors"), (list, dict)):
        values["breakdown_colors"] = data["breakdown_colors"]
    return values


def create_dashboard(call: Call) -> Response:
    """POST ``dashboards/``: 201; ``use_template`` or ``use_dashboard`` set ``creation_mode``."""
    data = call.data()
    values = _editable_fields(data)
    use_template = parse_str(data["use_template"], "use_template") if data.get("use_template") else None
    use_dashboard = (
        parse_int(data["use_dashboard"], "use_dashboard") if data.get("use_dashboard") is not None else None
    )
    if use_template and use_dashboard is not None:
        raise validation_error("`use_dashboard` and `use_template` cannot be used together")
    # What the dashboard starts from; fields given in the request are applied on top.
    origin: dict[str, Any] = {}
    if use_template:
        if use_template not in TEMPLATES:
            raise validation_error(f"Invalid template provided: {use_template}", attr="use_template")
        template_name, description, filters, insights = TEMPLATES[use_template]
        origin.update(creation_mode="template", name=template_name, tiles=call.state.new_tiles(insights))
        # The template's description and filters win over the request's (§7.2).
        values.pop("description", None)
        values.pop("filters", None)
        origin.update(description=description, filters=copy.deepcopy(filters))
    elif use_dashboard is not None:
        source = find_dashboard(call, use_dashboard)
        if source is None:
            raise validation_error("Invalid value provided", attr="use_dashboard")
        origin = {
            "creation_mode": "duplicate",
            "filters": copy.deepcopy(source["filters"]),
            "variables": copy.deepcopy(source["variables"]),
            "breakdown_colors": copy.deepcopy(source["breakdown_colors"]),
            "data_color_theme_id": source["data_color_theme_id"],
            "tiles": call.state.new_tiles(
                tile["insight"]["name"] for tile in source["tiles"] if tile.get("insight")
            ),
        }
    dashboard = call.state.add_dashboard(None, team_id=call.team["id"], created_by=call.user["uuid"])
    dashboard.update(origin)
    dashboard.update(values)
    return Response(201, serialize_full(call, dashboard))


def retrieve_dashboard(call: Call) -> Response:
    """GET ``dashboards/{id}/``: the full dashboard with tiles (needs ``viewer``, §7.4)."""
    return Response(200, serialize_full(call, get_permitted_dashboard(call)))


def update_dashboard(call: Call) -> Response:
    """PATCH/PUT ``dashboards/{id}/``; ``{"deleted": true}`` soft-deletes, ``{"deleted": false}``
    restores (the only request that finds a soft-deleted dashboard, ``dangerously_get_queryset``);
    ``creation_mode`` is ignored."""
    data = call.data()
    restoring = data.get("deleted") is not None and not _str_to_bool(data["deleted"])
    dashboard = get_permitted_dashboard(call, include_deleted=restoring)
    values = _editable_fields(data)
    if "deleted" in data:
        values["deleted"] = parse_bool(data["deleted"], "deleted")
    level = values.get("restriction_level", dashboard["restriction_level"])
    if level != dashboard["restriction_level"] and not can_restrict(call, dashboard):
        raise permission_denied(
            "Only the dashboard owner and project admins have the restriction rights required to change the "
            "dashboard's restriction level."
        )
    dashboard.update(values)
    return Response(200, serialize_full(call, dashboard))


def _str_to_bool(value: Any) -> bool:
    """``posthog.utils.str_to_bool``."""
    return bool(value) and str(value).lower() in ("y", "yes", "t", "true", "on", "1")


def destroy_dashboard(call: Call) -> Response:
    """DELETE ``dashboards/{id}/``: always 405 with an empty body (PostHog's ``ForbidDestroyModel``)."""
    return Response(405)
