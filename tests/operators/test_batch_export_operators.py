"""Pause, unpause and test operators against the emulator over HTTP."""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.operators.batch_exports import (
    PostHogDestinationTestError,
    PostHogPauseBatchExportOperator,
    PostHogTestBatchExportOperator,
    PostHogUnpauseBatchExportOperator,
)
from tests.helpers.builds import builds
from tests.helpers.emulator import FAST, api_requests


def test_pause_returns_small_xcom_and_sets_link(emulator, posthog_conn):
    op = PostHogPauseBatchExportOperator(task_id="pause", batch_export_id=SEED.s3_export_id)
    assert op.execute({}) == {"batch_export_id": SEED.s3_export_id, "paused": True}
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is True
    assert op.batch_export_url == f"{emulator.url}/project/1/batch_exports/{SEED.s3_export_id}"
    assert len(api_requests(emulator)) == 1


def test_pause_twice_is_a_no_op(emulator, posthog_conn):
    op = PostHogPauseBatchExportOperator(task_id="pause", batch_export_id=SEED.s3_export_id)
    op.execute({})
    stamp = emulator.state.get_batch_export(SEED.s3_export_id)["last_updated_at"]
    assert op.execute({})["paused"] is True
    assert emulator.state.get_batch_export(SEED.s3_export_id)["last_updated_at"] == stamp


def test_unpause_with_templated_backfill(emulator, posthog_conn):
    op = PostHogUnpauseBatchExportOperator(
        task_id="unpause",
        batch_export_id="{{ params.export }}",
        backfill="{{ params.backfill }}",
        project_id="{{ params.project }}",
    )
    op.render_template_fields({"params": {"export": SEED.paused_export_id, "backfill": True, "project": 1}})
    result = op.execute({})
    assert result == {"batch_export_id": SEED.paused_export_id, "paused": False}
    assert emulator.state.get_batch_export(SEED.paused_export_id)["paused"] is False
    assert [r.body for r in api_requests(emulator) if r.method == "POST"] == [{"backfill": True}]


def test_pause_retries_a_lost_response(emulator, posthog_conn):
    emulator.faults.add("lost_response", path="/pause", times=1)
    op = PostHogPauseBatchExportOperator(task_id="pause", batch_export_id=SEED.s3_export_id, **FAST)
    assert op.execute({})["paused"] is True
    assert [r.status for r in api_requests(emulator)] == [None, 200]


def test_test_operator_runs_every_step_of_an_existing_export(emulator, posthog_conn):
    op = PostHogTestBatchExportOperator(task_id="test", batch_export_id=SEED.s3_export_id)
    results = op.execute({})
    # Step 0 (assume role) is Skipped without a role ARN (§6.6), which does not fail the task.
    assert [(r["step"], r["status"]) for r in results] == [(0, "Skipped"), (1, "Passed")]
    assert all(r["name"] for r in results)
    # GET the export, GET its steps, then one POST per step: the least the API allows.
    assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in api_requests(emulator)] == [
        ("GET", SEED.s3_export_id),
        ("GET", "test"),
        ("POST", "run_test_step"),
        ("POST", "run_test_step"),
    ]


def test_test_operator_selected_steps_by_name(posthog_conn):
    steps = PostHogTestBatchExportOperator(task_id="t", batch_export_id=SEED.s3_export_id).execute({})
    op = PostHogTestBatchExportOperator(
        task_id="test", batch_export_id=SEED.s3_export_id, steps=[steps[1]["name"]]
    )
    assert [r["step"] for r in op.execute({})] == [1]


def _payload(bucket: str) -> dict:
    return {
        "name": "to be created",
        "interval": "hour",
        "destination": {
            "type": "AwsS3",
            "integration": SEED.s3_integration_id,
            "config": {"bucket_name": bucket, "region": "us-east-1", "prefix": "events/"},
        },
    }


def test_test_operator_for_a_payload_before_creating(emulator, posthog_conn):
    op = PostHogTestBatchExportOperator(task_id="test", batch_export=_payload("good-bucket"))
    assert [r["status"] for r in op.execute({})] == ["Skipped", "Passed"]
    assert {r.path.split("/")[-2] for r in api_requests(emulator) if r.method == "POST"} == {
        "run_test_step_new"
    }


