"""
URL forms, authentication, scopes, project access, 405s and throttling (docs/posthog-api.md §11
items 1-13).
"""

from __future__ import annotations

import pytest
import requests
from phenv_emulator import SEED

EXPORT = SEED.s3_export_id


@pytest.mark.parametrize("prefix", ["environments", "projects"])
@pytest.mark.parametrize("slash", ["", "/"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "batch_exports"),
        ("POST", f"batch_exports/{EXPORT}/pause"),
        ("GET", f"batch_exports/{EXPORT}/logs"),
        ("GET", "dashboards"),
        ("GET", f"dashboards/{SEED.restricted_dashboard_id}/collaborators"),
    ],
)
def test_both_prefixes_with_or_without_slash_never_redirect(make_api, prefix, slash, method, path):  # 1
    response = make_api(prefix=prefix).request(method, path + slash)
    assert response.status_code == 200
    assert "Location" not in response.headers


def test_environments_responses_carry_deprecation_headers(make_api):  # 13
    response = make_api(prefix="environments").get("batch_exports/", params={"limit": 1})
    assert response.headers["Deprecation"] == "true"
    assert response.headers["Link"] == '</api/projects/1/batch_exports/?limit=1>; rel="successor-version"'
    # The rewritten path is what pagination links use.
    assert response.json()["next"].startswith(make_api().base_url + "/api/projects/1/batch_exports/?")
    assert "Deprecation" not in make_api().get("batch_exports/").headers


def test_current_resolves_to_the_key_owners_team(make_api):  # 2
    response = make_api(team="@current").get(f"batch_exports/{EXPORT}/")
    assert response.status_code == 200
    assert response.json()["team_id"] == SEED.team_id


@pytest.mark.parametrize("team", ["abc", "999"])
def test_unknown_project_is_404(make_api, expect_error, team):  # 2
    response = make_api(team=team).get("batch_exports/")
    expect_error(response, 404, "invalid_request", "not_found", "Project not found.")


def test_team_of_another_organization_is_403(make_api, expect_error):  # 9
    response = make_api(team=SEED.other_team_id).get("dashboards/")
    expect_error(
        response, 403, "authentication_error", "permission_denied", "You don't have access to the project."
    )


def test_invalid_bearer_key_is_401_with_www_authenticate(make_api, expect_error):  # 3, 5
    response = make_api("phx_not_a_key").get("batch_exports/")
    expect_error(
        response,
        401,
        "authentication_error",
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
    )
    assert response.headers["WWW-Authenticate"].startswith('Bearer resource_metadata="http://')


