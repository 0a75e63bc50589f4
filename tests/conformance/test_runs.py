"""
Conformance cases for ``batch_exports/{id}/runs/`` from PostHog's
``products/batch_exports/backend/tests/api/test_runs.py`` (docs/posthog-api.md §6.9).

Runs that PostHog's tests insert into the database are started here with the store's helper
(``start_run``, a fixed outcome each); everything asserted goes through HTTP.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from tests.helpers.conformance import posthog_case
from tests.helpers.processes import wait_for

RUNS_TESTS = "products/batch_exports/backend/tests/api/test_runs.py"
RUNS = "batch_exports/{id}/runs/"


@pytest.fixture
def export(emulator) -> str:
    """A new hourly export without runs, as PostHog's tests create one."""
    seeded = emulator.state.get_batch_export(SEED.s3_export_id)
    return emulator.state.add_batch_export("my-production-s3-bucket-destination", seeded["destination"])["id"]


def _runs(api, export: str, **params) -> list[dict]:
    response = api.get(f"batch_exports/{export}/runs/", params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


@posthog_case(f"{RUNS_TESTS}::test_can_get_export_runs_for_your_organizations", endpoint=RUNS)
def test_can_get_export_runs_for_your_organizations(api, export):
    assert api.get(f"batch_exports/{export}/runs/").status_code == 200


@posthog_case(f"{RUNS_TESTS}::test_cannot_get_exports_for_other_organizations", endpoint=RUNS)
def test_cannot_get_exports_for_other_organizations(emulator, make_api, export):
    other = make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid))
    assert other.get(f"batch_exports/{export}/runs/").status_code == 403


@posthog_case(f"{RUNS_TESTS}::test_batch_exports_are_partitioned_by_team", endpoint="batch_exports/{id}/")
def test_batch_exports_are_partitioned_by_team(api, emulator, make_api, export):
    other_team = make_api(team=SEED.second_environment_id)
    assert other_team.get(f"batch_exports/{export}").status_code == 404
    theirs = emulator.state.add_batch_export(
        "my-production-s3-bucket-destination",
        {"type": "NoOp", "config": {}},
        team_id=SEED.second_environment_id,
    )
    assert api.get(f"batch_exports/{theirs['id']}").status_code == 404


@posthog_case(
    f"{RUNS_TESTS}::test_cancelling_a_batch_export_run", endpoint="batch_exports/{id}/runs/{run_id}/cancel/"
)
def test_cancelling_a_batch_export_run(api, emulator, export):
    emulator.state.set_switches(backfill_row_delay=0)
    emulator.state.set_run_outcome(export, "hang", duration=0.05)
    # One interval: the emulator starts a backfill's next run without PostHog's 1 s start_delay,
    # so a longer range would list it right after the cancel (docs/posthog-api.md §6.9).
    body = {"start_at": "2023-10-23T00:00:00+00:00", "end_at": "2023-10-23T01:00:00+00:00"}
    assert api.post(f"batch_exports/{export}/backfills/", body).status_code == 201
    wait_for("a Running run", lambda: _runs(api, export)[0]["status"] == "Running", timeout=5, interval=0.02)
    [run] = _runs(api, export)
    assert api.post(f"batch_exports/{export}/runs/{run['id']}/cancel").json()["cancelled"] is True
    [run] = _runs(api, export)
    assert run["status"] == "Cancelled"


def _interval_end() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


@posthog_case(f"{RUNS_TESTS}::test_get_batch_export_runs_filtered_by_status", endpoint=RUNS)
@pytest.mark.parametrize("ordering", [None, "-data_interval_start"])
def test_get_batch_export_runs_filtered_by_status(api, emulator, export, ordering):
    interval_end = _interval_end()
    runs = {}
    for hours, (outcome, status) in enumerate(
        [
            ("completed", "Completed"),
            ("failed", "Failed"),
            ("failed_retryable", "FailedRetryable"),
            ("hang", "Running"),
        ]
    ):
        emulator.state.set_run_outcome(export, outcome, duration=0 if outcome != "hang" else 0.01, times=1)
        runs[status] = emulator.state.start_run(
            export,
            interval_end - timedelta(hours=hours + 1),
            interval_end - timedelta(hours=hours),
            created_at=datetime.now(timezone.utc) - timedelta(seconds=1),
        )
    params = {"ordering": ordering} if ordering else {}
    failed = _runs(api, export, status=["Failed", "FailedRetryable"], **params)
    assert {run["id"] for run in failed} == {runs["Failed"]["id"], runs["FailedRetryable"]["id"]}
    assert {run["id"] for run in _runs(api, export, **params)} == {run["id"] for run in runs.values()}


@posthog_case(f"{RUNS_TESTS}::test_get_batch_export_runs_rejects_unknown_status", endpoint=RUNS)
def test_get_batch_export_runs_rejects_unknown_status(api, export):
    assert api.get(f"batch_exports/{export}/runs/", params={"status": ["NotAStatus"]}).status_code == 400


@posthog_case(f"{RUNS_TESTS}::test_get_batch_export_runs_date_filter_depends_on_ordering", endpoint=RUNS)
def test_get_batch_export_runs_date_filter_depends_on_ordering(api, emulator, export):
    now = datetime.now(timezone.utc)
    emulator.state.set_run_outcome(export, duration=0)
    # Recent data interval, but created a month ago.
    by_interval = emulator.state.start_run(
        export, now - timedelta(hours=1), now, created_at=now - timedelta(days=30)
    )
    # Data interval from a month ago, but created just now.
    by_created_at = emulator.state.start_run(
        export, now - timedelta(days=30, hours=1), now - timedelta(days=30), created_at=now
    )
    found = _runs(api, export, after="-2d", start="-2d")
    assert {run["id"] for run in found} == {by_created_at["id"]}
    found = _runs(api, export, ordering="-data_interval_start", start="-2d", after="-2d")
    assert {run["id"] for run in found} == {by_interval["id"]}


@posthog_case(
    f"{RUNS_TESTS}::test_cannot_cancel_completed_batch_export_run",
    endpoint="batch_exports/{id}/runs/{run_id}/cancel/",
)
def test_cannot_cancel_completed_batch_export_run(api, emulator, export):
    emulator.state.set_run_outcome(export, duration=0)
    run = emulator.state.start_run(
        export, datetime(2023, 10, 23, tzinfo=timezone.utc), datetime(2023, 10, 24, tzinfo=timezone.utc)
    )
    response = api.post(f"batch_exports/{export}/runs/{run['id']}/cancel")
    assert response.status_code == 400
    assert response.json()["detail"] == "Cannot cancel a run that is in 'Completed' status"
    assert api.get(f"batch_exports/{export}/runs/{run['id']}/").json()["status"] == "Completed"
