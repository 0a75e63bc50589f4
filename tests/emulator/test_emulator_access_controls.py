"""Dashboard access controls, the project and organization records, members, and their control
endpoints (docs/posthog-api.md §7.4, §7.5), over HTTP."""

from __future__ import annotations

import pytest
import requests
from phenv_emulator import SEED

NOT_MANAGER = "Must be manager to modify dashboard permissions."
NO_EDITOR = "You do not have editor access to this resource."
NO_VIEWER = "You do not have viewer access to this resource."


@pytest.fixture
def org(emulator):
    """GET below ``/api/organizations/`` with the seeded key (or another)."""

    def get(path: str, key: str | None = None, **params):
        return requests.get(
            f"{emulator.url}/api/organizations/{path}",
            headers={"Authorization": f"Bearer {key or emulator.api_key}"},
            params=params,
            timeout=10,
        )

    return get


def control(emulator, path: str, body):
    return requests.post(f"{emulator.url}/_emulator/{path}", json=body, timeout=10)


def put(client, dashboard_id: int, body):
    return client.request("PUT", f"dashboards/{dashboard_id}/access_controls/", json=body)


def denied(expect_error, response, detail: str) -> None:
    expect_error(response, 403, "authentication_error", "permission_denied", detail)


def test_project_record_under_both_prefixes(api, make_api, emulator, expect_error):
    expected = {"id": 1, "organization": SEED.organization_id, "name": "Hedgebox (production)"}
    for client in (api, make_api(team="@current"), make_api(prefix="environments")):
        body = client.get("").json()
        assert {key: body[key] for key in expected} == expected
    expect_error(
        make_api(team=SEED.second_environment_id).get(""), 404, "invalid_request", "not_found", "Not found."
    )
    reader = make_api(emulator.state.add_api_key(["dashboard:read"]))
    denied(expect_error, reader.get(""), "API key missing required scope 'project:read'")
    assert make_api(emulator.state.add_api_key(["project:read"])).get("").status_code == 200


def test_organization_record_features_and_errors(org, emulator, expect_error):
    body = org("@current/").json()
    assert (body["id"], body["name"], body["slug"], body["membership_level"]) == (
        SEED.organization_id,
        "Hedgebox Inc.",
        "hedgebox",
        8,
    )
    assert body["available_product_features"] == [
        {"key": "access_control", "name": "Access control"},
        {"key": "role_based_access", "name": "Role-based access"},
    ]
    assert org(f"{SEED.organization_id}").json() == body
    for bad in ("not-a-uuid/", "01900000-0000-7000-8000-0000000000ee/"):
        expect_error(org(bad), 404, "invalid_request", "not_found", "Organization not found.")
    denied(
        expect_error,
        org(f"{SEED.other_organization_id}/"),
        "You do not have permission to perform this action.",
    )
    denied(
        expect_error,
        org("@current/", emulator.state.add_api_key(["dashboard:read"])),
        "API key missing required scope 'organization:read'",
    )
    denied(
        expect_error,
        org("@current/", emulator.state.add_api_key(["*"], scoped_teams=[SEED.team_id])),
        "API key with scoped projects are only supported on project-based views.",
    )
    emulator.state.set_switches(["no-access-control"])
    keys = [feature["key"] for feature in org("@current/").json()["available_product_features"]]
    assert keys == ["role_based_access"]


def test_members_pages_and_the_members_control_endpoint(org, emulator, expect_error):
    added = control(emulator, "members", {"count": 120})
    assert added.status_code == 201
    new = added.json()["members"]
    assert len(new) == 120 and new[0]["email"].endswith("@example.com")
    first = org("@current/members/").json()
    assert (first["count"], len(first["results"]), first["previous"]) == (123, 100, None)
    assert first["next"].endswith("/api/organizations/@current/members/?limit=100&offset=100")
    assert first["results"][0]["id"] == new[-1]["id"]  # newest member first
    second = requests.get(
        first["next"], headers={"Authorization": f"Bearer {emulator.api_key}"}, timeout=10
    ).json()
    assert len(second["results"]) == 23 and second["next"] is None
    everyone = first["results"] + second["results"]
    assert len({member["id"] for member in everyone}) == 123
    assert all(member["id"] != member["user"]["uuid"] for member in everyone)
    assert (
        org("@current/members/", email="bob@example.com").json()["results"][0]["id"] == SEED.bob_membership_id
    )
    denied(
        expect_error,
        org("@current/members/", emulator.state.add_api_key(["organization:read"])),
        "API key missing required scope 'organization_member:read'",
    )
    assert control(emulator, "members", {"count": "x"}).status_code == 400


def test_membership_control_endpoint_makes_the_seeded_key_a_plain_member(api, org, emulator, expect_error):
    dashboard = emulator.state.add_dashboard("Alice's", created_by=SEED.alice_uuid)["id"]
    assert put(api, dashboard, {"access_level": "viewer"}).status_code == 200
    assert control(emulator, "membership", {"level": 1}).status_code == 204
    assert org("@current/").json()["membership_level"] == 1
    denied(
        expect_error, put(api, dashboard, {"access_level": "editor"}), NO_EDITOR
    )  # viewer by the default rule
    assert control(emulator, "membership", {"level": 8}).status_code == 204
    assert put(api, dashboard, {"access_level": "editor"}).status_code == 200
    assert control(emulator, "membership", {"level": 3}).status_code == 400
    members = {
        m["id"]: m["level"]
        for m in requests.get(f"{emulator.url}/_emulator/state", timeout=10).json()["organizations"][0][
            "members"
        ]
    }
    assert members[SEED.owner_membership_id] == 8


