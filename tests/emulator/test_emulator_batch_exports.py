"""
Batch export CRUD, pause/unpause and destination tests (docs/posthog-api.md §11 items 8, 14-25,
30-34, 39).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from phenv_emulator import SEED
from phenv_emulator.store.seed_data import populate
from phenv_emulator.store.state import EmulatorState

from tests.helpers.api import INVALID_INPUT, NOT_FOUND, PERMISSION_DENIED

S3_DESTINATION = {
    "type": "AwsS3",
    "config": {"bucket_name": "my-bucket", "region": "us-east-1", "prefix": "events/"},
    "integration": SEED.s3_integration_id,
}


def payload(**overrides):
    return {"name": "My export", "interval": "hour", "destination": S3_DESTINATION, **overrides}


def test_list_is_paginated_newest_first_without_workflows_or_deleted(api):  # 14
    api.delete(f"batch_exports/{SEED.bigquery_export_id}/")
    page = api.get("batch_exports/", params={"limit": 2}).json()
    assert page["count"] == 5
    assert [e["id"] for e in page["results"]] == [SEED.paused_export_id, SEED.postgres_export_id]
    assert page["next"].endswith("/api/projects/1/batch_exports/?limit=2&offset=2")
    assert page["previous"] is None
    middle = api.get("batch_exports/", params={"limit": 2, "offset": 2}).json()
    assert [e["id"] for e in middle["results"]] == [SEED.s3_export_id, SEED.weekly_export_id]
    last = api.get("batch_exports/", params={"limit": 2, "offset": 4}).json()
    assert [e["id"] for e in last["results"]] == [SEED.daily_export_id]
    assert last["next"] is None
    assert last["previous"].endswith("/api/projects/1/batch_exports/?limit=2&offset=2")
    # Hidden from the list, but still retrievable by id.
    assert api.get(f"batch_exports/{SEED.workflows_export_id}/").status_code == 200


def test_create_returns_201_with_defaults_and_echoes_destination(api):  # 15
    response = api.post("batch_exports/", payload())
    assert response.status_code == 201
    export = response.json()
    assert (export["paused"], export["model"], export["latest_runs"]) == (False, "events", [])
    # A new object-storage export writes the standard ".parquet" names.
    expected = {**S3_DESTINATION, "config": {**S3_DESTINATION["config"], "legacy_parquet_extension": False}}
    assert export["destination"] == expected
    assert api.get(f"batch_exports/{export['id']}/").json()["name"] == "My export"


@pytest.mark.parametrize("missing", ["name", "interval", "destination"])
def test_create_requires_name_interval_destination(api, expect_error, missing):  # 15
    body = payload()
    del body[missing]
    expect_error(
        api.post("batch_exports/", body),
        400,
        "validation_error",
        "required",
        "This field is required.",
        missing,
    )


def test_invalid_interval_is_invalid_choice(api, expect_error):  # 16
    expect_error(
        api.post("batch_exports/", payload(interval="every minute")),
        400,
        "validation_error",
        "invalid_choice",
        '"every minute" is not a valid choice.',
        "interval",
    )


def test_sub_hour_interval_needs_the_team_flag(api, emulator, expect_error):  # 17
    expect_error(
        api.post("batch_exports/", payload(interval="every 5 minutes")),
        *PERMISSION_DENIED,
        "Higher frequency batch exports are not enabled for this team.",
    )
    emulator.state.set_feature_flag("high-frequency-batch-exports")
    assert api.post("batch_exports/", payload(interval="every 5 minutes")).status_code == 201


@pytest.mark.parametrize(
    ("destination", "detail"),
    [
        (
            {**S3_DESTINATION, "config": {**S3_DESTINATION["config"], "aws_access_key_id": "AKIA", "zzz": 1}},
            "Configuration has unknown field/s: 'aws_access_key_id', 'zzz'",
        ),
        (
            {**S3_DESTINATION, "config": {"region": "us-east-1", "prefix": "x"}},
            "Configuration missing required field: 'bucket_name'",
        ),
        (
            {"type": "Postgres", "config": {"database": "db", "port": "not-a-port"}},
            "Configuration has invalid type: got 'str', expected 'int'",
        ),
        (
            {"type": "S3", "config": {}},
            "The 'S3' destination type is deprecated and can no longer be used. "
            "Use 'AwsS3' for AWS S3, or 'S3Compatible' for S3-compatible storage.",
        ),
    ],
)
def test_destination_config_validation(api, expect_error, destination, detail):  # 18, §5
    response = api.post("batch_exports/", payload(destination=destination))
    expect_error(response, *INVALID_INPUT, detail, "destination__non_field_errors")


def test_a_missing_integration_is_an_error_of_the_destination(api, expect_error):  # §5
    # Raised by BatchExportSerializer.validate_destination, so attr is the field itself.
    response = api.post(
        "batch_exports/", payload(destination={"type": "AwsS3", "config": S3_DESTINATION["config"]})
    )
    expect_error(
        response,
        *INVALID_INPUT,
        "Integration is required for AwsS3 batch exports",
        "destination",
    )


def test_secrets_never_appear_in_responses(api):  # 19
    destination = {
        "type": "Postgres",
        "config": {"database": "db", "user": "u", "password": "hunter2", "port": "5433"},
    }
    created = api.post("batch_exports/", payload(destination=destination)).json()
    assert created["destination"]["config"] == {"database": "db", "port": 5433}
    seeded = api.get(f"batch_exports/{SEED.postgres_export_id}/").text
    assert "emulator-secret" not in seeded
    assert "password" not in seeded


def test_pause_then_pause_again_is_a_no_op(api, emulator):  # 20, 21
    path = f"batch_exports/{SEED.s3_export_id}/pause"
    before = emulator.state.get_batch_export(SEED.s3_export_id)
    assert api.post(path).json() == {"paused": True}
    paused = emulator.state.get_batch_export(SEED.s3_export_id)
    assert paused["paused"] is True
    assert paused["last_paused_at"] is not None
    assert paused["last_updated_at"] > before["last_updated_at"]
    response = api.post(path)
    assert (response.status_code, response.json()) == (200, {"paused": True})
    assert emulator.state.get_batch_export(SEED.s3_export_id) == paused
    assert api.get(f"batch_exports/{SEED.s3_export_id}").json()["paused"] is True


def test_unpause_and_unpause_of_an_active_export_is_a_no_op(api, emulator):  # 22
    active = emulator.state.get_batch_export(SEED.s3_export_id)
    assert api.post(f"batch_exports/{SEED.s3_export_id}/unpause").json() == {"paused": False}
    assert emulator.state.get_batch_export(SEED.s3_export_id) == active
    assert api.post(f"batch_exports/{SEED.paused_export_id}/unpause", {}).json() == {"paused": False}
    assert emulator.state.get_batch_export(SEED.paused_export_id)["paused"] is False
    assert api.get(f"batch_exports/{SEED.paused_export_id}/backfills/").json()["results"] == []


@pytest.mark.parametrize("clock", ["00:10", "00:59", "01:30", "02:59", "12:00", "23:59"])
def test_the_seeded_pause_is_on_the_day_of_the_reset_at_any_hour(clock):
    state = EmulatorState()
    now = datetime.fromisoformat(f"2026-12-08T{clock}:00+00:00")
    state.clear()
    populate(state, now)
    paused_at = state.get_batch_export(SEED.paused_export_id)["last_paused_at"]
    assert now.replace(hour=0, minute=0) <= paused_at < now


@pytest.mark.usefixtures("prompt_backfills")
def test_unpause_with_backfill_covers_the_paused_time(api, emulator):  # 23, §6.9, §6.5
    # The seeded daily export was paused a few hours ago: less than one interval, so no run.
    paused_at = emulator.state.get_batch_export(SEED.paused_export_id)["last_paused_at"]
    answer = api.post(f"batch_exports/{SEED.paused_export_id}/unpause", {"backfill": True})
    assert answer.json() == {"paused": False}  # no backfill id in the answer
    [backfill] = api.get(f"batch_exports/{SEED.paused_export_id}/backfills/").json()["results"]
    export = api.get(f"batch_exports/{SEED.paused_export_id}/").json()
    assert backfill["start_at"] == paused_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert backfill["end_at"] == export["last_updated_at"]
    # Narrowed to the day's start (midnight UTC), the partial day counts as one expected run.
    midnight = paused_at.replace(hour=0, minute=0, second=0, microsecond=0)
    assert backfill["adjusted_start_at"] == midnight.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert backfill["status"] == "Completed"
    assert backfill["progress"] == {"total_runs": 1, "finished_runs": 1, "progress": 1.0}
    runs = api.get(f"batch_exports/{SEED.paused_export_id}/runs/").json()["results"]
    assert not [run for run in runs if run["backfill"]]


def test_unpause_rejects_a_non_boolean_backfill(api, expect_error):  # 23
    expect_error(
        api.post(f"batch_exports/{SEED.paused_export_id}/unpause", {"backfill": "maybe"}),
        *INVALID_INPUT,
        "Must be a valid boolean.",
        "backfill",
    )


@pytest.mark.parametrize("action", ["pause", "unpause"])
def test_pause_unpause_of_unknown_or_other_team_export_is_404(api, make_api, expect_error, action):  # 8, 24
    expect_error(
        api.post(f"batch_exports/{SEED.owner_uuid}/{action}"),
        *NOT_FOUND,
        "Not found.",
    )
    # An export of another environment of the same organization is not found either.
    postgres = {"type": "Postgres", "config": {"database": "staging"}}
    staging = (
        make_api(team=SEED.second_environment_id).post("batch_exports/", payload(destination=postgres)).json()
    )
    expect_error(api.post(f"batch_exports/{staging['id']}/{action}"), *NOT_FOUND, "Not found.")


@pytest.mark.parametrize(
    ("action", "export_id"), [("pause", SEED.s3_export_id), ("unpause", SEED.paused_export_id)]
)
def test_pause_or_unpause_with_missing_schedule_is_400(api, emulator, expect_error, action, export_id):  # 24
    emulator.state.delete_schedule(export_id)
    expect_error(
        api.post(f"batch_exports/{export_id}/{action}"),
        *INVALID_INPUT,
        f"Invalid request to {action} a BatchExport could not be carried out",
    )


def test_delete_is_a_soft_delete(api, emulator, expect_error):  # 39
    assert api.delete(f"batch_exports/{SEED.s3_export_id}/").status_code == 204
    expect_error(api.get(f"batch_exports/{SEED.s3_export_id}/"), *NOT_FOUND, "Not found.")
    assert SEED.s3_export_id not in [e["id"] for e in api.get("batch_exports/").json()["results"]]
    assert emulator.state.get_batch_export(SEED.s3_export_id)["deleted"] is True


def test_integration_must_belong_to_the_team(make_api, expect_error):
    expect_error(
        make_api(team=SEED.second_environment_id).post("batch_exports/", payload()),
        400,
        "validation_error",
        "does_not_exist",
        f'Invalid pk "{SEED.s3_integration_id}" - object does not exist.',
        "destination__integration",
    )


def test_patch_merges_config_and_keeps_the_type(api):
    path = f"batch_exports/{SEED.s3_export_id}/"
    updated = api.patch(path, {"destination": {"config": {"prefix": "new/"}}}).json()
    assert updated["destination"]["config"]["prefix"] == "new/"
    assert updated["destination"]["config"]["bucket_name"] == "hedgebox-events"
    response = api.patch(path, {"destination": {"type": "BigQuery", "config": {}}})
    assert response.status_code == 400
    assert "Cannot change destination type" in response.json()["detail"]


def test_test_endpoint_bare_errors_and_steps(api):  # 30, 31
    missing = api.get("batch_exports/test/")
    assert (missing.status_code, missing.content) == (400, b"")
    unsupported = api.get("batch_exports/test/", params={"destination": "Postgres"})
    assert (unsupported.status_code, unsupported.content) == (404, b"")
    steps = api.get("batch_exports/test/", params={"destination": "AwsS3"}).json()["steps"]
    assert [step["name"] for step in steps] == [
        "Ensure we can assume provided AWS role",
        "Check S3 bucket exists",
    ]
    assert all(step["description"] and step["result"] is None for step in steps)
    for kind in ("BigQuery", "Snowflake", "Databricks", "S3Compatible", "AzureBlob"):
        assert api.get("batch_exports/test", params={"destination": kind}).json()["steps"]


def test_run_test_step_new_passes_and_fails_deterministically(api):  # 32
    passed = api.post("batch_exports/run_test_step_new/", {**payload(), "step": 1}).json()
    assert passed == {
        "name": "Check S3 bucket exists",
        "description": "Ensure the configured S3 bucket exists and that we have the required permissions "
        "to access it.",
        "result": {"status": "Passed", "message": None},
    }
    destination = {**S3_DESTINATION, "config": {**S3_DESTINATION["config"], "bucket_name": "missing-bucket"}}
    failed = api.post(
        "batch_exports/run_test_step_new/", {**payload(destination=destination), "step": 1}
    ).json()
    assert failed["result"] == {
        "status": "Failed",
        "message": "Bucket 'missing-bucket' does not exist or we don't have permissions to use it",
    }
    bigquery = {
        "type": "BigQuery",
        "config": {"dataset_id": "d"},
        "integration": SEED.bigquery_integration_id,
    }
    skipped = api.post("batch_exports/run_test_step_new", {**payload(destination=bigquery), "step": 0}).json()
    assert skipped["result"]["status"] == "Skipped"


def test_run_test_step_new_validates_the_full_payload(api, expect_error):  # 33
    body = {**payload(), "step": 0}
    del body["name"]
    expect_error(
        api.post("batch_exports/run_test_step_new/", body),
        400,
        "validation_error",
        "required",
        "This field is required.",
        "name",
    )
    databricks = {
        "type": "Databricks",
        "config": {"http_path": "p", "catalog": "c", "schema": "s", "table_name": "t"},
    }
    expect_error(
        api.post("batch_exports/run_test_step_new/", {**payload(destination=databricks), "step": 0}),
        *INVALID_INPUT,
        "Integration is required for Databricks batch exports",
        "destination",
    )


def test_run_test_step_merges_the_stored_config(api):  # 34
    path = f"batch_exports/{SEED.s3_export_id}/run_test_step/"
    export = api.get(f"batch_exports/{SEED.s3_export_id}/").json()
    body = {"name": export["name"], "interval": export["interval"], "step": 1}
    ok = api.post(
        path,
        {
            **body,
            "destination": {
                "type": "AwsS3",
                "config": {},
                "integration": export["destination"]["integration"],
            },
        },
    )
    assert ok.json()["result"]["status"] == "Passed"
    failing = {
        "type": "AwsS3",
        "config": {"bucket_name": "gone-missing"},
        "integration": SEED.s3_integration_id,
    }
    assert api.post(path, {**body, "destination": failing}).json()["result"]["status"] == "Failed"
    # The stored AwsS3 keys are valid S3Compatible ones, so the type change is what is refused.
    changed = api.post(path, {**body, "destination": {"type": "S3Compatible", "config": {}}})
    assert changed.status_code == 400
    assert "Cannot change destination type" in changed.json()["detail"]
