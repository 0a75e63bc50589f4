"""Dashboard access controls, organizations and members (docs/posthog-api.md §7.4, §7.5), from
PostHog's ``products/access_control/backend/tests/test_access_control.py`` (014ff14c) and
``posthog/api/test/test_organization_members.py``.

PostHog's access-control tests give the organization ``access_control`` and ``role_based_access``
(so does the seed) and run the caller as a plain MEMBER; here that is ``alice`` (or ``bob``) with a
key of her own, and the key owner (``hedgy``) is an organization admin. The generic notebook cases
apply to dashboards unchanged: the same mixin and permission class serve both.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from phenv_emulator import SEED
from phenv_emulator.dashboards import access_control_views

from tests.helpers.api import INVALID_INPUT, PERMISSION_DENIED
from tests.helpers.conformance import posthog_case

SOURCE = "products/access_control/backend/tests/test_access_control.py"
MEMBERS_SOURCE = "posthog/api/test/test_organization_members.py"
COLLABORATORS_SOURCE = "ee/api/test/test_dashboard_collaborators.py"
ENDPOINT = "dashboards/{id}/access_controls/"
NOT_MANAGER = "Must be manager to modify dashboard permissions."


def dashboard_of(emulator, creator: str = SEED.owner_uuid, restriction_level: int = 21) -> int:
    return emulator.state.add_dashboard("Access", created_by=creator, restriction_level=restriction_level)[
        "id"
    ]


def controls(dashboard_id: int) -> str:
    return f"dashboards/{dashboard_id}/access_controls/"


def put(client, dashboard_id: int, body):
    return client.request("PUT", controls(dashboard_id), json=body)


def view_and_edit(client, dashboard_id: int) -> tuple[int, int]:
    """The statuses of a GET and then a PATCH of the dashboard."""
    path = f"dashboards/{dashboard_id}/"
    return client.get(path).status_code, client.patch(path, {"name": "changed"}).status_code


def detail(response, status: int) -> str:
    """The error's ``detail``, once the status is the expected one."""
    assert response.status_code == status, response.text
    return response.json()["detail"]


# -- TestAccessControlObjectCap (dashboards) -------------------------------------------------


