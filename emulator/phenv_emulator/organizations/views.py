"""The project record, the organization and its members (docs/posthog-api.md §7.5).

The project route is below ``/api/{projects|environments}/{id}/`` and goes through
:func:`..web.api._dispatch` like every project route; the organization routes are below
``/api/organizations/{id|@current}/`` (:func:`..web.api.handle_api` resolves the organization).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..store.records import FEATURE_NAMES
from ..web.calls import Call, Response, limit_offset_page
from ..web.errors import not_found
from ..web.fields import copied, iso

_PROJECT_NAMESPACE = uuid.UUID("01900000-0000-7000-8000-0000000000fe")


def retrieve_project(call: Call) -> Response:
    """GET ``/api/projects/{id}/`` (``ProjectBackwardCompatSerializer``, a subset of its fields),
    also under ``/api/environments/{id}/``, which PostHog's middleware rewrites to it. An
    environment id that is not a project's (team 3) is not a project: 404."""
    team = call.team
    if team["id"] != team["project_id"]:
        raise not_found()
    return Response(
        200,
        {
            "id": team["project_id"],
            "uuid": str(uuid.uuid5(_PROJECT_NAMESPACE, str(team["id"]))),
            "organization": team["organization_id"],
            "name": team["name"],
            "timezone": "UTC",
            "access_control": False,
            "effective_membership_level": call.state.membership_level(call.user["uuid"], team["id"]),
        },
    )


def product_features(call: Call, organization_id: str) -> list[dict[str, Any]]:
    """``available_product_features`` as ``[{"key", "name"}, ...]``."""
    return [
        {"key": key, "name": FEATURE_NAMES.get(key, key.replace("_", " ").capitalize())}
        for key in call.state.product_features(organization_id)
    ]


def retrieve_organization(call: Call) -> Response:
    """GET ``/api/organizations/{id}/`` (``OrganizationSerializer``, a subset of its fields)."""
    organization = call.state.organizations[call.params["organization_id"]]
    membership = call.state.membership(call.user["uuid"], organization["id"])
    teams = sorted(
        (team for team in call.state.teams.values() if team["organization_id"] == organization["id"]),
        key=lambda team: team["id"],
    )
    return Response(
        200,
        {
            **copied(organization, "id", "name", "slug"),
            "logo_media_id": None,
            "created_at": iso(organization["created_at"]),
            "updated_at": iso(organization["created_at"]),
            "membership_level": membership["level"] if membership else None,
            "teams": [
                {"id": team["id"], "project_id": team["project_id"], "name": team["name"]} for team in teams
            ],
            "projects": [
                {"id": team["id"], "name": team["name"]} for team in teams if team["id"] == team["project_id"]
            ],
            "available_product_features": product_features(call, organization["id"]),
        },
    )


def list_members(call: Call) -> Response:
    """GET ``/api/organizations/{id}/members/``: limit/offset pages of 100, newest member first
    (``order=joined_at`` reverses it), ``email=`` filters by exact address."""
    organization_id = call.params["organization_id"]
    members = [m for m in call.state.memberships.values() if m["organization_id"] == organization_id]
    email = call.arg("email")
    if email is not None:
        members = [m for m in members if call.state.users[m["user_uuid"]]["email"] == email]
    ascending = call.arg("order") == "joined_at"
    members.sort(key=lambda m: (m["joined_at"], m["id"]), reverse=not ascending)
    page = limit_offset_page(call, members)
    page["results"] = [_member(call, membership) for membership in page["results"]]
    return Response(200, page)


def _member(call: Call, membership: dict[str, Any]) -> dict[str, Any]:
    """``OrganizationMemberSerializer``: ``id`` is the membership's, ``user`` is UserBasic."""
    user = call.state.users[membership["user_uuid"]]
    return {
        "id": membership["id"],
        "user": {key: value for key, value in user.items() if key != "current_team_id"},
        "level": membership["level"],
        "joined_at": iso(membership["joined_at"]),
        "updated_at": iso(membership["updated_at"]),
        "is_2fa_enabled": False,
        "has_social_auth": False,
        "last_login": None,
    }
