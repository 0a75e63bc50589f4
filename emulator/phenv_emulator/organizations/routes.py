"""The project route (below a project) and the organization routes (below an organization)."""

from __future__ import annotations

from ..web.routing import DETAIL, LIST, route
from . import views

#: Below ``/api/{projects|environments}/{id}/``: the project itself.
ROUTES = (route("project", "", view=DETAIL, GET=views.retrieve_project),)
#: Below ``/api/organizations/{id|@current}/``.
ORGANIZATION_ROUTES = (
    route("organization", "", view=DETAIL, GET=views.retrieve_organization),
    route("organization_member", "members", view=LIST, GET=views.list_members),
)
