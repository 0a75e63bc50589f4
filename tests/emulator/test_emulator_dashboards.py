"""Dashboards and collaborators (docs/posthog-api.md §11 items 40-56)."""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from tests.helpers.api import INVALID_INPUT, NOT_FOUND, PERMISSION_DENIED

RESTRICTED = f"dashboards/{SEED.restricted_dashboard_id}/collaborators/"
OPEN = f"dashboards/{SEED.product_dashboard_id}/collaborators/"


def names(page):
    return [dashboard["name"] for dashboard in page["results"]]


def test_list_is_project_wide_pinned_first_then_by_name_without_tiles(api, make_api):  # 40, 42
    page = api.get("dashboards/").json()
    assert names(page) == ["Web analytics", "Board metrics", "Product metrics", "Staging checks"]
    assert all("tiles" not in dashboard for dashboard in page["results"])
    assert page["results"][0]["created_by"]["uuid"] == SEED.owner_uuid
    assert make_api(team=SEED.second_environment_id).get("dashboards/").json() == page


def test_list_hides_deleted_and_unlisted_and_does_not_rank_a_search(api, emulator, expect_error):  # 40, §7.1
    emulator.state.add_dashboard("Old", deleted=True)
    emulator.state.add_dashboard("Hidden", creation_mode="unlisted")
    everything = names(api.get("dashboards/").json())
    assert "Old" not in everything
    assert "Hidden" not in everything
    # The emulator does not play PostHog's trigram ranking: every dashboard comes back, the client
    # matches names itself. Only PostHog's length limit is checked.
    assert names(api.get("dashboards/", params={"search": "METRICS"}).json()) == everything
    expect_error(
        api.get("dashboards/", params={"search": "x" * 201}),
        *INVALID_INPUT,
        "Search query must be 200 characters or fewer.",
        "search",
    )


def test_list_pagination_links(api):  # 41
    first = api.get("dashboards/", params={"limit": 2, "search": "s"}).json()
    assert first["count"] == 4
    assert first["next"].endswith("/api/projects/1/dashboards/?limit=2&offset=2&search=s")
    second = api.session.get(first["next"]).json()
    assert second["next"] is None
    assert second["previous"].endswith("/api/projects/1/dashboards/?limit=2&search=s")


@pytest.mark.parametrize("body", [{}, {"name": "x"}])
def test_create_defaults(api, body):  # 43
    response = api.post("dashboards/", body)
    assert response.status_code == 201
    created = response.json()
    expected = {
        "name": body.get("name"),
        "creation_mode": "default",
        "restriction_level": 21,
        "effective_privilege_level": 37,
        "tags": [],
        "tiles": [],
        "deleted": False,
        "team_id": SEED.team_id,
    }
    assert {key: created[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("body", "code", "detail", "attr"),
    [
        (
            {"use_template": "DEFAULT_APP", "use_dashboard": 1},
            "invalid_input",
            "`use_dashboard` and `use_template` cannot be used together",
            None,
        ),
        (
            {"use_dashboard": SEED.other_organization_dashboard_id},
            "invalid_input",
            "Invalid value provided",
            "use_dashboard",
        ),
        ({"use_template": "NOPE"}, "invalid_input", "Invalid template provided: NOPE", "use_template"),
        ({"restriction_level": 30}, "invalid_choice", '"30" is not a valid choice.', "restriction_level"),
        ({"filters": "x"}, "invalid_input", "Filters must be a dictionary", None),
    ],
)
def test_create_validation(api, expect_error, body, code, detail, attr):  # 44-47
    expect_error(api.post("dashboards/", body), 400, "validation_error", code, detail, attr)
    assert api.get("dashboards/").json()["count"] == 4  # nothing was created


def test_create_from_dashboard_or_template(api):  # 45, 46, §7.2
    copy = api.post("dashboards/", {"name": "Copy", "use_dashboard": SEED.web_dashboard_id}).json()
    assert copy["creation_mode"] == "duplicate"
    assert [tile["insight"]["name"] for tile in copy["tiles"]] == ["Pageviews", "Visitors"]
    template = api.post("dashboards/", {"use_template": "WEBSITE_TRAFFIC"}).json()
    assert template["creation_mode"] == "template"
    assert template["tiles"]
    assert api.post("dashboards/", {"filters": []}).status_code == 201


def test_delete_is_405_and_patch_deleted_soft_deletes(api, expect_error):  # 48
    path = f"dashboards/{SEED.product_dashboard_id}/"
    refused = api.delete(path)
    assert (refused.status_code, refused.content) == (405, b"")
    patched = api.patch(path, {"deleted": True, "creation_mode": "template"})
    assert patched.status_code == 200
    assert patched.json()["creation_mode"] == "default"
    expect_error(api.get(path), *NOT_FOUND, "Not found.")


def test_non_editor_cannot_patch_a_restricted_dashboard(emulator, make_api, expect_error):
    bob = make_api(emulator.state.add_api_key(["*"], user_uuid=SEED.bob_uuid))
    expect_error(
        bob.patch(f"dashboards/{SEED.restricted_dashboard_id}/", {"name": "mine"}),
        *PERMISSION_DENIED,
        "You don't have edit permissions for this dashboard.",
    )


def test_collaborators_list_is_a_bare_array(api, expect_error):  # 49
    [collaborator] = api.get(RESTRICTED).json()
    assert set(collaborator) == {"id", "dashboard_id", "user", "level", "added_at", "updated_at"}
    assert (collaborator["user"]["uuid"], collaborator["level"]) == (SEED.alice_uuid, 37)
    expect_error(api.get("dashboards/999/collaborators/"), *NOT_FOUND, "Dashboard not found.")


def test_add_collaborator(api):  # 51
    response = api.post(RESTRICTED, {"user_uuid": SEED.bob_uuid, "level": 37})
    assert response.status_code == 201
    assert (response.json()["level"], response.json()["dashboard_id"]) == (37, SEED.restricted_dashboard_id)
    assert len(api.get(RESTRICTED).json()) == 2


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        (
            OPEN,
            {"user_uuid": SEED.bob_uuid, "level": 37},
            "Cannot add collaborators to a dashboard on the lowest restriction level.",
        ),
        (
            RESTRICTED,
            {"user_uuid": SEED.bob_uuid, "level": 21},
            "Only edit access can be explicitly specified currently.",
        ),
        (
            RESTRICTED,
            {"user_uuid": "01900000-0000-7000-8000-00000000dead", "level": 37},
            "User does not exist.",
        ),
        (
            RESTRICTED,
            {"user_uuid": SEED.carol_uuid, "level": 37},
            "Cannot add collaborators that have no access to the project.",
        ),
        (
            RESTRICTED,
            {"user_uuid": SEED.owner_uuid, "level": 37},
            "Cannot add collaborators that already have inherent access "
            "(the dashboard owner or a project admins).",
        ),
        (RESTRICTED, {"user_uuid": SEED.alice_uuid, "level": 37}, "User already is a collaborator."),
    ],
)
def test_add_collaborator_rules(api, expect_error, path, body, detail):  # 50-53
    expect_error(api.post(path, body), *INVALID_INPUT, detail)


