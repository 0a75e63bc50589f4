"""Dashboards list, create, update and soft delete, from PostHog's
``posthog/api/test/dashboards/test_dashboard.py`` (``TestDashboard``, whose organization has the
tagging and advanced permissions features, as the emulator's seeded one has).

Insights are not part of the emulated API: where PostHog's test adds insights to a dashboard, the
case uses a dashboard seeded with tiles.
"""

from __future__ import annotations

from typing import Any

import pytest
from phenv_emulator import SEED

from tests.conformance.payloads import add_team
from tests.helpers.conformance import posthog_case

SOURCE = "posthog/api/test/dashboards/test_dashboard.py"
COLLECTION = "dashboards/"
DETAIL = "dashboards/{id}/"
#: A team of the seeded organization in a project of its own.
OTHER_PROJECT_TEAM = 40


def create(api, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = api.post(COLLECTION, body)
    assert response.status_code == status, response.text
    return response.json()


def listed(api, **params: Any) -> list[dict[str, Any]]:
    response = api.get(COLLECTION, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["results"]


@posthog_case(f"{SOURCE}::test_retrieve_dashboard_list", endpoint=COLLECTION)
def test_list_is_ordered_by_name(api):
    names = ["a dashboard", "b dashboard"]
    for name in reversed(names):
        create(api, {"name": name})
    assert [d["name"] for d in listed(api) if d["name"] in names] == names


@posthog_case(f"{SOURCE}::test_retrieve_dashboard_list_includes_other_environments", endpoint=COLLECTION)
def test_list_is_project_wide(api, emulator, make_api):
    add_team(emulator, OTHER_PROJECT_TEAM, project_id=OTHER_PROJECT_TEAM)
    a = create(api, {"name": "A"})["id"]
    b = create(make_api(team=SEED.second_environment_id), {"name": "B"})["id"]
    c = create(make_api(team=OTHER_PROJECT_TEAM), {"name": "C"})["id"]
    for client in (
        api,
        make_api(prefix="environments"),
        make_api(team=SEED.second_environment_id, prefix="environments"),
    ):
        ids = {d["id"] for d in listed(client)}
        assert {a, b} <= ids
        assert c not in ids


@posthog_case(f"{SOURCE}::test_list_filter_by_tag", endpoint=COLLECTION)
def test_list_filters_by_a_tag(api):
    create(api, {"name": "tagged", "tags": ["tag"]})
    create(api, {"name": "also tagged", "tags": ["tag2"]})
    create(api, {"name": "not tagged"})
    page = api.get(COLLECTION, params={"tags": ["tag"]}).json()
    assert page["count"] == 1
    assert page["results"][0]["name"] == "tagged"


@posthog_case(f"{SOURCE}::test_list_filter_by_multiple_tags", endpoint=COLLECTION)
def test_list_filters_by_any_of_several_tags(api):
    create(api, {"name": "tagged", "tags": ["tag"]})
    create(api, {"name": "also tagged", "tags": ["tag2"]})
    create(api, {"name": "not tagged"})
    create(api, {"name": "not with the right tag", "tags": ["wrong-tag"]})
    page = api.get(COLLECTION, params={"tags": ["tag", "tag2"]}).json()
    assert page["count"] == 2
    assert {d["name"] for d in page["results"]} == {"tagged", "also tagged"}


@posthog_case(f"{SOURCE}::test_listing_dashboards_does_not_include_tiles", endpoint=COLLECTION)
def test_list_has_no_tiles(api):
    assert api.get(f"dashboards/{SEED.web_dashboard_id}").json()["tiles"]
    for dashboard in listed(api):
        assert dashboard.keys() & {"tiles", "items"} == set()


@posthog_case(f"{SOURCE}::test_retrieve_dashboard", endpoint=DETAIL)
def test_retrieve_shows_creator_and_levels(api, emulator):
    dashboard = emulator.state.add_dashboard("private dashboard", created_by=SEED.owner_uuid)
    body = api.get(f"dashboards/{dashboard['id']}").json()
    owner = emulator.state.users[SEED.owner_uuid]
    assert (body["name"], body["description"], body["creation_mode"]) == ("private dashboard", "", "default")
    assert (body["created_by"]["distinct_id"], body["created_by"]["first_name"]) == (
        owner["distinct_id"],
        owner["first_name"],
    )
    assert (body["restriction_level"], body["effective_privilege_level"]) == (21, 37)


@posthog_case(f"{SOURCE}::test_create_basic_dashboard", endpoint=COLLECTION)
def test_create_has_the_defaults(api):
    body = create(api, {"name": "My new dashboard", "description": ""})
    assert (body["name"], body["description"], body["tags"], body["creation_mode"]) == (
        "My new dashboard",
        "",
        [],
        "default",
    )
    assert (body["restriction_level"], body["effective_privilege_level"]) == (21, 37)
    assert api.get(f"dashboards/{body['id']}").json()["name"] == "My new dashboard"


@posthog_case(f"{SOURCE}::test_update_dashboard", endpoint=DETAIL)
def test_update_ignores_creation_mode(api, emulator):
    dashboard = emulator.state.add_dashboard("private dashboard", creation_mode="template")
    response = api.patch(
        f"dashboards/{dashboard['id']}", {"name": "dashboard new name", "creation_mode": "duplicate"}
    )
    body = response.json()
    assert (body["name"], body["creation_mode"]) == ("dashboard new name", "template")
    assert (body["restriction_level"], body["effective_privilege_level"]) == (21, 37)


@posthog_case(f"{SOURCE}::test_cannot_update_dashboard_with_invalid_filters", endpoint=DETAIL)
def test_update_refuses_filters_that_are_not_an_object(api, emulator):
    dashboard = emulator.state.add_dashboard("private dashboard", creation_mode="template")
    filters = [{"key": "brand", "value": ["1"], "operator": "exact", "type": "event"}]
    assert api.patch(f"dashboards/{dashboard['id']}", {"filters": filters}).status_code == 400
    assert api.get(f"dashboards/{dashboard['id']}").json()["filters"] == {}


@posthog_case(f"{SOURCE}::test_dashboard_endpoints", endpoint=DETAIL)
def test_soft_delete_then_restore(api):
    dashboard = create(api, {"name": "Default", "pinned": "true"})
    assert (dashboard["name"], dashboard["creation_mode"], dashboard["pinned"]) == (
        "Default",
        "default",
        True,
    )
    path = f"dashboards/{dashboard['id']}"
    assert dashboard["id"] in {d["id"] for d in listed(api)}
    assert api.patch(path, {"deleted": True}).status_code == 200
    assert api.get(path).status_code == 404
    assert dashboard["id"] not in {d["id"] for d in listed(api)}
    assert api.patch(path, {"deleted": False}).status_code == 200
    assert dashboard["id"] in {d["id"] for d in listed(api)}
    assert api.get(path).status_code == 200


@posthog_case(f"{SOURCE}::test_hard_delete_is_forbidden", endpoint=DETAIL)
def test_delete_is_not_allowed(api):
    path = f"dashboards/{create(api, {'name': 'dashboard'})['id']}"
    assert api.delete(path).status_code == 405
    assert api.get(path).status_code == 200


@posthog_case(f"{SOURCE}::test_soft_delete_can_be_reversed_with_patch", endpoint=DETAIL)
def test_restore_keeps_the_tiles(api):
    path = f"dashboards/{SEED.web_dashboard_id}"
    tiles = api.get(path).json()["tiles"]
    assert len(tiles) == 2
    assert api.patch(path, {"deleted": True}).status_code == 200
    assert api.patch(path, {"deleted": False}).status_code == 200
    assert api.get(path).json()["tiles"] == tiles


@posthog_case(f"{SOURCE}::test_dashboard_from_template", endpoint=COLLECTION)
def test_create_from_a_template(api):
    body = create(api, {"name": "another", "use_template": "DEFAULT_APP"})
    assert body["creation_mode"] == "template"
    assert len(body["tiles"]) > 1


@posthog_case(f"{SOURCE}::test_dashboard_creation_validation", endpoint=COLLECTION)
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"use_template": "DEFAULT_APP", "use_dashboard": SEED.product_dashboard_id}, 400),
        ({"use_template": "DEFAULT_APP", "use_dashboard": ""}, 400),
        ({"use_template": ""}, 201),
        ({"use_template": "DEFAULT_APP"}, 201),
        ({"use_dashboard": SEED.product_dashboard_id}, 201),
        ({"use_template": "", "use_dashboard": SEED.product_dashboard_id}, 201),
        ({}, 201),
    ],
)
def test_create_takes_a_template_or_a_dashboard_not_both(api, body, status):
    create(api, {"name": "another", **body}, status=status)