def test_key_in_body_or_query_string_authenticates_and_names_its_source(make_api, emulator, expect_error):
    anonymous = make_api(None)
    assert anonymous.get("batch_exports/", params={"personal_api_key": emulator.api_key}).status_code == 200
    assert anonymous.post(f"batch_exports/{EXPORT}/pause", json={"personal_api_key": emulator.api_key}).ok
    detail = "Personal API key found in request {} is invalid."
    bad_query = anonymous.get("batch_exports/", params={"personal_api_key": "phx_bad"})
    expect_error(
        bad_query, 401, "authentication_error", "authentication_failed", detail.format("query string")
    )
    bad_body = anonymous.post(f"batch_exports/{EXPORT}/pause", json={"personal_api_key": "phx_bad"})
    expect_error(bad_body, 401, "authentication_error", "authentication_failed", detail.format("body"))
    # The key never reaches the request log.
    assert all(emulator.api_key not in repr(record) for record in emulator.requests)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),  # 4
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="auth-header-of-another-scheme"),
    ],
)
def test_no_bearer_key_is_401_not_authenticated(emulator, expect_error, headers):
    response = requests.get(f"{emulator.url}/api/projects/1/dashboards/", headers=headers, timeout=5)
    expect_error(
        response,
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
    )
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    ("scopes", "method", "path", "missing"),
    [
        (["dashboard:read"], "GET", "batch_exports/", "batch_export:read"),
        (["batch_export:read"], "POST", f"batch_exports/{EXPORT}/pause", "batch_export:write"),
        (["batch_export:read"], "POST", f"batch_exports/{EXPORT}/unpause", "batch_export:write"),
        (["batch_export:read"], "POST", f"batch_exports/{EXPORT}/run_test_step", "batch_export:write"),
        (["batch_export:read"], "POST", "batch_exports/run_test_step_new", "batch_export:write"),
        (["feature_flag:read"], "GET", f"batch_exports/{EXPORT}/logs", "batch_export:read"),
        (["dashboard:read"], "POST", "dashboards/", "dashboard:write"),
        (["batch_export:write"], "GET", "dashboards/", "dashboard:read"),
        (
            ["dashboard:read"],
            "POST",
            f"dashboards/{SEED.restricted_dashboard_id}/collaborators/",
            "dashboard:write",
        ),
    ],
)
def test_missing_scope_is_403(emulator, make_api, expect_error, scopes, method, path, missing):  # 6, 25, 56
    response = make_api(emulator.state.add_api_key(scopes)).request(method, path, json={})
    expect_error(
        response,
        403,
        "authentication_error",
        "permission_denied",
        f"API key missing required scope '{missing}'",
    )


@pytest.mark.parametrize(
    ("scopes", "path"),
    [
        (["batch_export:read"], f"batch_exports/{EXPORT}/logs"),
        (["batch_export:read"], "batch_exports/test/?destination=AwsS3"),
        (["batch_export:write"], "batch_exports/"),  # write implies read
        (["dashboard:write"], f"dashboards/{SEED.restricted_dashboard_id}/collaborators/"),
    ],
)
def test_read_actions_accept_read_or_write_scope(emulator, make_api, scopes, path):  # 6, 25, 56
    assert make_api(emulator.state.add_api_key(scopes)).get(path).status_code == 200


def test_key_scoped_to_other_projects_is_403(emulator, make_api, expect_error):
    key = emulator.state.add_api_key(["*"], scoped_teams=[SEED.second_environment_id])
    expect_error(
        make_api(key).get("batch_exports/"),
        403,
        "authentication_error",
        "permission_denied",
        "API key does not have access to the requested project: ID 1.",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", f"batch_exports/{EXPORT}/pause"),
        ("GET", f"batch_exports/{EXPORT}/pause"),
        ("POST", "batch_exports/test"),
    ],
)
def test_wrong_method_is_405(api, expect_error, method, path):  # 10
    expect_error(
        api.request(method, path),
        405,
        "invalid_request",
        "method_not_allowed",
        f'Method "{method}" not allowed.',
    )


def test_unknown_route_and_object_are_404(api, expect_error):  # 8
    expect_error(api.get("no_such_thing/"), 404, "invalid_request", "not_found", "Not found.")
    expect_error(api.get("batch_exports/not-a-uuid/"), 404, "invalid_request", "not_found", "Not found.")


def test_malformed_json_body_is_a_parse_error(api):
    response = api.request("POST", "dashboards/", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_throttle_counts_each_key_separately(emulator, make_api, expect_error):  # 11, 12
    emulator.rate_limiter.enabled = True
    try:
        burst = make_api()
        for _ in range(480):
            assert burst.request("HEAD", "batch_exports/").status_code == 200
        response = burst.get("batch_exports/")
        assert response.status_code == 429
        wait = int(response.headers["Retry-After"])
        assert 1 <= wait <= 60
        expect_error(
            response,
            429,
            "throttled_error",
            "throttled",
            f"Request was throttled. Expected available in {wait} seconds.",
        )
        other_key = emulator.state.add_api_key(["*"])
        assert make_api(other_key).get("batch_exports/").status_code == 200
    finally:
        emulator.rate_limiter.enabled = False
