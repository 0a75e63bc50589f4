"""Dashboard collaborators, from PostHog's ``ee/api/test/test_dashboard_collaborators.py``.

PostHog's test user is a plain member of a licensed organization and the dashboard's creator; here
that is ``alice``, with a key of her own, on a dashboard she created. ``bob`` is another member,
the key owner (``hedgy``) an organization admin, and ``carol`` is in another organization only.
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from tests.helpers.api import INVALID_INPUT, PERMISSION_DENIED
from tests.helpers.conformance import posthog_case

SOURCE = "ee/api/test/test_dashboard_collaborators.py"
COLLECTION = "dashboards/{id}/collaborators/"
DETAIL = "dashboards/{id}/collaborators/{user_uuid}/"
EVERYONE, COLLABORATORS_ONLY = 21, 37  # restriction levels; also privilege levels can view / can edit
NO_EDIT_RIGHTS = "You don't have edit permissions for this dashboard."


def dashboard_of(emulator, restriction_level: int, creator: str | None = SEED.alice_uuid) -> int:
    """PostHog's ``Test Insights 9001`` dashboard; ``creator=None`` leaves it without a creator."""
    dashboard = emulator.state.add_dashboard("Test Insights 9001", restriction_level=restriction_level)
    with emulator.state.lock:
        dashboard["created_by"] = creator
    return dashboard["id"]


def collaborators(dashboard_id: int) -> str:
    return f"dashboards/{dashboard_id}/collaborators/"


@posthog_case(f"{SOURCE}::test_list_collaborators_as_person_without_edit_access", endpoint=COLLECTION)
def test_anyone_in_the_project_lists_every_privilege(alice, emulator):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY, creator=None)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid, EVERYONE)
    emulator.state.add_collaborator(dashboard, SEED.owner_uuid, COLLABORATORS_ONLY)
    response = alice.get(collaborators(dashboard))
    assert response.status_code == 200
    entries = sorted(response.json(), key=lambda entry: entry["user"]["email"])
    assert [(entry["user"]["email"], entry["level"]) for entry in entries] == [
        ("bob@example.com", EVERYONE),
        ("hedgy@example.com", COLLABORATORS_ONLY),
    ]


@pytest.mark.parametrize(
    ("restriction_level", "user_uuid", "detail"),
    [
        pytest.param(
            EVERYONE,
            SEED.bob_uuid,
            "Cannot add collaborators to a dashboard on the lowest restriction level.",
            marks=posthog_case(
                f"{SOURCE}::test_cannot_add_collaborator_to_unrestricted_dashboard_as_creator",
                endpoint=COLLECTION,
            ),
            id="no_collaborators_on_the_lowest_restriction_level",
        ),
        pytest.param(
            COLLABORATORS_ONLY,
            SEED.alice_uuid,
            "Cannot add collaborators that already have inherent access "
            "(the dashboard owner or a project admins).",
            marks=posthog_case(
                f"{SOURCE}::test_cannot_add_yourself_to_restricted_dashboard_as_creator", endpoint=COLLECTION
            ),
            id="the_creator_cannot_add_themselves",
        ),
        pytest.param(
            COLLABORATORS_ONLY,
            SEED.carol_uuid,
            "Cannot add collaborators that have no access to the project.",
            marks=posthog_case(
                f"{SOURCE}::test_cannot_add_collaborator_from_other_org_to_edit_restricted_dashboard_as_creator",
                endpoint=COLLECTION,
            ),
            id="a_user_outside_the_project_cannot_be_added",
        ),
    ],
)
def test_the_creator_cannot_add(alice, emulator, expect_error, restriction_level, user_uuid, detail):
    dashboard = dashboard_of(emulator, restriction_level)
    response = alice.post(collaborators(dashboard), {"user_uuid": user_uuid, "level": COLLABORATORS_ONLY})
    expect_error(response, *INVALID_INPUT, detail)


@posthog_case(
    f"{SOURCE}::test_can_add_collaborator_to_edit_restricted_dashboard_as_creator", endpoint=COLLECTION
)
def test_the_creator_adds_an_editor(alice, emulator):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY)
    response = alice.post(collaborators(dashboard), {"user_uuid": SEED.bob_uuid, "level": COLLABORATORS_ONLY})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["dashboard_id"], body["user"]["email"], body["level"]) == (
        dashboard,
        "bob@example.com",
        COLLABORATORS_ONLY,
    )


@posthog_case(
    f"{SOURCE}::test_cannot_add_collaborator_to_edit_restricted_dashboard_as_other_user", endpoint=COLLECTION
)
def test_a_member_without_edit_rights_cannot_add(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY, creator=None)
    response = alice.post(collaborators(dashboard), {"user_uuid": SEED.bob_uuid, "level": COLLABORATORS_ONLY})
    expect_error(response, *PERMISSION_DENIED, NO_EDIT_RIGHTS)


@posthog_case(
    f"{SOURCE}::test_cannot_add_collaborator_to_other_org_to_edit_restricted_dashboard_as_creator",
    endpoint=COLLECTION,
)
def test_a_caller_outside_the_organization_is_forbidden(emulator, make_api, expect_error):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY)
    carol = make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid))
    response = carol.post(collaborators(dashboard), {"user_uuid": SEED.bob_uuid, "level": COLLABORATORS_ONLY})
    expect_error(response, *PERMISSION_DENIED, "You don't have access to the project.")


@posthog_case(f"{SOURCE}::test_cannot_update_existing_collaborator", endpoint=DETAIL)
def test_a_collaborator_cannot_be_updated(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator, EVERYONE)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid, COLLABORATORS_ONLY)
    response = alice.patch(collaborators(dashboard) + SEED.bob_uuid, {"level": EVERYONE})
    # PostHog's test logs in and gets DRF's 405. A personal API key is stopped earlier: the viewset
    # maps no action to PATCH on a collaborator, so APIScopePermission derives no scope
    # (posthog/permissions.py, ScopeBasePermission._get_required_scopes).
    expect_error(
        response,
        *PERMISSION_DENIED,
        "This action does not support personal API key access",
    )


@posthog_case(
    f"{SOURCE}::test_cannot_remove_collaborator_from_unrestricted_dashboard_as_creator", endpoint=DETAIL
)
def test_no_removal_on_the_lowest_restriction_level(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator, EVERYONE)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid, COLLABORATORS_ONLY)
    expect_error(
        alice.delete(collaborators(dashboard) + SEED.bob_uuid),
        *INVALID_INPUT,
        "Cannot remove collaborators from a dashboard on the lowest restriction level.",
    )


@posthog_case(f"{SOURCE}::test_can_remove_collaborator_from_restricted_dashboard_as_creator", endpoint=DETAIL)
def test_the_creator_removes_a_collaborator(alice, emulator):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid, COLLABORATORS_ONLY)
    response = alice.delete(collaborators(dashboard) + SEED.bob_uuid)
    assert (response.status_code, response.content) == (204, b"")
    assert alice.get(collaborators(dashboard)).json() == []


@posthog_case(
    f"{SOURCE}::test_cannot_remove_collaborator_from_restricted_dashboard_as_other_user", endpoint=DETAIL
)
def test_a_member_without_edit_rights_cannot_remove(alice, emulator, expect_error):
    dashboard = dashboard_of(emulator, COLLABORATORS_ONLY, creator=None)
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid, COLLABORATORS_ONLY)
    expect_error(
        alice.delete(collaborators(dashboard) + SEED.bob_uuid),
        *PERMISSION_DENIED,
        NO_EDIT_RIGHTS,
    )