@posthog_case(f"{SOURCE}::TestAccessControlObjectCap::_fill_to_cap", endpoint=ENDPOINT)
def test_an_admin_sets_a_default_rule(api, emulator):
    dashboard = dashboard_of(emulator, SEED.alice_uuid)
    response = put(api, dashboard, {"access_level": "viewer"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "id" not in body
    assert {
        key: body[key] for key in ("access_level", "resource", "resource_id", "organization_member", "role")
    } == {
        "access_level": "viewer",
        "resource": "dashboard",
        "resource_id": str(dashboard),
        "organization_member": None,
        "role": None,
    }


@pytest.fixture
def at_cap(api, emulator, monkeypatch):
    """PostHog's cap patched to 3, with 3 dashboards carrying a default rule."""
    monkeypatch.setattr(access_control_views, "OBJECT_CAP", 3)
    dashboards = [dashboard_of(emulator) for _ in range(3)]
    for dashboard in dashboards:
        assert put(api, dashboard, {"access_level": "viewer"}).status_code == 200
    return dashboards


@posthog_case(f"{SOURCE}::TestAccessControlObjectCap::test_new_object_rejected_at_cap", endpoint=ENDPOINT)
def test_a_new_object_is_rejected_at_the_cap(api, emulator, at_cap):
    response = put(api, dashboard_of(emulator), {"access_level": "viewer"})
    assert "Reached the limit of 3 dashboards with access control overrides" in detail(response, 400)


@posthog_case(
    f"{SOURCE}::TestAccessControlObjectCap::test_additional_rule_on_existing_object_allowed_at_cap",
    endpoint=ENDPOINT,
)
def test_another_rule_on_an_existing_object_is_allowed_at_the_cap(api, at_cap):
    response = put(api, at_cap[0], {"role": SEED.role_id, "access_level": "editor"})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == SEED.role_id


@posthog_case(
    f"{SOURCE}::TestAccessControlObjectCap::test_update_existing_rule_allowed_at_cap", endpoint=ENDPOINT
)
def test_updating_a_rule_is_allowed_at_the_cap(api, at_cap):
    response = put(api, at_cap[0], {"access_level": "editor"})
    assert (response.status_code, response.json()["access_level"]) == (200, "editor")


@posthog_case(f"{SOURCE}::TestAccessControlObjectCap::test_delete_allowed_at_cap", endpoint=ENDPOINT)
def test_deleting_is_allowed_at_the_cap(api, at_cap):
    response = put(api, at_cap[0], {"access_level": None})
    assert (response.status_code, response.content) == (204, b"")
    assert api.get(controls(at_cap[0])).json()["access_controls"] == []


# -- TestAccessControlResourceLevelAPI -------------------------------------------------------


@posthog_case(f"{SOURCE}::TestAccessControlResourceLevelAPI::test_get_access_controls", endpoint=ENDPOINT)
def test_get_access_controls_as_the_creator(alice, emulator):
    dashboard = dashboard_of(emulator, SEED.alice_uuid)
    response = alice.get(controls(dashboard))
    assert response.status_code == 200
    assert response.json() == {
        "access_controls": [],
        "available_access_levels": ["none", "viewer", "editor", "manager"],
        "default_access_level": "editor",
        "minimum_access_level": "none",
        "maximum_access_level": "manager",
        "user_access_level": "manager",
        "user_can_edit_access_levels": True,
        "inherited_access": {
            "access_level": "editor",
            "source": "system_default",
            "source_subject": None,
            "source_resource": "dashboard",
            "source_resource_id": None,
            "source_display_name": None,
        },
    }


@posthog_case(
    f"{SOURCE}::TestAccessControlResourceLevelAPI::test_change_rejected_if_not_org_admin", endpoint=ENDPOINT
)
def test_a_member_cannot_change_rules_of_another_users_dashboard(alice, emulator, expect_error):
    response = put(alice, dashboard_of(emulator), {"access_level": "editor"})
    expect_error(response, *PERMISSION_DENIED, NOT_MANAGER)


@posthog_case(
    f"{SOURCE}::TestAccessControlResourceLevelAPI::test_change_accepted_if_org_admin", endpoint=ENDPOINT
)
def test_an_org_admin_changes_rules(api, emulator):
    assert put(api, dashboard_of(emulator, SEED.alice_uuid), {"access_level": "editor"}).status_code == 200


@posthog_case(
    f"{SOURCE}::TestAccessControlResourceLevelAPI::test_change_accepted_if_creator_of_the_resource",
    endpoint=ENDPOINT,
)
def test_the_creator_changes_rules(alice, emulator):
    assert put(alice, dashboard_of(emulator, SEED.alice_uuid), {"access_level": "editor"}).status_code == 200


# -- TestAccessControlPermissions (notebooks there, dashboards here) ---------------------------


@posthog_case(
    f"{SOURCE}::TestAccessControlPermissions::test_default_allows_all_access", endpoint="dashboards/{id}/"
)
def test_by_default_members_view_and_edit(alice, emulator):
    assert view_and_edit(alice, dashboard_of(emulator)) == (200, 200)


@posthog_case(
    f"{SOURCE}::TestAccessControlPermissions::test_rejects_edit_access_with_resource_control",
    endpoint="dashboards/{id}/",
)
def test_a_viewer_default_blocks_edits(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator)
    emulator.state.add_access_control(dashboard, "viewer")
    assert alice.get(f"dashboards/{dashboard}/").status_code == 200
    expect_error(
        alice.patch(f"dashboards/{dashboard}/", {"name": "changed"}),
        *PERMISSION_DENIED,
        "You do not have editor access to this resource.",
    )


@posthog_case(
    f"{SOURCE}::TestAccessControlPermissions::test_rejects_view_access_if_not_creator",
    endpoint="dashboards/{id}/",
)
def test_a_none_default_blocks_everyone_but_the_creator(alice, bob, emulator, expect_error):
    dashboard = dashboard_of(emulator, SEED.alice_uuid)
    emulator.state.add_access_control(dashboard, "none")
    expect_error(
        bob.get(f"dashboards/{dashboard}/"),
        *PERMISSION_DENIED,
        "You do not have viewer access to this resource.",
    )
    assert bob.patch(f"dashboards/{dashboard}/", {"name": "x"}).status_code == 403
    assert view_and_edit(alice, dashboard) == (200, 200)


@posthog_case(
    f"{SOURCE}::TestAccessControlPermissions::test_rejects_all_access_without_project_access",
    endpoint="dashboards/{id}/",
)
def test_without_project_access_everything_is_refused(emulator, make_api, expect_error):
    # PostHog sets the project's rule to "none"; the emulator models no project rules, so a user
    # outside the organization (carol) stands in: the same check refuses with the same message.
    carol = make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid))
    dashboard = dashboard_of(emulator)
    for response in (
        carol.get(f"dashboards/{dashboard}/"),
        carol.patch(f"dashboards/{dashboard}/", {"name": "x"}),
        carol.post("dashboards/", {"name": "x"}),
    ):
        expect_error(response, *PERMISSION_DENIED, "You don't have access to the project.")


