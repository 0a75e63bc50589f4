"""Personal API key authentication and scopes, from PostHog's
``posthog/api/test/test_personal_api_keys.py``.

PostHog's scope tests use feature flags as their example resource; the rule they pin
(``APIScopePermission`` deriving ``<object>:read``/``:write`` from the action) is the same for the
two scope objects the provider uses, so these cases run it on batch exports and dashboards.
"""

from __future__ import annotations

import pytest
import requests
from phenv_emulator import SEED

from tests.helpers.conformance import posthog_case

SOURCE = "posthog/api/test/test_personal_api_keys.py"
ACCESS = f"{SOURCE}::TestPersonalAPIKeyAPIAccess"
AUTHENTICATION = f"{SOURCE}::TestPersonalAPIKeysAPIAuthentication"
SCOPES = f"{SOURCE}::TestPersonalAPIKeysWithScopeAPIAuthentication"
TEAM_SCOPE = f"{SOURCE}::TestPersonalAPIKeysWithTeamScopeAPIAuthentication"
NO_KEY_ACCESS = "This action does not support Personal API Key access"
RESOURCES = ["batch_export", "dashboard"]


@pytest.fixture
def keys_url(emulator) -> str:
    return f"{emulator.url}/api/personal_api_keys/"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@posthog_case(
    f"{ACCESS}::test_retrieve_personal_api_key_with_bearer_auth", endpoint="personal_api_keys/@current/"
)
def test_a_key_reads_itself_as_current_and_by_id(emulator, keys_url):
    key = emulator.state.add_api_key(["*"], label="Test key")
    current = requests.get(keys_url + "@current/", headers=bearer(key), timeout=10)
    assert (current.status_code, current.json()["label"]) == (200, "Test key")
    by_id = requests.get(keys_url + current.json()["id"] + "/", headers=bearer(key), timeout=10)
    assert (by_id.status_code, by_id.json()["label"]) == (200, "Test key")


@posthog_case(f"{ACCESS}::test_list_personal_api_keys_with_bearer_auth", endpoint="personal_api_keys/")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "", None, id="list"),
        pytest.param("POST", "", {"label": "New key"}, id="create"),
        pytest.param("PATCH", "@current/", {"label": "Updated key"}, id="update"),
        pytest.param("DELETE", "@current/", None, id="delete"),
    ],
)
def test_a_key_may_only_retrieve(emulator, keys_url, expect_error, method, path, body):
    # One case for test_list_/test_create_/test_update_/test_delete_personal_api_key_with_bearer_auth.
    response = requests.request(
        method, keys_url + path, json=body, headers=bearer(emulator.api_key), timeout=10
    )
    expect_error(response, 403, "authentication_error", "permission_denied", NO_KEY_ACCESS)


@posthog_case(f"{ACCESS}::test_invalid_bearer_token", endpoint="personal_api_keys/@current/")
def test_an_unknown_key_is_unauthenticated(keys_url):
    assert requests.get(keys_url + "@current/", headers=bearer("invalid_key"), timeout=10).status_code == 401


@posthog_case(f"{AUTHENTICATION}::test_no_key", endpoint="dashboards/")
def test_no_credentials_are_unauthenticated(make_api, expect_error):
    expect_error(
        make_api(None).get("dashboards/"),
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
    )


@posthog_case(f"{AUTHENTICATION}::test_header_resilient", endpoint="dashboards/")
def test_blanks_around_the_key_are_ignored(emulator):
    headers = {"Authorization": f"Bearer  {emulator.api_key}  "}
    assert (
        requests.get(f"{emulator.url}/api/projects/1/dashboards/", headers=headers, timeout=10).status_code
        == 200
    )


@posthog_case(f"{AUTHENTICATION}::test_query_string", endpoint="dashboards/")
def test_the_key_may_come_in_the_query_string(emulator):
    url = f"{emulator.url}/api/projects/1/dashboards/?personal_api_key={emulator.api_key}"
    assert requests.get(url, timeout=10).status_code == 200


@posthog_case(f"{SCOPES}::test_allows_derived_scope_for_read", endpoint="scopes")
@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("level", ["read", "write"])
def test_a_read_or_write_scope_lists(emulator, make_api, resource, level):
    # A :write scope also grants :read (APIScopePermission adds it to the valid scopes).
    client = make_api(emulator.state.add_api_key([f"{resource}:{level}"]))
    assert client.get(f"{resource}s/").status_code == 200


@posthog_case(f"{SCOPES}::test_denies_derived_scope_for_write", endpoint="scopes")
@pytest.mark.parametrize("resource", RESOURCES)
def test_a_read_scope_cannot_create(emulator, make_api, expect_error, resource):
    client = make_api(emulator.state.add_api_key([f"{resource}:read"]))
    expect_error(
        client.post(f"{resource}s/", {}),
        403,
        "authentication_error",
        "permission_denied",
        f"API key missing required scope '{resource}:write'",
    )


@posthog_case(f"{SCOPES}::test_errors_for_action_without_required_scopes", endpoint="scopes")
def test_an_action_without_a_scope_refuses_every_key(api):
    # GET on one collaborator maps to no action of DashboardCollaboratorViewSet, so no scope is
    # derived. PostHog's test pins the older capitalisation; today's APIScopePermission writes
    # "personal API key" (posthog/permissions.py), and the emulator plays today's.
    response = api.get(f"dashboards/{SEED.restricted_dashboard_id}/collaborators/{SEED.alice_uuid}/")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert response.json()["detail"].lower() == NO_KEY_ACCESS.lower()


@posthog_case(f"{SCOPES}::test_forbids_action_with_other_scope", endpoint="scopes")
def test_a_key_for_another_resource_is_refused(emulator, make_api, expect_error):
    client = make_api(emulator.state.add_api_key(["feature_flag:read"]))
    expect_error(
        client.get("dashboards/"),
        403,
        "authentication_error",
        "permission_denied",
        "API key missing required scope 'dashboard:read'",
    )


@posthog_case(f"{TEAM_SCOPE}::test_allows_access_to_team_resources", endpoint="scopes")
def test_a_team_scoped_key_reaches_its_team(emulator, make_api):
    client = make_api(emulator.state.add_api_key(["*"], scoped_teams=[SEED.team_id]))
    assert client.get("dashboards/").status_code == 200


@posthog_case(f"{TEAM_SCOPE}::test_denies_access_to_non_scoped_org_and_team", endpoint="scopes")
def test_a_team_scoped_key_is_refused_elsewhere(emulator, make_api, expect_error):
    key = emulator.state.add_api_key(["*"], scoped_teams=[SEED.team_id])
    expect_error(
        make_api(key, team=SEED.second_environment_id).get("dashboards/"),
        403,
        "authentication_error",
        "permission_denied",
        f"API key does not have access to the requested project: ID {SEED.second_environment_id}.",
    )
