"""
Conformance cases for ``batch_exports/{id}/backfills/`` from PostHog's
``products/batch_exports/backend/tests/api/backfills/`` tests (docs/posthog-api.md §6.9).

PostHog's tests that insert backfill rows straight into the database are played here through
the API: a hanging run keeps a backfill Running, a cancel makes it Cancelled, and so on. Rows
appear at once (``backfill_row_delay`` 0) unless a case is about their delay.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from tests.helpers.conformance import posthog_case
from tests.helpers.processes import wait_for

CREATE = "products/batch_exports/backend/tests/api/backfills/test_create.py"
GET = "products/batch_exports/backend/tests/api/backfills/test_get.py"
LIST = "products/batch_exports/backend/tests/api/backfills/test_list.py"
CANCEL = "products/batch_exports/backend/tests/api/backfills/test_cancel.py"
READ_ONLY = "products/batch_exports/backend/tests/api/backfills/test_read_only.py"
BACKFILLS = "batch_exports/{id}/backfills/"
BACKFILL = "batch_exports/{id}/backfills/{backfill_id}/"
HOURLY = SEED.s3_export_id
ROOT = f"batch_exports/{HOURLY}/backfills/"
HOUR = {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T01:00:00+00:00"}
DATE_INSTEAD = (
    "Input '{}' is not a valid ISO formatted date. "
    "Daily or weekly batch export backfills expect only the date component, but a time was included."
)


@pytest.fixture(autouse=True)
def rows_at_once(emulator):
    emulator.state.set_switches(backfill_row_delay=0)


def _backfill(api, body=None, export: str = HOURLY) -> str:
    response = api.post(f"batch_exports/{export}/backfills/", body or HOUR)
    assert response.status_code == 201, response.text
    return response.json()["backfill_id"]


def _get(api, backfill_id: str) -> dict:
    return api.get(f"{ROOT}{backfill_id}/").json()


def _when(text: str | None) -> datetime | None:
    """A datetime of the API (the emulator writes a ``.000000`` fraction that DRF leaves out)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _other_organization(emulator, make_api):
    return make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid))


# -- create (test_create.py) ---------------------------------------------------------------------


@posthog_case(f"{CREATE}::test_batch_export_backfill_success", endpoint=BACKFILLS)
def test_backfill_success(api):
    response = api.post(ROOT, HOUR)
    assert response.status_code == 201
    assert set(response.json()) == {"backfill_id"}


@posthog_case(f"{CREATE}::test_batch_export_backfill_for_daily_schedule", endpoint=BACKFILLS)
def test_backfill_for_daily_schedule(api):
    response = api.post(
        f"batch_exports/{SEED.daily_export_id}/backfills/", {"start_at": "2026-01-01", "end_at": "2026-01-02"}
    )
    assert response.status_code == 201, response.text
    assert "backfill_id" in response.json()