# -- TestAccessControlFiltering -------------------------------------------------------------


@posthog_case(
    f"{SOURCE}::TestAccessControlFiltering::test_does_not_list_notebooks_without_access",
    endpoint="dashboards/",
)
def test_the_list_hides_dashboards_without_access(alice, emulator):
    own = dashboard_of(emulator, SEED.alice_uuid)
    other = dashboard_of(emulator, SEED.bob_uuid)
    for dashboard in (own, other):
        emulator.state.add_access_control(dashboard, "none")
    listed = [d["id"] for d in alice.get("dashboards/").json()["results"]]
    assert own in listed
    assert other not in listed


@posthog_case(
    f"{SOURCE}::TestAccessControlFiltering::test_list_notebooks_with_explicit_access", endpoint="dashboards/"
)
def test_the_list_shows_dashboards_with_an_explicit_grant(alice, emulator):
    dashboard = dashboard_of(emulator, SEED.bob_uuid)
    emulator.state.add_access_control(dashboard, "none")
    emulator.state.add_access_control(dashboard, "viewer", organization_member=SEED.alice_membership_id)
    assert dashboard in [d["id"] for d in alice.get("dashboards/").json()["results"]]


# -- TestAccessControlProjectLevelAPI (the serializer's rules, on a dashboard) ----------------


def _project_level(name: str):
    return posthog_case(f"{SOURCE}::TestAccessControlProjectLevelAPI::{name}", endpoint=ENDPOINT)


def _refusal(posthog_test: str, body: dict, *error: Any, features: list[str] | None = None, id: str):
    """A case of ``test_a_rule_the_serializer_refuses``: PostHog's test, the body, the error."""
    return pytest.param(features, body, error, marks=_project_level(posthog_test), id=id)


@pytest.mark.parametrize(
    ("features", "body", "error"),
    [
        _refusal(
            "test_project_change_rejected_if_bad_access_level",
            {"access_level": "bad"},
            *INVALID_INPUT,
            "Invalid access level. Must be one of: none, viewer, editor, manager",
            "access_level",
            id="bad_access_level",
        ),
        # test_project_change_rejected_if_{member,role}_belongs_to_another_organization: one rule, two fields.
        *(
            _refusal(
                f"test_project_change_rejected_if_{subject}_belongs_to_another_organization",
                {"access_level": "viewer", field: of_another_organization},
                *INVALID_INPUT,
                f"The {subject} must belong to the same organization as this project.",
                id=f"{subject}_of_another_organization",
            )
            for subject, field, of_another_organization in (
                ("member", "organization_member", SEED.carol_membership_id),
                ("role", "role", SEED.other_role_id),
            )
        ),
        _refusal(
            "test_role_based_access_control_rejected_without_role_based_access_feature",
            {"access_level": "viewer", "role": SEED.role_id},
            *PERMISSION_DENIED,
            "Role-based access controls require the Role-based access feature.",
            features=["access_control"],
            id="role_without_the_role_based_access_feature",
        ),
    ],
)
def test_a_rule_the_serializer_refuses(api, emulator, expect_error, features, body, error):
    if features is not None:
        emulator.state.set_product_features(features)
    expect_error(put(api, dashboard_of(emulator), body), *error)


@posthog_case(
    f"{SOURCE}::TestAccessControlProjectLevelAPI::test_invalid_organization_member_id_error_message",
    endpoint=ENDPOINT,
)
def test_an_invalid_member_id_names_the_members_endpoint(api, emulator):
    response = put(
        api, dashboard_of(emulator), {"access_level": "viewer", "organization_member": "not-a-uuid"}
    )
    assert response.status_code == 400
    assert response.json()["attr"] == "organization_member"
    assert "/api/organizations/<organization_id>/members/" in response.json()["detail"]


