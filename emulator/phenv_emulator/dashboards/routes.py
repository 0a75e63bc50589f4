"""The dashboard, collaborator and access-control routes."""

from __future__ import annotations

from ..web.routing import DETAIL, LIST, detail_route, route
from . import access_control_views as access_controls
from . import collaborator_views as collaborators
from . import dashboard_views as dashboards

SCOPE = "dashboard"
_DASHBOARD = r"dashboards/(?P<dashboard_id>[^/]+)"

ROUTES = (
    route(SCOPE, "dashboards", view=LIST, GET=dashboards.list_dashboards, POST=dashboards.create_dashboard),
    detail_route(
        SCOPE,
        _DASHBOARD,
        dashboards.retrieve_dashboard,
        dashboards.update_dashboard,
        dashboards.destroy_dashboard,
    ),
    # An ``@action`` whose scopes the mixin names (``dangerously_get_required_scopes``, §7.4).
    route(
        SCOPE,
        f"{_DASHBOARD}/access_controls",
        scopes={"GET": "access_control:read", "PUT": "access_control:write"},
        GET=access_controls.get_access_controls,
        PUT=access_controls.put_access_control,
    ),
    route(
        SCOPE,
        f"{_DASHBOARD}/collaborators",
        "collaborators",
        view=LIST,
        GET=collaborators.list_collaborators,
        POST=collaborators.add_collaborator,
    ),
    route(
        SCOPE,
        f"{_DASHBOARD}/collaborators/(?P<user_uuid>[^/]+)",
        "collaborators",
        view=DETAIL,
        DELETE=collaborators.remove_collaborator,
    ),
)