def test_test_operator_fails_on_the_failed_step_with_posthogs_message(posthog_conn):
    op = PostHogTestBatchExportOperator(task_id="test", batch_export=_payload("missing-bucket"))
    with pytest.raises(PostHogDestinationTestError) as raised:
        op.execute({})
    message = str(raised.value)
    assert "failed at step 1" in message and "missing-bucket" in message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: PostHogPauseBatchExportOperator(task_id="t", batch_export_id="42"),
            "Invalid batch_export_id '42'",
        ),
        (
            lambda: PostHogUnpauseBatchExportOperator(
                task_id="t", batch_export_id=SEED.s3_export_id, backfill="y"
            ),
            "Invalid backfill 'y'",
        ),
        (
            lambda: PostHogPauseBatchExportOperator(
                task_id="t", batch_export_id=SEED.s3_export_id, project_id="x"
            ),
            "Invalid project_id 'x'",
        ),
        (lambda: PostHogTestBatchExportOperator(task_id="t"), "exactly one of batch_export_id"),
        (
            lambda: PostHogTestBatchExportOperator(
                task_id="t", batch_export_id=SEED.s3_export_id, steps=[-1]
            ),
            "Invalid step -1",
        ),
        (
            lambda: PostHogTestBatchExportOperator(
                task_id="t", batch_export_id=SEED.s3_export_id, steps="all"
            ),
            "Invalid steps 'all'",
        ),
        (
            lambda: PostHogTestBatchExportOperator(
                task_id="t", batch_export={**_payload("b"), "interval": "minute"}
            ),
            "Invalid interval 'minute'",
        ),
        (
            lambda: PostHogTestBatchExportOperator(
                task_id="t", batch_export={**_payload("b"), "destination": {"type": "Kafka"}}
            ),
            "Invalid destination type 'Kafka'",
        ),
    ],
)
def test_literal_bad_input_fails_when_the_dag_is_parsed(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_templated_bad_input_fails_before_any_request(emulator, posthog_conn):
    op = PostHogPauseBatchExportOperator(task_id="t", batch_export_id="{{ params.export }}")
    op.render_template_fields({"params": {"export": "not-a-uuid"}})
    with pytest.raises(ValueError, match="Invalid batch_export_id 'not-a-uuid'"):
        op.execute({})
    assert api_requests(emulator) == []


# -- what PostHog's destination tests really accept (docs/posthog-api.md §6.6, §6.8) -------------


def test_an_existing_export_is_tested_with_every_field_posthog_validates(emulator, posthog_conn):
    emulator.state.set_feature_flag("hogql-batch-exports")
    export = emulator.state.add_batch_export(
        "hogql export",
        emulator.state.get_batch_export(SEED.s3_export_id)["destination"],
        interval="day",
        model="hogql",
        hogql_query="SELECT event FROM events",
        timezone="Europe/Berlin",
        offset_hour=2,
    )
    PostHogTestBatchExportOperator(task_id="test", batch_export_id=export["id"]).execute({})
    sent, *_ = [r.body for r in api_requests(emulator) if r.path.endswith("/run_test_step/")]
    assert {key: sent[key] for key in ("model", "hogql_query", "timezone", "offset_hour", "step")} == {
        "model": "hogql",
        "hogql_query": "SELECT event FROM events",
        "timezone": "Europe/Berlin",
        "offset_hour": 2,
        "step": 0,
    }
    assert "offset_day" not in sent  # null fields are left out


def test_the_legacy_s3_type_is_refused_when_the_dag_is_parsed():
    payload = {**_payload("bucket"), "destination": {"type": "S3", "config": {"bucket_name": "b"}}}
    with pytest.raises(ValueError, match="Invalid destination type 'S3'"):
        PostHogTestBatchExportOperator(task_id="test", batch_export=payload)


def test_an_unknown_step_index_is_refused_before_any_step_runs(emulator, posthog_conn):
    with pytest.raises(ValueError, match=r"Invalid step 7: this destination has the steps"):
        PostHogTestBatchExportOperator(task_id="test", batch_export_id=SEED.s3_export_id, steps=[7]).execute(
            {}
        )
    assert not [r for r in api_requests(emulator) if r.method == "POST"]


def test_a_500_from_a_test_step_is_not_retried(emulator, posthog_conn):
    emulator.faults.add("status", status=500, path="/run_test_step/", times=3)
    with pytest.raises(Exception, match="HTTP 500"):
        PostHogTestBatchExportOperator(task_id="test", batch_export_id=SEED.s3_export_id, **FAST).execute({})
    assert len([r for r in api_requests(emulator) if r.path.endswith("/run_test_step/")]) == 1


# -- older PostHog builds (tests/helpers/builds.py) ----------------------------------------------


@pytest.mark.parametrize("build", builds("no-retry-after", "environments-redirect"), indirect=True)
def test_pause_test_unpause_on_each_build(build, emulator, posthog_conn):
    # Each build throttles the first request once; older ones send no Retry-After (§3).
    emulator.faults.add("status", status=429, retry_after=0, times=1)
    export = SEED.s3_export_id
    assert PostHogPauseBatchExportOperator(task_id="p", batch_export_id=export, **FAST).execute({})["paused"]
    steps = PostHogTestBatchExportOperator(task_id="t", batch_export_id=export, **FAST).execute({})
    assert [step["status"] for step in steps] == ["Skipped", "Passed"]
    unpause = PostHogUnpauseBatchExportOperator(task_id="u", batch_export_id=export, backfill=True, **FAST)
    assert unpause.execute({})["paused"] is False
    assert emulator.state.get_batch_export(export)["paused"] is False


@pytest.mark.parametrize("build", ["internal-test-scope"], indirect=True)
def test_destination_tests_need_internal_scope_on_older_builds(build, emulator, posthog_conn):
    # No personal API key holds INTERNAL (§2.2): the task fails with PostHog's reason, at once.
    op = PostHogTestBatchExportOperator(task_id="t", batch_export_id=SEED.s3_export_id, **FAST)
    with pytest.raises(PostHogError, match="INTERNAL"):
        op.execute({})
    assert len(api_requests(emulator)) == 2  # the export, then one refused request: no retries
