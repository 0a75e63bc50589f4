"""Every PostHogHook method over real HTTP against the emulator: requests sent, JSON returned."""

from __future__ import annotations

import json
import logging

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import (
    PostHogAuthError,
    PostHogBadRequestError,
    PostHogNotFoundError,
)
from airflow_provider_phenv.hooks.posthog import PostHogHook
from tests.helpers.emulator import api_requests, connection_json

UNKNOWN_EXPORT = "01900000-0000-7000-8000-00000000dead"


@pytest.fixture
def hook(posthog_conn):
    with PostHogHook(backoff=0.01, backoff_max=0.02) as hook:
        yield hook


def test_pause_and_unpause_change_the_export(hook, emulator):
    assert hook.pause_batch_export(SEED.s3_export_id) == {"paused": True}
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is True
    assert hook.unpause_batch_export(SEED.s3_export_id, backfill=True) == {"paused": False}
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is False
    sent = api_requests(emulator)
    assert [(r.method, r.path) for r in sent] == [
        ("POST", f"/api/projects/1/batch_exports/{SEED.s3_export_id}/pause/"),
        ("POST", f"/api/projects/1/batch_exports/{SEED.s3_export_id}/unpause/"),
    ]
    assert sent[1].body == {"backfill": True}
    assert all(r.user_agent.startswith("airflow-provider-phenv/") for r in sent)


def test_get_batch_export(hook):
    export = hook.get_batch_export(SEED.s3_export_id)
    assert export["id"] == SEED.s3_export_id
    assert export["destination"]["type"] == "AwsS3"


def test_project_id_argument_overrides_connection(hook, emulator):
    with pytest.raises(PostHogNotFoundError, match="Project not found"):
        hook.get_batch_export(SEED.s3_export_id, project_id=999)
    assert api_requests(emulator)[0].path.startswith("/api/projects/999/")


@pytest.mark.parametrize("prefix", ["projects", "environments"])
def test_api_prefix_is_projects_unless_set(emulator, monkeypatch, prefix):
    # projects is PostHog's canonical prefix (docs/posthog-api.md §1); environments still works.
    extra = {} if prefix == "projects" else {"api_prefix": prefix}
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, **extra))
    with PostHogHook() as hook:
        hook.get_batch_export(SEED.s3_export_id)
        hook.pause_batch_export(SEED.s3_export_id)
        hook.list_dashboards()
    assert {r.path.split("/")[2] for r in api_requests(emulator)} == {prefix}


def test_uri_connection_against_emulator(emulator, monkeypatch):
    host = emulator.url.removeprefix("http://")
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT", f"posthog://http://:{emulator.api_key}@{host}/?project_id=1"
    )
    assert PostHogHook().get_batch_export(SEED.s3_export_id)["id"] == SEED.s3_export_id


def test_current_project_alias(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, project_id="@current"))
    assert PostHogHook().get_batch_export(SEED.s3_export_id)["team_id"] == SEED.team_id


def test_test_steps_and_running_them(hook, emulator):
    steps = hook.get_batch_export_test_steps("AwsS3")["steps"]
    assert len(steps) == 2
    result = hook.run_batch_export_test_step(SEED.s3_export_id, 1)
    assert result["result"] == {"status": "Passed", "message": None}
    # Without a payload the hook sends the export's own fields, which PostHog validates in full.
    sent = api_requests(emulator)[-1]
    assert sent.body["name"] and sent.body["interval"] and sent.body["destination"]["type"] == "AwsS3"
    assert sent.body["step"] == 1


def test_run_test_step_new(hook):
    payload = {
        "name": "new export",
        "interval": "hour",
        "destination": {
            "type": "AwsS3",
            "integration": SEED.s3_integration_id,
            "config": {"bucket_name": "my-bucket", "region": "us-east-1", "prefix": "events/"},
        },
    }
    # Step 0 assumes the integration's AWS role: without a role ARN PostHog skips it (§6.6).
    assert hook.run_batch_export_test_step_new(payload, 0)["result"]["status"] == "Skipped"
    assert hook.run_batch_export_test_step_new(payload, 1)["result"] == {"status": "Passed", "message": None}


def test_logs_page_and_filters(hook, emulator):
    emulator.state.add_log_entries(
        SEED.bigquery_export_id,
        [
            {"timestamp": "2025-01-01T00:00:01Z", "level": "INFO", "message": "first"},
            {
                "timestamp": "2025-01-01T00:00:02Z",
                "level": "ERROR",
                "message": "boom",
                "instance_id": "run-9",
            },
        ],
    )
    page = hook.get_batch_export_logs(
        SEED.bigquery_export_id, after="2025-01-01T00:00:00Z", before="2025-01-02T00:00:00Z", limit=10
    )
    assert [entry["message"] for entry in page["results"]] == ["boom", "first"]
    errors = hook.get_batch_export_logs(
        SEED.bigquery_export_id, level=["error"], instance_id="run-9", before="2025-01-02T00:00:00Z"
    )
    assert [entry["message"] for entry in errors["results"]] == ["boom"]
    assert api_requests(emulator)[-1].query["level"] == ["ERROR"]


def test_dashboards_create_list_and_collaborators(hook, emulator):
    created = hook.create_dashboard(name="Ops", description="made by a test", restriction_level=37)
    assert created["name"] == "Ops" and created["restriction_level"] == 37
    assert any(d["id"] == created["id"] for d in hook.list_dashboards(search="Ops"))
    record = hook.add_dashboard_collaborator(created["id"], SEED.bob_uuid)
    assert record["level"] == 37 and record["user"]["uuid"] == SEED.bob_uuid
    collaborators = hook.list_dashboard_collaborators(created["id"])
    assert [c["user"]["uuid"] for c in collaborators] == [SEED.bob_uuid]
    assert hook.get_dashboard(created["id"])["id"] == created["id"]