def test_level_matrix_for_a_member(bob, emulator, expect_error):
    """§7.4's table: none, viewer, editor, manager on a v2 dashboard bob did not create."""
    dashboard = emulator.state.add_dashboard("Shared")["id"]
    path = f"dashboards/{dashboard}/"

    def as_bob(level):
        emulator.state.add_access_control(dashboard, level, organization_member=SEED.bob_membership_id)
        return bob.get(path), bob.patch(path, {"name": "x"}), put(bob, dashboard, {"access_level": "viewer"})

    got, patched, ruled = as_bob("none")
    denied(expect_error, got, NO_VIEWER)
    denied(expect_error, patched, NO_EDITOR)
    denied(expect_error, ruled, NO_EDITOR)
    assert dashboard not in [d["id"] for d in bob.get("dashboards/").json()["results"]]
    got, patched, ruled = as_bob("viewer")
    assert got.json()["user_access_level"] == "viewer"
    denied(expect_error, patched, NO_EDITOR)
    denied(expect_error, ruled, NO_EDITOR)
    got, patched, ruled = as_bob("editor")
    assert (got.status_code, patched.status_code) == (200, 200)
    denied(expect_error, ruled, NOT_MANAGER)
    got, patched, ruled = as_bob("manager")
    assert (got.json()["user_access_level"], patched.status_code, ruled.status_code) == ("manager", 200, 200)
    # The explicit member rule wins over the default rule bob's PUT just wrote (viewer).
    assert bob.get(f"{path}access_controls/").json()["user_access_level"] == "manager"


def test_roles_count_only_with_role_based_access(api, bob, emulator):
    dashboard = emulator.state.add_dashboard("Roles")["id"]
    emulator.state.add_access_control(dashboard, "none")
    assert put(api, dashboard, {"access_level": "viewer", "role": SEED.role_id}).status_code == 200
    assert bob.get(f"dashboards/{dashboard}/").json()["user_access_level"] == "viewer"
    emulator.state.set_product_features(["access_control"])
    assert bob.get(f"dashboards/{dashboard}/").status_code == 403  # the role rule no longer counts
    both = put(
        api,
        dashboard,
        {"access_level": "viewer", "role": SEED.role_id, "organization_member": SEED.bob_membership_id},
    )
    assert both.status_code == 400 and "both a member and a role" in both.json()["detail"]


def test_without_the_feature_rules_are_stored_but_ignored(api, bob, emulator, org, expect_error):
    dashboard = emulator.state.add_dashboard("Unlicensed")["id"]
    emulator.state.add_access_control(dashboard, "manager", organization_member=SEED.bob_membership_id)
    assert control(emulator, "product_features", {"features": ["role_based_access"]}).json() == {
        "features": ["role_based_access"]
    }
    emulator.state.add_access_control(dashboard, "none")
    assert bob.get(f"dashboards/{dashboard}/").json()["user_access_level"] == "editor"
    listing = api.get(f"dashboards/{dashboard}/access_controls/").json()
    assert listing["access_controls"] == []
    denied(
        expect_error, put(bob, dashboard, {"access_level": "viewer"}), NOT_MANAGER
    )  # the manager rule is ignored
    assert put(api, dashboard, {"access_level": "viewer"}).status_code == 200  # accepted and stored
    emulator.state.set_access_control(True)
    assert len(api.get(f"dashboards/{dashboard}/access_controls/").json()["access_controls"]) == 2


def test_v1_dashboards_still_need_collaborator_rights(bob, emulator, expect_error):
    dashboard = emulator.state.add_dashboard("Restricted", restriction_level=37)["id"]
    body = bob.get(f"dashboards/{dashboard}/").json()
    assert (body["access_control_version"], body["user_access_level"]) == ("v1", "editor")
    denied(
        expect_error,
        bob.patch(f"dashboards/{dashboard}/", {"name": "x"}),
        "You don't have edit permissions for this dashboard.",
    )
    emulator.state.add_collaborator(dashboard, SEED.bob_uuid)
    assert bob.patch(f"dashboards/{dashboard}/", {"name": "x"}).status_code == 200


def test_scopes_and_methods_of_access_controls(emulator, make_api, expect_error):
    dashboard = emulator.state.add_dashboard("Scopes")["id"]
    path = f"dashboards/{dashboard}/access_controls/"
    dashboards_only = make_api(emulator.state.add_api_key(["dashboard:write"]))
    denied(expect_error, dashboards_only.get(path), "API key missing required scope 'access_control:read'")
    denied(
        expect_error,
        put(dashboards_only, dashboard, {"access_level": "viewer"}),
        "API key missing required scope 'access_control:write'",
    )
    writer = make_api(emulator.state.add_api_key(["access_control:write"]))
    assert writer.get(path).status_code == 200
    denied(expect_error, writer.post(path, {}), "This action does not support personal API key access")
    expect_error(
        put(writer, dashboard, {}),
        400,
        "validation_error",
        "required",
        "This field is required.",
        "access_level",
    )
    expect_error(
        put(
            writer,
            dashboard,
            {"access_level": "viewer", "organization_member": "01900000-0000-7000-8000-0000000000ee"},
        ),
        400,
        "validation_error",
        "does_not_exist",
        'Invalid pk "01900000-0000-7000-8000-0000000000ee" - object does not exist.',
        "organization_member",
    )
    expect_error(
        make_api().get("dashboards/999/access_controls/"), 404, "invalid_request", "not_found", "Not found."
    )


def test_new_dashboards_and_seeded_fields(api):
    created = api.post("dashboards/", {"name": "New"}).json()
    assert (
        created["restriction_level"],
        created["access_control_version"],
        created["user_access_level"],
    ) == (21, "v2", "manager")
