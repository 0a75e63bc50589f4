"""``/api/environments/`` served in place of ``/api/projects/``, from PostHog's
``posthog/api/test/test_environments_rewrite.py`` (``EnvironmentsRewriteMiddleware``).

PostHog's tests read the team itself (``/api/environments/{id}/``), which the emulator does not
serve; the same middleware rewrites every path, so these cases use the dashboards list.
"""

from __future__ import annotations

from tests.helpers.conformance import posthog_case

SOURCE = "posthog/api/test/test_environments_rewrite.py"
REWRITE = f"{SOURCE}::TestEnvironmentsRewrite"
FLAG = f"{SOURCE}::TestEnvironmentsRewriteFlag"
ENDPOINT = "environments"
#: ``API_ENVIRONMENTS_SUNSET_DATE``'s default, 2026-07-31, as an HTTP date.
SUNSET = "Fri, 31 Jul 2026 00:00:00 GMT"


@posthog_case(f"{REWRITE}::test_read_is_served_transparently_without_a_redirect", endpoint=ENDPOINT)
def test_a_read_is_answered_in_place_and_deprecated(make_api):
    response = make_api(prefix="environments").get("dashboards/")
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.headers["Deprecation"] == "true"
    assert "</api/projects/1/dashboards/>" in response.headers["Link"]
    assert 'rel="successor-version"' in response.headers["Link"]


@posthog_case(f"{REWRITE}::test_write_round_trips_method_and_body_without_a_redirect", endpoint=ENDPOINT)
def test_a_write_is_applied_in_place(make_api, api):
    response = make_api(prefix="environments").patch("dashboards/1/", {"name": "Renamed via rewrite"})
    assert response.status_code == 200, response.text
    assert "Location" not in response.headers
    assert response.json()["name"] == "Renamed via rewrite"
    assert api.get("dashboards/1/").json()["name"] == "Renamed via rewrite"


@posthog_case(f"{REWRITE}::test_successor_link_includes_preserved_query_string", endpoint=ENDPOINT)
def test_the_successor_link_keeps_the_query(make_api):
    response = make_api(prefix="environments").get("dashboards/", params={"limit": 1})
    assert response.status_code == 200
    assert "</api/projects/1/dashboards/?limit=1>" in response.headers["Link"]


@posthog_case(f"{REWRITE}::test_paths_outside_the_environments_prefix_are_untouched", endpoint=ENDPOINT)
def test_projects_answers_are_not_deprecated(api):
    response = api.get("dashboards/")
    assert {"Deprecation", "Location", "Sunset"} & response.headers.keys() == set()


@posthog_case(f"{FLAG}::test_disabled_by_default_still_serves_and_advertises_successor", endpoint=ENDPOINT)
def test_environments_answers_carry_a_sunset(make_api):
    response = make_api(prefix="environments").get("dashboards/")
    assert response.status_code == 200
    assert "Sunset" in response.headers


@posthog_case(f"{FLAG}::test_sunset_header_is_http_date", endpoint=ENDPOINT)
def test_the_sunset_is_an_http_date(make_api):
    assert make_api(prefix="environments").get("batch_exports/").headers["Sunset"] == SUNSET
