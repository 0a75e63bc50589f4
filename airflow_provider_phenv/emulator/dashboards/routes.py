"""The dashboard and collaborator routes."""

from __future__ import annotations

from ..web.routing import detail_route, route
from . import collaborator_views as collaborators
from . import dashboard_views as dashboards

SCOPE = "dashboard"
_DASHBOARD = r"dashboards/(?P<dashboard_id>[^/]+)"

ROUTES = (
    route(SCOPE, "dashboards", GET=dashboards.list_dashboards, POST=dashboards.create_dashboard),
    detail_route(
        SCOPE,
        _DASHBOARD,
        dashboards.retrieve_dashboard,
        dashboards.update_dashboard,
        dashboards.destroy_dashboard,
    ),
    route(
        SCOPE,
        f"{_DASHBOARD}/collaborators",
        "collaborators",
        GET=collaborators.list_collaborators,
        POST=collaborators.add_collaborator,
    ),
    route(
        SCOPE,
        f"{_DASHBOARD}/collaborators/(?P<user_uuid>[^/]+)",
        "collaborators",
        DELETE=collaborators.remove_collaborator,
    ),
)