def test_test_connection(hook):
    ok, message = hook.test_connection()
    assert ok, message
    assert "Connected to PostHog" in message


def test_test_connection_with_a_wrong_key(emulator, monkeypatch):
    conn = json.loads(connection_json(emulator))
    conn["password"] = "phx_wrong"
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps(conn))
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert "HTTP 401" in message and "phx_wrong" not in message


# -- errors ------------------------------------------------------------------------------------


def test_not_found_names_the_export_and_is_not_retried(hook, emulator):
    with pytest.raises(PostHogNotFoundError) as raised:
        hook.pause_batch_export(UNKNOWN_EXPORT)
    error = raised.value
    assert (error.status_code, error.code, error.detail) == (404, "not_found", "Not found.")
    assert UNKNOWN_EXPORT in str(error) and "POST" in str(error)
    assert len(api_requests(emulator)) == 1


def test_wrong_key_names_the_host_and_hides_the_key(emulator, monkeypatch):
    conn = json.loads(connection_json(emulator))
    conn["password"] = "phx_wrong_key_value"
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps(conn))
    with pytest.raises(PostHogAuthError) as raised:
        PostHogHook().get_batch_export(SEED.s3_export_id)
    message = str(raised.value)
    assert "HTTP 401" in message and emulator.url in message and "region" in message
    assert "phx_wrong_key_value" not in message and raised.value.code == "authentication_failed"


def test_missing_scope(emulator, monkeypatch):
    key = emulator.state.add_api_key(scopes=["dashboard:read"])
    conn = json.loads(connection_json(emulator))
    conn["password"] = key
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps(conn))
    with pytest.raises(PostHogAuthError, match="missing required scope 'batch_export:write'") as raised:
        PostHogHook().pause_batch_export(SEED.s3_export_id)
    assert "Personal API keys" in str(raised.value)


def test_other_organization_project(hook):
    with pytest.raises(PostHogAuthError, match="You don't have access to the project") as raised:
        hook.list_dashboards(project_id=SEED.other_team_id)
    assert "project_id 2" in str(raised.value)


def test_validation_error_carries_posthog_fields(hook):
    with pytest.raises(PostHogBadRequestError) as raised:
        hook.create_dashboard(name="From a template", use_template="NO_SUCH_TEMPLATE")
    error = raised.value
    assert (error.status_code, error.type, error.attr) == (400, "validation_error", "use_template")
    assert error.detail == "Invalid template provided: NO_SUCH_TEMPLATE"


def test_collaborator_rejection_message(hook):
    with pytest.raises(PostHogBadRequestError, match="Cannot add collaborators to a dashboard on the lowest"):
        hook.add_dashboard_collaborator(SEED.web_dashboard_id, SEED.bob_uuid)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.pause_batch_export("not-a-uuid"), "Invalid batch_export_id 'not-a-uuid'"),
        (lambda h: h.unpause_batch_export(SEED.s3_export_id, backfill="yes"), "Invalid backfill 'yes'"),
        (lambda h: h.get_batch_export(SEED.s3_export_id, project_id="abc"), "Invalid project_id 'abc'"),
        (lambda h: h.get_batch_export_test_steps("Kafka"), "Invalid destination type 'Kafka'"),
        (lambda h: h.get_batch_export_test_steps("Postgres"), "Invalid destination type 'Postgres'"),
        (lambda h: h.get_batch_export_logs(SEED.s3_export_id, limit=501), "Invalid limit 501"),
        (lambda h: h.get_batch_export_logs(SEED.s3_export_id, level="fatal"), "Invalid level 'fatal'"),
        (
            lambda h: h.get_batch_export_logs(SEED.s3_export_id, after="yesterday"),
            "Invalid after 'yesterday'",
        ),
        (lambda h: h.get_dashboard(0), "Invalid dashboard_id 0"),
        (lambda h: h.get_dashboard("12a"), "Invalid dashboard_id '12a'"),
        (lambda h: h.create_dashboard(name=" "), "Invalid dashboard name ' '"),
        (lambda h: h.create_dashboard(name="x", restriction_level=30), "Invalid restriction_level 30"),
        (
            lambda h: h.create_dashboard(name="x", use_template="a", use_dashboard=1),
            "cannot be used together",
        ),
        (lambda h: h.add_dashboard_collaborator(1, "bob"), "Invalid user_uuid 'bob'"),
        (lambda h: h.add_dashboard_collaborator(1, SEED.bob_uuid, level=50), "Invalid level 50"),
        (lambda h: h.run_batch_export_test_step_new({"name": "x"}, 0), "Invalid interval None"),
    ],
)
def test_bad_input_fails_before_any_request(hook, emulator, call, message):
    with pytest.raises(ValueError, match=message):
        call(hook)
    assert api_requests(emulator) == []


def test_key_never_logged(emulator, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    emulator.faults.add("status", status=503, times=1)
    hook = PostHogHook(backoff=0.01)
    hook.get_batch_export(SEED.s3_export_id)
    with pytest.raises(PostHogNotFoundError):
        hook.get_batch_export(UNKNOWN_EXPORT)
    hook.test_connection()
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "Retrying" in logged
    assert emulator.api_key not in logged