def test_add_collaborator_field_validation(api, expect_error):
    expect_error(
        api.post(RESTRICTED, {"level": 37}),
        400,
        "validation_error",
        "required",
        "This field is required.",
        "user_uuid",
    )
    expect_error(
        api.post(RESTRICTED, {"user_uuid": "nope", "level": 37}),
        *INVALID_INPUT,
        "Must be a valid UUID.",
        "user_uuid",
    )


def test_access_control_off_makes_every_dashboard_lowest_level(api, emulator, expect_error):
    emulator.state.set_access_control(False)
    expect_error(
        api.post(RESTRICTED, {"user_uuid": SEED.bob_uuid, "level": 37}),
        *INVALID_INPUT,
        "Cannot add collaborators to a dashboard on the lowest restriction level.",
    )


def test_non_editor_cannot_change_collaborators(emulator, make_api, expect_error):  # 54
    bob = make_api(emulator.state.add_api_key(["*"], user_uuid=SEED.bob_uuid))
    assert bob.get(RESTRICTED).status_code == 200  # any project member may list
    for response in (
        bob.post(RESTRICTED, {"user_uuid": SEED.bob_uuid, "level": 37}),
        bob.delete(RESTRICTED + SEED.alice_uuid),
    ):
        expect_error(
            response,
            *PERMISSION_DENIED,
            "You don't have edit permissions for this dashboard.",
        )
    alice = make_api(emulator.state.add_api_key(["*"], user_uuid=SEED.alice_uuid))
    assert alice.post(RESTRICTED, {"user_uuid": SEED.bob_uuid, "level": 37}).status_code == 201


def test_remove_collaborator(api, emulator, expect_error):  # 55, §7.3
    assert api.delete(RESTRICTED + SEED.alice_uuid + "/").status_code == 204
    assert api.get(RESTRICTED).json() == []
    expect_error(api.delete(OPEN + SEED.bob_uuid), *NOT_FOUND, "Not found.")
    emulator.state.add_collaborator(SEED.product_dashboard_id, SEED.bob_uuid, level=21)
    expect_error(
        api.delete(OPEN + SEED.bob_uuid),
        *INVALID_INPUT,
        "Cannot remove collaborators from a dashboard on the lowest restriction level.",
    )


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_collaborator_update_is_not_allowed(api, expect_error, method):  # 55
    # No action is mapped to the method, so a personal API key gets APIScopePermission's 403 (§7.3).
    response = api.request(method, RESTRICTED + SEED.alice_uuid, json={"level": 21})
    expect_error(
        response,
        *PERMISSION_DENIED,
        "This action does not support personal API key access",
    )
