"""
The older-build switches (emulator/phenv_emulator/store/switches.py), one at a time, from
Python, the control API and the command line; ``reset()`` restores the emulator's starting ones.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from phenv_emulator import SEED, PostHogEmulator
from phenv_emulator.store.switches import OLD_BUILDS

from tests.helpers.emulator import emulator_cli

EXPORT = SEED.s3_export_id
LOGS = f"batch_exports/{EXPORT}/logs/"
RESTRICTED = f"dashboards/{SEED.restricted_dashboard_id}/collaborators/"
NO_KEY = "This action does not support Personal API Key access"


@pytest.fixture
def levels(emulator):
    """One INFO, one WARNING and one ERROR entry, visible at once; returns a query for them."""
    emulator.state.set_switches(log_delay=0)
    base = datetime(2024, 3, 1, tzinfo=timezone.utc)
    emulator.state.add_log_entries(
        EXPORT,
        [
            {"timestamp": base + timedelta(seconds=k), "level": level, "message": f"{level} line"}
            for k, level in enumerate(["INFO", "WARNING", "ERROR"])
        ],
    )
    window = {
        "after": (base - timedelta(seconds=1)).isoformat(),
        "before": (base + timedelta(minutes=1)).isoformat(),
    }

    def query(api, level) -> list[str]:
        params = [
            *window.items(),
            *(("level", value) for value in ([level] if isinstance(level, str) else level)),
        ]
        response = api.get(LOGS, params=params)
        assert response.status_code == 200, response.text
        return [entry["level"] for entry in response.json()["results"]]

    return query


def test_level_today_splits_commas_and_reads_the_last_repeated_value(api, levels):  # §6.3
    assert levels(api, "info,ERROR") == ["ERROR", "INFO"]
    assert levels(api, ["INFO", "ERROR"]) == ["ERROR"]  # Django reads the last value of a plain field


def test_level_list_build_matches_a_comma_list_to_nothing(api, emulator, levels):  # §6.3
    emulator.state.set_switches(["level-list"])
    assert levels(api, "INFO,ERROR") == []
    assert levels(api, ["INFO", "ERROR"]) == ["ERROR", "INFO"]


@pytest.mark.parametrize("build", [[], ["level-list"]])
def test_the_providers_level_form_works_on_both(api, emulator, levels, build):  # §6.3
    from airflow_provider_phenv.hooks.calls import level_param

    emulator.state.set_switches(build)
    assert levels(api, level_param(("INFO", "ERROR"))) == ["ERROR", "INFO"]
    assert levels(api, level_param(("WARNING",))) == ["WARNING"]


@pytest.mark.parametrize("build", [[], ["no-retry-after"]])
def test_no_retry_after_on_throttled_answers(emulator, make_api, build):  # §3
    emulator.state.set_switches(build)
    emulator.faults.add("status", status=429, retry_after=2, times=1)
    emulator.faults.add("html", status=503, retry_after=2, times=1)  # a proxy's header stays
    throttled = make_api().get("batch_exports/")
    assert throttled.status_code == 429
    assert throttled.json()["detail"] == "Request was throttled. Expected available in 2 seconds."
    assert ("Retry-After" in throttled.headers) is (not build)
    assert make_api().get("batch_exports/").headers["Retry-After"] == "2"


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_no_retry_after_on_the_rate_limiter(emulator, make_api):  # §3
    emulator.state.set_switches(["no-retry-after"])
    emulator.rate_limiter.enabled = True
    try:
        api = make_api()
        for _ in range(480):
            api.get("dashboards/")
        refused = api.get("dashboards/")
    finally:
        emulator.rate_limiter.enabled = False
    assert refused.status_code == 429 and "Retry-After" not in refused.headers


def test_projects_only_collaborators(emulator, make_api, expect_error):  # §1
    emulator.state.set_switches(["projects-only-collaborators"])
    expect_error(
        make_api(prefix="environments").get(RESTRICTED), 404, "invalid_request", "not_found", "Not found."
    )
    assert make_api(prefix="projects").get(RESTRICTED).status_code == 200
    assert make_api(prefix="environments").get("dashboards/").status_code == 200


def test_environments_redirect(emulator, make_api):  # §1
    emulator.state.set_switches(["environments-redirect"])
    answer = make_api(None, prefix="environments").get("batch_exports/", params={"limit": 1})
    assert answer.status_code == 307  # before authentication, as a middleware
    assert answer.headers["Location"] == "/api/projects/1/batch_exports/?limit=1"
    assert make_api(prefix="environments").get("batch_exports/", allow_redirects=True).json()["count"] == 6
    assert make_api(prefix="projects").get("batch_exports/").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "batch_exports/test/?destination=AwsS3", None),
        ("POST", "batch_exports/run_test_step_new/", {"step": 0}),
        ("POST", f"batch_exports/{EXPORT}/run_test_step/", {"step": 0}),
    ],
)
def test_internal_scope_on_the_test_endpoints(emulator, make_api, expect_error, method, path, body):  # §2.2
    emulator.state.set_switches(["internal-test-scope"])
    response = make_api().request(method, path, json=body)
    expect_error(
        response,
        403,
        "authentication_error",
        "permission_denied",
        "API key missing required scope 'INTERNAL'",
    )
    emulator.state.set_switches([])
    assert make_api().request(method, path, json=body).status_code != 403


def test_logs_without_a_key_scope(emulator, make_api, expect_error):  # §2.2
    emulator.state.set_switches(["logs-no-key-scope"])
    run = make_api().get(f"batch_exports/{EXPORT}/runs/").json()["results"][0]
    for path in (LOGS, f"batch_exports/{EXPORT}/runs/{run['id']}/logs/"):
        expect_error(make_api().get(path), 403, "authentication_error", "permission_denied", NO_KEY)
    assert make_api().get("batch_exports/").status_code == 200


def test_access_control_off(api, emulator):  # §7.3
    emulator.state.set_switches(["no-access-control"])
    dashboard = api.get(f"dashboards/{SEED.restricted_dashboard_id}/").json()
    assert (dashboard["restriction_level"], dashboard["effective_restriction_level"]) == (37, 21)
    refused = api.post(RESTRICTED, {"user_uuid": SEED.bob_uuid, "level": 37})
    assert (refused.status_code, refused.json()["detail"]) == (
        400,
        "Cannot add collaborators to a dashboard on the lowest restriction level.",
    )
    # The organization's features lack it over the API; the stored features are unchanged.
    features = api.session.get(f"{emulator.url}/api/organizations/@current/").json()[
        "available_product_features"
    ]
    assert "access_control" not in [feature["key"] for feature in features]
    assert "access_control" in emulator.state.organizations[SEED.organization_id]["features"]


@pytest.mark.usefixtures("prompt_backfills")
def test_backfill_fails_stops_at_the_first_failed_run(api, emulator):  # §6.9
    emulator.state.set_switches(["backfill-fails"])
    emulator.state.set_run_outcome(EXPORT, "failed", duration=0)
    backfills = f"batch_exports/{EXPORT}/backfills/"
    backfill_id = api.post(
        backfills, {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T03:00:00Z"}
    ).json()["backfill_id"]
    found = api.get(f"{backfills}{backfill_id}/").json()
    assert (found["status"], found["progress"]) == ("Failed", None)
    runs = api.get(f"batch_exports/{EXPORT}/runs/", params={"after": "-1000d"}).json()["results"]
    assert [run["status"] for run in runs if run["backfill"] == backfill_id] == ["Failed"]


def test_switches_from_python_the_control_api_and_reset(emulator, make_api):
    control = f"{emulator.url}/_emulator/switches"
    assert requests.get(control, timeout=5).json() == {
        "old_builds": [],
        "log_delay": 3.0,
        "seed": 0,
        "max_concurrent_backfills": 3,
        "backfill_row_delay": 2.0,
        "auto_pause_threshold": 10,
        "available": OLD_BUILDS,
    }
    answer = requests.post(control, json={"old_builds": ["level-list"], "log_delay": 0, "seed": 4}, timeout=5)
    assert answer.json()["old_builds"] == ["level-list"] and answer.json()["log_delay"] == 0
    assert "level-list" in emulator.state.switches
    assert requests.post(control, json={"old_builds": ["nope"]}, timeout=5).status_code == 400
    with pytest.raises(ValueError, match="unknown old-build switch"):
        emulator.state.set_switches(["nope"])
    emulator.reset()
    assert emulator.state.switches.as_json()["old_builds"] == []
    assert emulator.state.switches.log_delay == 3.0


def test_an_emulator_started_with_builds_keeps_them_across_resets():
    with PostHogEmulator(builds=["no-access-control"], log_delay=0, max_concurrent_backfills=9) as emulator:
        emulator.state.set_switches([])
        emulator.reset()
        assert emulator.state.switches.as_json()["old_builds"] == ["no-access-control"]
        assert (emulator.state.switches.log_delay, emulator.state.switches.max_concurrent_backfills) == (0, 9)


@pytest.mark.slow  # a subprocess starting the CLI (~0.6 s)
def test_cli_old_build_flags():
    with emulator_cli(
        "--old-build",
        "level-list",
        "--old-build",
        "no-retry-after",
        "--log-delay",
        "0",
        "--backdate-pauses",
        "7200",
        "--backfill-row-delay",
        "0.5",
        "--auto-pause-threshold",
        "3",
    ) as process:
        url = re.search(r"listening on (\S+)", process.stdout.readline()).group(1)
        switches = requests.get(f"{url}/_emulator/switches", timeout=5).json()
        assert (switches["old_builds"], switches["log_delay"]) == (["level-list", "no-retry-after"], 0)
        assert (switches["backfill_row_delay"], switches["auto_pause_threshold"]) == (0.5, 3)
        requests.post(f"{url}/_emulator/reset", timeout=5)
        assert requests.get(f"{url}/_emulator/switches", timeout=5).json()["old_builds"] == [
            "level-list",
            "no-retry-after",
        ]
        headers = {"Authorization": f"Bearer {SEED.api_key}"}
        requests.post(f"{url}/api/projects/1/batch_exports/{EXPORT}/pause/", headers=headers, timeout=5)
        export = requests.get(
            f"{url}/api/projects/1/batch_exports/{EXPORT}/", headers=headers, timeout=5
        ).json()
        paused_at = datetime.fromisoformat(export["last_paused_at"].replace("Z", "+00:00"))
        assert datetime.now(timezone.utc) - paused_at > timedelta(hours=2) - timedelta(seconds=5)
