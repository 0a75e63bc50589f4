"""Destination tests (``test``, ``run_test_step_new``, ``run_test_step``), from PostHog's
``products/batch_exports/backend/tests/api/test_destination_tests.py``.

PostHog's tests reach a local object storage, or mock the step; the emulator simulates the steps
(a step passes unless the value it checks contains ``missing``), so these cases check the
request handling: which bodies are valid, what a step answers, and its shape.
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from tests.conformance.payloads import DATABRICKS_CONFIG, S3_CONFIG, add_integration, export_body
from tests.helpers.conformance import posthog_case

SOURCE = "products/batch_exports/backend/tests/api/test_destination_tests.py"
STATUSES = {"Passed", "Failed", "Skipped"}


def s3_compatible(emulator, bucket_name: str = "test-destination-tests-bucket") -> dict:
    return {
        "type": "S3Compatible",
        "integration": add_integration(emulator, "s3-compatible"),
        "config": {**S3_CONFIG, "bucket_name": bucket_name},
    }


def create(api, body: dict) -> str:
    response = api.post("batch_exports/", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@posthog_case(f"{SOURCE}::test_can_get_test_for_destination", endpoint="batch_exports/test/")
@pytest.mark.parametrize("destination", ["AwsS3", "BigQuery", "Snowflake", "Databricks"])
def test_test_lists_named_steps(api, destination):
    response = api.get("batch_exports/test", params={"destination": destination})
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert isinstance(steps, list) and steps
    assert all("name" in step and "description" in step for step in steps)


@posthog_case(
    f"{SOURCE}::test_get_test_for_destination_without_a_test_is_not_found", endpoint="batch_exports/test/"
)
def test_a_destination_without_a_test_is_not_found(api):
    assert api.get("batch_exports/test", params={"destination": "Postgres"}).status_code == 404


@posthog_case(
    f"{SOURCE}::test_can_run_s3_test_step_for_new_destination", endpoint="batch_exports/run_test_step_new/"
)
def test_a_step_of_a_new_destination_passes(api, emulator):
    body = {"step": 0, **export_body(s3_compatible(emulator))}
    response = api.post("batch_exports/run_test_step_new", body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"status": "Passed", "message": None}


@pytest.mark.parametrize(
    "stored_extra",
    [
        pytest.param(
            {},
            marks=posthog_case(
                f"{SOURCE}::test_can_run_s3_test_step_for_destination",
                endpoint="batch_exports/{id}/run_test_step/",
            ),
            id="for_destination",
        ),
        pytest.param(
            {"unknown_field": "unknown"},
            marks=posthog_case(
                f"{SOURCE}::test_can_run_s3_test_step_with_additional_fields",
                endpoint="batch_exports/{id}/run_test_step/",
            ),
            id="stored_keys_no_longer_declared",
        ),
    ],
)
def test_a_step_of_an_export_passes(api, emulator, stored_extra):
    """Also with keys in the stored config that the destination no longer declares: ignored."""
    body = export_body(s3_compatible(emulator))
    export_id = create(api, body)
    with emulator.state.lock:
        emulator.state.batch_exports[export_id]["destination"]["config"].update(stored_extra)
    response = api.post(f"batch_exports/{export_id}/run_test_step", {"step": 0, **body})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"status": "Passed", "message": None}


@posthog_case(
    f"{SOURCE}::test_run_test_step_rejects_destination_type_change",
    endpoint="batch_exports/{id}/run_test_step/",
)
def test_a_step_cannot_change_the_destination_type(api):
    export_id = create(api, export_body())
    # A valid config for the submitted type, so the type change is what is refused.
    body = export_body(
        {
            "type": "S3Compatible",
            "config": {"bucket_name": "my-bucket", "region": "us-east-1", "prefix": "events/"},
        }
    )
    response = api.post(f"batch_exports/{export_id}/run_test_step", {"step": 0, **body})
    assert response.status_code == 400, response.text
    assert "Cannot change destination type" in response.json()["detail"]


@posthog_case(
    f"{SOURCE}::test_can_run_bigquery_test_step_with_castable_type",
    endpoint="batch_exports/{id}/run_test_step/",
)
def test_castable_config_values_are_accepted(api):
    config = {
        "use_json_type": "True",  # str to bool is one of the two conversions PostHog makes
        "project_id": "project",
        "private_key": "private_key",
        "private_key_id": "private_key_id",
        "token_uri": "token_uri",
        "client_email": "client_email",
        "dataset_id": "dataset",
    }
    destination = {"type": "BigQuery", "integration_id": SEED.bigquery_integration_id, "config": config}
    body = export_body(destination, name="my-production-bigquery-destination")
    response = api.post(f"batch_exports/{create(api, body)}/run_test_step", {"step": 0, **body})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["status"] in STATUSES


@posthog_case(
    f"{SOURCE}::test_can_run_databricks_test_step_for_new_destination",
    endpoint="batch_exports/run_test_step_new/",
)
def test_a_databricks_step_runs_with_its_integration(api, emulator):
    destination = {
        "type": "Databricks",
        "integration": add_integration(emulator, "databricks"),
        "config": DATABRICKS_CONFIG,
    }
    body = {"step": 0, **export_body(destination, name="my-databricks-batch-export")}
    response = api.post("batch_exports/run_test_step_new", body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"name", "description", "result"}
    assert response.json()["result"]["status"] in STATUSES


@posthog_case(
    f"{SOURCE}::test_integration_is_required_for_databricks_destination_tests",
    endpoint="batch_exports/run_test_step_new/",
)
def test_a_databricks_step_needs_an_integration(api):
    body = {"step": 0, **export_body({"type": "Databricks", "config": DATABRICKS_CONFIG})}
    response = api.post("batch_exports/run_test_step_new", body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "Integration is required for Databricks batch exports"
