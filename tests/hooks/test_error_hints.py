"""Error messages say what was wrong, about whom, and where to look: hints and rendered templates."""

from __future__ import annotations

import json

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogBadRequestError, PostHogNotFoundError
from airflow_provider_phenv.hooks.calls import ApiCall, export_call
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.hooks.settings import PostHogSettings
from airflow_provider_phenv.hooks.transport import Exchange
from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator
from airflow_provider_phenv.operators.dashboards import PostHogAddDashboardCollaboratorOperator
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor

UNKNOWN_EXPORT = "01900000-0000-7000-8000-00000000dead"
SETTINGS = PostHogSettings(
    conn_id="posthog_default",
    base_url="https://eu.posthog.com",
    api_key="phx_x",
    project_id="1",
    api_prefix="environments",
    timeout=30.0,
    max_retries=0,
)


def _hint(call: ApiCall, status: int, detail: str) -> str | None:
    from dataclasses import replace

    return Exchange(SETTINGS, replace(call, project_id="1"), "").hint(status, {"detail": detail})


def test_404_of_a_batch_export_names_it_and_where_to_look(emulator, posthog_conn):
    with PostHogHook() as hook, pytest.raises(PostHogNotFoundError) as raised:
        hook.get_batch_export(UNKNOWN_EXPORT)
    message = str(raised.value)
    assert f"PostHog has no batch export {UNKNOWN_EXPORT} in project 1" in message
    assert "Data pipelines > Destinations" in message and "project that owns it" in message


def test_404_of_a_dashboard_names_it(emulator, posthog_conn):
    with (
        PostHogHook() as hook,
        pytest.raises(PostHogNotFoundError, match=r"no dashboard 999 in project 1.*Dashboards"),
    ):
        hook.get_dashboard(999)


def test_404_of_a_project_says_to_check_project_id_and_region(emulator, posthog_conn):
    with PostHogHook() as hook, pytest.raises(PostHogNotFoundError, match="Project 999 does not exist"):
        hook.get_batch_export(SEED.s3_export_id, project_id=999)


def test_collaborator_without_project_access_is_named(emulator, posthog_conn):
    op = PostHogAddDashboardCollaboratorOperator(
        task_id="add", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.carol_uuid
    )
    with pytest.raises(PostHogBadRequestError) as raised:
        op.execute({})
    message = str(raised.value)
    assert "Cannot add collaborators that have no access to the project." in message
    assert f"User {SEED.carol_uuid} is not a member of project 1" in message
    assert f"dashboard {SEED.restricted_dashboard_id}" in message


def test_older_builds_internal_scope_on_destination_tests():
    call = export_call(SEED.s3_export_id, "run_test_step/", method="POST")
    hint = _hint(call, 403, "API key missing required scope 'INTERNAL'")
    assert hint is not None
    assert "does not let personal API keys run destination tests" in hint
    assert "upgrade PostHog or skip the test" in hint


def test_older_builds_logs_without_key_access():
    call = export_call(SEED.s3_export_id, "logs/")
    hint = _hint(call, 403, "This action does not support Personal API Key access")
    assert hint is not None and "read batch export logs" in hint and "upgrade PostHog" in hint


def test_lowest_restriction_hint_names_access_control():
    call = ApiCall(path="dashboards/3/collaborators/", resource="dashboard 3", method="POST", body={})
    hint = _hint(call, 400, "Cannot add collaborators to a dashboard on the lowest restriction level.")
    assert hint is not None and "restriction_level=37" in hint and "access-control" in hint


def test_rendered_template_is_named_when_its_value_is_invalid():
    class TI:
        def xcom_pull(self, **_kwargs):
            return None

    template = "{{ ti.xcom_pull(task_ids='unpause_export', key='unpaused_at') }}"
    sensor = PostHogBatchExportLogsSensor(task_id="wait", batch_export_id=SEED.s3_export_id, since=template)
    sensor.render_template_fields({"ti": TI()})
    with pytest.raises(ValueError) as raised:
        sensor.checked_fields()
    message = str(raised.value)
    assert message.startswith("Invalid since 'None'")
    assert f"since was rendered from template {template!r}" in message
    assert "an xcom_pull that found nothing renders as 'None'" in message


def test_a_literal_value_gets_no_template_note():
    with pytest.raises(ValueError) as raised:
        PostHogPauseBatchExportOperator(task_id="pause", batch_export_id="nope")
    assert "template" not in str(raised.value)


def test_a_template_rendering_something_wrong_other_than_none():
    op = PostHogPauseBatchExportOperator(task_id="pause", batch_export_id="{{ params.export }}")
    op.render_template_fields({"params": {"export": "oops"}})
    with pytest.raises(ValueError) as raised:
        op.checked_fields()
    message = str(raised.value)
    assert "batch_export_id was rendered from template '{{ params.export }}'" in message
    assert "xcom_pull" not in message
    json.dumps(message)  # plain text


def test_a_403_for_restriction_level_says_who_may_change_it_not_check_the_project():
    detail = (
        "Only the dashboard owner and project admins have the restriction rights required to change the "
        "dashboard's restriction level."
    )
    hint = _hint(ApiCall(path="dashboards/7/", method="PATCH", resource="dashboard 7"), 403, detail)
    assert hint is not None
    assert "creator and project admins may change its restriction_level" in hint
    assert "project_id" not in hint