@posthog_case(
    f"{SOURCE}::TestAccessControlProjectLevelAPI::test_project_removed_with_null", endpoint=ENDPOINT
)
def test_a_null_level_removes_the_rule(api, emulator):
    dashboard = dashboard_of(emulator)
    body = {"organization_member": SEED.bob_membership_id}
    assert put(api, dashboard, {**body, "access_level": "viewer"}).status_code == 200
    response = put(api, dashboard, {**body, "access_level": None})
    assert (response.status_code, response.content) == (204, b"")
    assert api.get(controls(dashboard)).json()["access_controls"] == []


# -- TestAccessControlScopeRequirements -----------------------------------------------------


@posthog_case(
    f"{SOURCE}::TestAccessControlScopeRequirements::test_notebook_access_controls_put_fails_with_only_read_scope",
    endpoint=ENDPOINT,
)
def test_put_needs_the_write_scope(emulator, make_api):
    reader = make_api(emulator.state.add_api_key(["access_control:read"]))
    dashboard = dashboard_of(emulator)
    assert reader.get(controls(dashboard)).status_code == 200
    assert "access_control:write" in detail(put(reader, dashboard, {"access_level": "viewer"}), 403)


@posthog_case(
    f"{SOURCE}::TestAccessControlScopeRequirements::test_notebook_access_controls_put_succeeds_with_write_scope",
    endpoint=ENDPOINT,
)
def test_put_needs_only_the_write_scope(emulator, make_api):
    writer = make_api(emulator.state.add_api_key(["access_control:write"]))
    assert put(writer, dashboard_of(emulator), {"access_level": "viewer"}).status_code == 200


# -- Collaborators and access control (ee/api/test/test_dashboard_collaborators.py) -------------


@posthog_case(
    f"{COLLABORATORS_SOURCE}::test_cannot_add_collaborator_to_unrestricted_dashboard_as_creator",
    endpoint="dashboards/{id}/collaborators/",
)
def test_without_access_control_a_restricted_dashboard_is_lowest_level(alice, emulator, expect_error):
    # INFERRED from the same rule: the effective level is 21 without the organization's feature.
    dashboard = dashboard_of(emulator, SEED.alice_uuid, restriction_level=37)
    emulator.state.set_product_features([])
    expect_error(
        alice.post(f"dashboards/{dashboard}/collaborators/", {"user_uuid": SEED.bob_uuid, "level": 37}),
        *INVALID_INPUT,
        "Cannot add collaborators to a dashboard on the lowest restriction level.",
    )


@posthog_case(
    f"{COLLABORATORS_SOURCE}::test_cannot_remove_collaborator_from_unrestricted_dashboard_as_creator",
    endpoint="dashboards/{id}/collaborators/{user_uuid}/",
)
def test_without_access_control_collaborators_cannot_be_removed(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator, SEED.alice_uuid, restriction_level=37)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid)
    emulator.state.set_access_control(False)
    expect_error(
        alice.delete(f"dashboards/{dashboard}/collaborators/{SEED.bob_uuid}/"),
        *INVALID_INPUT,
        "Cannot remove collaborators from a dashboard on the lowest restriction level.",
    )


# -- Organization members -------------------------------------------------------------------


@posthog_case(
    f"{MEMBERS_SOURCE}::TestOrganizationMembersAPI::test_list_organization_members",
    endpoint="organizations/{id}/members/",
)
def test_members_are_listed_with_membership_ids(emulator):
    response = requests.get(
        f"{emulator.url}/api/organizations/@current/members/",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert {member["user"]["email"] for member in results} == {
        "hedgy@example.com",
        "alice@example.com",
        "bob@example.com",
    }
    alice = next(member for member in results if member["user"]["uuid"] == SEED.alice_uuid)
    assert alice["id"] == SEED.alice_membership_id
    assert alice["user"]["first_name"] == "Alice"
    assert set(alice) == {
        "id",
        "user",
        "level",
        "joined_at",
        "updated_at",
        "is_2fa_enabled",
        "has_social_auth",
        "last_login",
    }


@posthog_case(
    f"{MEMBERS_SOURCE}::TestOrganizationMembersAPI::test_cant_list_members_for_an_alien_organization",
    endpoint="organizations/{id}/members/",
)
def test_members_of_another_organization_are_refused(emulator, expect_error):
    response = requests.get(
        f"{emulator.url}/api/organizations/{SEED.other_organization_id}/members/",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    expect_error(
        response,
        *PERMISSION_DENIED,
        "You do not have permission to perform this action.",
    )