@posthog_case(
    f"{CREATE}::test_batch_export_backfill_for_daily_schedule_with_datetime_strings_fails", endpoint=BACKFILLS
)
def test_backfill_for_daily_schedule_with_datetime_strings_fails(api, expect_error):
    body = {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T01:00:00+00:00"}
    response = api.post(f"batch_exports/{SEED.daily_export_id}/backfills/", body)
    expect_error(
        response, 400, "validation_error", "invalid_input", DATE_INSTEAD.format("2021-01-01T00:00:00+00:00")
    )


@posthog_case(f"{CREATE}::test_batch_export_backfill_for_weekly_schedule", endpoint=BACKFILLS)
def test_backfill_for_weekly_schedule(api):
    # The seeded weekly export runs on Mondays (offset_day 1).
    response = api.post(
        f"batch_exports/{SEED.weekly_export_id}/backfills/",
        {"start_at": "2026-01-05", "end_at": "2026-01-12"},
    )
    assert response.status_code == 201, response.text
    assert "backfill_id" in response.json()


@posthog_case(
    f"{CREATE}::test_batch_export_backfill_for_weekly_schedule_with_datetime_strings_fails",
    endpoint=BACKFILLS,
)
def test_backfill_for_weekly_schedule_with_datetime_strings_fails(api, expect_error):
    body = {"start_at": "2026-01-05T00:00:00+00:00", "end_at": "2026-01-12T00:00:00+00:00"}
    response = api.post(f"batch_exports/{SEED.weekly_export_id}/backfills/", body)
    expect_error(
        response, 400, "validation_error", "invalid_input", DATE_INSTEAD.format("2026-01-05T00:00:00+00:00")
    )


@posthog_case(
    f"{CREATE}::test_batch_export_backfill_for_weekly_schedule_fails_if_day_of_week_is_incorrect",
    endpoint=BACKFILLS,
)
def test_backfill_for_weekly_schedule_fails_if_day_of_week_is_incorrect(api, expect_error):
    body = {"start_at": "2026-01-04", "end_at": "2026-01-11"}  # Sundays
    response = api.post(f"batch_exports/{SEED.weekly_export_id}/backfills/", body)
    expect_error(
        response,
        400,
        "validation_error",
        "invalid_input",
        "Input 2026-01-04 is not on the correct day of the week for this batch export. "
        "2026-01-04 is a Sunday but this batch export is configured to run weekly on Monday.",
    )


@posthog_case(f"{CREATE}::test_batch_export_backfill_with_non_isoformatted_dates", endpoint=BACKFILLS)
def test_backfill_with_non_isoformatted_dates(api):
    assert api.post(ROOT, {"start_at": "not a date", "end_at": HOUR["end_at"]}).status_code == 400
    assert api.post(ROOT, {"start_at": HOUR["end_at"], "end_at": "not a date"}).status_code == 400


@posthog_case(f"{CREATE}::test_batch_export_backfill_with_end_at_in_the_future", endpoint=BACKFILLS)
def test_backfill_with_end_at_in_the_future(api):
    now = datetime.now(timezone.utc)
    body = {
        "start_at": (now - timedelta(minutes=30)).isoformat(),
        "end_at": (now + timedelta(minutes=30)).isoformat(),
    }
    response = api.post(ROOT, body)
    assert response.status_code == 400
    assert "is in the future" in response.json()["detail"]


@posthog_case(f"{CREATE}::test_batch_export_backfill_with_naive_bounds", endpoint=BACKFILLS)
def test_backfill_with_naive_bounds(api):
    naive = {"start_at": "2021-01-01T01:00:00", "end_at": "2021-01-01T01:00:00"}
    assert api.post(ROOT, naive).status_code == 400


@posthog_case(f"{CREATE}::test_batch_export_backfill_with_start_at_after_end_at", endpoint=BACKFILLS)
def test_backfill_with_start_at_after_end_at(api):
    same = {"start_at": "2021-01-01T01:00:00+00:00", "end_at": "2021-01-01T01:00:00+00:00"}
    assert api.post(ROOT, same).status_code == 400
    before = {"start_at": "2021-01-01T01:00:00+00:00", "end_at": "2020-01-01T01:00:00+00:00"}
    assert api.post(ROOT, before).status_code == 400


@posthog_case(f"{CREATE}::test_cannot_trigger_backfill_for_another_organization", endpoint=BACKFILLS)
def test_cannot_trigger_backfill_for_another_organization(emulator, make_api):
    assert _other_organization(emulator, make_api).post(ROOT, HOUR).status_code == 403


@posthog_case(f"{CREATE}::test_backfill_is_partitioned_by_team_id", endpoint=BACKFILLS)
def test_backfill_is_partitioned_by_team_id(make_api):
    other_team = make_api(team=SEED.second_environment_id)
    assert other_team.post(ROOT, HOUR).status_code == 404


@posthog_case(f"{CREATE}::test_batch_export_backfill_created_in_timezone", endpoint=BACKFILLS)
def test_backfill_created_in_timezone(api):
    response = api.post(
        ROOT, {"start_at": "2021-01-01T00:00:00-05:00", "end_at": "2021-10-01T00:00:00-04:00"}
    )
    assert response.status_code == 201, response.text
    assert "backfill_id" in response.json()
    row = _get(api, response.json()["backfill_id"])
    assert _when(row["start_at"]) == datetime(2021, 1, 1, 5, tzinfo=timezone.utc)  # stored in UTC


@posthog_case(
    f"{CREATE}::test_batch_export_earliest_backfill_rejected_without_feature_flag", endpoint=BACKFILLS
)
def test_earliest_backfill_rejected_without_feature_flag(api):
    response = api.post(ROOT, {"start_at": None, "end_at": "2021-01-01T01:00:00+00:00"})
    assert response.status_code == 400
    assert response.json()["detail"] == "Backfilling from the beginning of time is not enabled for this team."


@posthog_case(f"{CREATE}::test_backfill_rejected_when_team_at_concurrent_limit", endpoint=BACKFILLS)
def test_backfill_rejected_when_team_at_concurrent_limit(api, emulator):
    emulator.state.set_switches(max_concurrent_backfills=2)
    emulator.state.set_run_outcome(HOURLY, "hang")
    _backfill(api, {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-02T00:00:00+00:00"})
    _backfill(api, {"start_at": "2021-02-01T00:00:00+00:00", "end_at": "2021-02-02T00:00:00+00:00"})
    response = api.post(ROOT, HOUR)
    assert response.status_code == 429
    assert "This team already has 2 batch export backfills running" in response.json()["detail"]


@posthog_case(f"{CREATE}::test_backfill_allowed_when_team_below_concurrent_limit", endpoint=BACKFILLS)
def test_backfill_allowed_when_team_below_concurrent_limit(api, emulator):
    emulator.state.set_switches(max_concurrent_backfills=2)
    emulator.state.set_run_outcome(HOURLY, "completed", duration=0, times=1)
    completed = _backfill(
        api, {"start_at": "2021-02-01T00:00:00+00:00", "end_at": "2021-02-01T01:00:00+00:00"}
    )
    assert _get(api, completed)["status"] == "Completed"
    emulator.state.set_run_outcome(HOURLY, "hang")
    _backfill(api, {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-02T00:00:00+00:00"})
    assert api.post(ROOT, HOUR).status_code == 201


@posthog_case(
    f"{CREATE}::test_other_teams_backfills_do_not_count_toward_concurrent_limit", endpoint=BACKFILLS
)
def test_other_teams_backfills_do_not_count_toward_concurrent_limit(api, emulator):
    emulator.state.set_switches(max_concurrent_backfills=2)
    other = emulator.state.add_batch_export(
        "Other team's export",
        {"type": "NoOp", "config": {}},
        team_id=SEED.second_environment_id,
    )
    emulator.state.set_run_outcome(other["id"], "hang")
    start = datetime(2021, 1, 1, tzinfo=timezone.utc)
    for day in range(5):
        begin = start + timedelta(days=day)
        emulator.state.start_backfill(other["id"], begin, begin + timedelta(days=1))
    assert api.post(ROOT, HOUR).status_code == 201


@posthog_case(f"{CREATE}::test_batch_export_earliest_backfill_allowed_with_feature_flag", endpoint=BACKFILLS)
def test_earliest_backfill_allowed_with_feature_flag(api, emulator):
    emulator.state.set_feature_flag("batch-export-earliest-backfill")
    response = api.post(ROOT, {"start_at": None, "end_at": "2021-01-01T01:00:00+00:00"})
    assert response.status_code == 201, response.text
    assert "backfill_id" in response.json()


# -- retrieve (test_get.py) ----------------------------------------------------------------------


@posthog_case(f"{GET}::test_can_get_backfills_for_your_organizations", endpoint=BACKFILL)
def test_can_get_backfills_for_your_organizations(api, emulator):
    # The parametrized case of a Starting backfill of two hours: every field, as PostHog's test lists.
    emulator.state.set_run_outcome(HOURLY, "hang", duration=10)  # Starting for 4 s
    body = {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T02:00:00+00:00"}
    backfill_id = _backfill(api, body)
    row = _get(api, backfill_id)
    assert isinstance(row.pop("created_at"), str) and isinstance(row.pop("last_updated_at"), str)
    start_at, end_at = row.pop("start_at"), row.pop("end_at")
    assert (_when(start_at), _when(end_at)) == (
        datetime(2021, 1, 1, 0, tzinfo=timezone.utc),
        datetime(2021, 1, 1, 2, tzinfo=timezone.utc),
    )
    assert row == {
        "id": backfill_id,
        "batch_export": HOURLY,
        "team": SEED.team_id,
        "status": "Starting",
        "finished_at": None,
        "progress": {"total_runs": 2, "finished_runs": 0, "progress": 0},
        "adjusted_start_at": None,
        "total_records_count": None,
    }


def _running_half_way(api, emulator) -> str:
    emulator.state.set_run_outcome(HOURLY, "completed", duration=0, times=1)
    emulator.state.set_run_outcome(HOURLY, "hang", duration=0.02)
    backfill_id = _backfill(
        api, {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T02:00:00+00:00"}
    )
    wait_for("Running", lambda: _get(api, backfill_id)["status"] == "Running", timeout=5, interval=0.02)
    return backfill_id


def _completed(api, emulator) -> str:
    emulator.state.set_run_outcome(HOURLY, duration=0)
    return _backfill(api)


def _cancelled(api, emulator) -> str:
    emulator.state.set_run_outcome(HOURLY, "hang")
    backfill_id = _backfill(
        api, {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T02:00:00+00:00"}
    )
    assert api.post(f"{ROOT}{backfill_id}/cancel/").json() == {"cancelled": True}
    return backfill_id


def _failed(api, emulator) -> str:
    emulator.state.delete_schedule(HOURLY)  # the workflow fails without the export's schedule
    return _backfill(api)


def _earliest(outcome: str):
    def make(api, emulator) -> str:
        emulator.state.set_feature_flag("batch-export-earliest-backfill")
        emulator.state.set_run_outcome(HOURLY, outcome, duration=0 if outcome == "completed" else 0.02)
        backfill_id = _backfill(api, {"start_at": None, "end_at": "2021-01-01T02:00:00+00:00"})
        wait_for("its run", lambda: _get(api, backfill_id)["status"] != "Starting", timeout=5, interval=0.02)
        return backfill_id

    return make


@posthog_case(f"{GET}::test_can_get_backfills_for_your_organizations", endpoint=BACKFILL)
@pytest.mark.parametrize(
    ("arrange", "status", "progress"),
    [
        (_completed, "Completed", {"total_runs": 1, "finished_runs": 1, "progress": 1}),
        (_failed, "Failed", None),
        (_cancelled, "Cancelled", None),
        (_running_half_way, "Running", {"total_runs": 2, "finished_runs": 1, "progress": 0.5}),
        (_earliest("hang"), "Running", None),
        (_earliest("completed"), "Completed", {"total_runs": 1, "finished_runs": 1, "progress": 1}),
    ],
    ids=["completed", "failed", "cancelled", "running-half-way", "earliest-running", "earliest-completed"],
)
def test_backfill_progress(api, emulator, arrange, status, progress):
    row = _get(api, arrange(api, emulator))
    assert (row["status"], row["progress"]) == (status, progress)


@posthog_case(f"{GET}::test_cannot_get_backfills_for_other_organizations", endpoint=BACKFILL)
def test_cannot_get_backfills_for_other_organizations(api, emulator, make_api):
    backfill_id = _backfill(api)
    assert _other_organization(emulator, make_api).get(f"{ROOT}{backfill_id}").status_code == 403


@posthog_case(f"{GET}::test_backfills_are_partitioned_by_team", endpoint=BACKFILL)
def test_backfills_are_partitioned_by_team(api, emulator, make_api):
    backfill_id = _backfill(api)
    other_team = make_api(team=SEED.second_environment_id)
    assert other_team.get(f"{ROOT}{backfill_id}").status_code == 404
    # And the other way around.
    other = emulator.state.add_batch_export(
        "Other", {"type": "NoOp", "config": {}}, team_id=SEED.second_environment_id
    )
    their = emulator.state.start_backfill(
        other["id"], datetime(2023, 1, 1, tzinfo=timezone.utc), datetime(2023, 1, 2, tzinfo=timezone.utc)
    )
    assert api.get(f"batch_exports/{other['id']}/backfills/{their['id']}").status_code == 404


# -- list (test_list.py) -------------------------------------------------------------------------


def _two_completed(api, emulator) -> None:
    emulator.state.set_run_outcome(HOURLY, duration=0)
    _backfill(api, {"start_at": "2021-01-01T00:00:00+00:00", "end_at": "2021-01-01T01:00:00+00:00"})
    _backfill(api, {"start_at": "2021-01-01T01:00:00+00:00", "end_at": "2021-01-01T03:00:00+00:00"})


@posthog_case(f"{LIST}::test_list_batch_export_backfills", endpoint=BACKFILLS)
def test_list_batch_export_backfills(api, emulator):
    _two_completed(api, emulator)
    assert len(api.get(ROOT).json()["results"]) == 2


@posthog_case(f"{LIST}::test_cannot_list_batch_export_backfills_for_other_organizations", endpoint=BACKFILLS)
def test_cannot_list_batch_export_backfills_for_other_organizations(api, emulator, make_api):
    _two_completed(api, emulator)
    assert len(api.get(ROOT).json()["results"]) == 2
    other = make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid), team=SEED.other_team_id)
    response = other.get(ROOT)  # their own project, our export's id
    assert response.status_code == 200
    assert response.json()["results"] == []


@posthog_case(f"{LIST}::test_list_is_partitioned_by_team", endpoint=BACKFILLS)
def test_list_is_partitioned_by_team(api, emulator, make_api):
    _two_completed(api, emulator)
    assert len(api.get(ROOT).json()["results"]) == 2
    response = make_api(team=SEED.second_environment_id).get(ROOT)
    assert response.status_code == 200
    assert response.json()["results"] == []


@posthog_case(f"{LIST}::test_list_batch_export_backfills_pages_over_tied_timestamps", endpoint=BACKFILLS)
@pytest.mark.parametrize("ordering", [None, "created_at", "-created_at", "start_at", "-start_at"])
def test_list_orders_tied_timestamps_by_id(api, emulator, ordering):
    emulator.state.set_run_outcome(HOURLY, duration=0)
    start, tied = datetime(2021, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc)
    ids = []
    for hours in range(1, 6):  # one start, five ends: distinct workflow ids
        backfill = emulator.state.start_backfill(HOURLY, start, start + timedelta(hours=hours))
        backfill["created_at"] = tied
        ids.append(backfill["id"])
    found = api.get(ROOT, params={"ordering": ordering} if ordering else {}).json()["results"]
    descending = ordering is None or ordering.startswith("-")
    assert [row["id"] for row in found] == sorted(ids, reverse=descending)


# -- cancel (test_cancel.py) ---------------------------------------------------------------------


@posthog_case(
    f"{CANCEL}::test_cancelling_a_batch_export_backfill",
    endpoint="batch_exports/{id}/backfills/{backfill_id}/cancel/",
)
def test_cancelling_a_batch_export_backfill(api, emulator):
    emulator.state.set_switches(backfill_row_delay=0.2)  # the workflow creates the row
    emulator.state.set_run_outcome(HOURLY, "hang")
    _backfill(api, {"start_at": "2023-10-23T00:00:00+00:00", "end_at": "2023-10-24T00:00:00+00:00"})
    row = wait_for(
        "the row", lambda: (api.get(ROOT).json()["results"] or [None])[0], timeout=5, interval=0.05
    )
    assert row["status"] in ("Running", "Starting")
    runs = api.get(f"batch_exports/{HOURLY}/runs/", params={"after": "-1d"}).json()["results"]
    assert [run for run in runs if run["backfill"] == row["id"]]
    assert api.post(f"{ROOT}{row['id']}/cancel/").json()["cancelled"] is True
    assert _get(api, row["id"])["status"] == "Cancelled"
    runs = api.get(f"batch_exports/{HOURLY}/runs/", params={"after": "-1d"}).json()["results"]
    mine = [run for run in runs if run["backfill"] == row["id"]]
    assert mine and all(run["status"] == "Cancelled" for run in mine)


# -- read only (test_read_only.py) ---------------------------------------------------------------


@posthog_case(f"{READ_ONLY}::test_cannot_delete_batch_export_backfill", endpoint=BACKFILL)
def test_cannot_delete_batch_export_backfill(api, emulator):
    emulator.state.set_run_outcome(HOURLY, duration=0)
    assert api.delete(f"{ROOT}{_backfill(api)}").status_code == 405


@posthog_case(f"{READ_ONLY}::test_cannot_update_batch_export_backfill", endpoint=BACKFILL)
def test_cannot_update_batch_export_backfill(api, emulator):
    emulator.state.set_run_outcome(HOURLY, duration=0)
    assert api.patch(f"{ROOT}{_backfill(api)}", {"status": "RUNNING"}).status_code == 405