@posthog_case(f"{SOURCE}::test_dashboard_creation_mode", endpoint=COLLECTION)
@pytest.mark.parametrize(
    ("origin", "mode"),
    [
        ({"use_template": "DEFAULT_APP"}, "template"),
        ({"use_dashboard": SEED.product_dashboard_id}, "duplicate"),
        ({}, "default"),
    ],
)
def test_creation_mode_says_where_it_came_from(api, origin, mode):
    assert create(api, {"name": "another", **origin})["creation_mode"] == mode


@posthog_case(f"{SOURCE}::test_dashboard_duplication", endpoint=COLLECTION)
def test_duplication_makes_new_tiles(api):
    source = api.get(f"dashboards/{SEED.web_dashboard_id}").json()
    copy = create(api, {"name": "another", "use_dashboard": SEED.web_dashboard_id})
    assert copy["creation_mode"] == "duplicate"
    assert len(copy["tiles"]) == len(source["tiles"])
    assert {tile["id"] for tile in copy["tiles"]}.isdisjoint(tile["id"] for tile in source["tiles"])


@posthog_case(f"{SOURCE}::test_invalid_dashboard_duplication", endpoint=COLLECTION)
def test_duplicating_an_unknown_dashboard_is_refused(api):
    create(api, {"name": "another", "use_dashboard": 12345}, status=400)


@posthog_case(f"{SOURCE}::test_duplication_fail_for_different_team", endpoint=COLLECTION)
def test_duplicating_a_dashboard_of_another_project_is_refused(api, emulator):
    add_team(emulator, OTHER_PROJECT_TEAM, project_id=OTHER_PROJECT_TEAM)
    other = emulator.state.add_dashboard("Another Team's Dashboard", team_id=OTHER_PROJECT_TEAM)
    create(api, {"name": "another", "use_dashboard": other["id"]}, status=400)


@posthog_case(f"{SOURCE}::test_retrieve_dashboard_different_team", endpoint=DETAIL)
def test_retrieve_in_another_organization_is_forbidden(make_api):
    other = make_api(team=SEED.other_team_id)
    assert other.get(f"dashboards/{SEED.other_organization_dashboard_id}").status_code == 403
