"""``airflow connections test`` says what the operators will miss, and answers within seconds."""

from __future__ import annotations

import json
import socket
import time

from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from tests.helpers.emulator import api_requests, connection_json


def _connect(monkeypatch, emulator, *, key=None, project_id: object = 1, host=None, **extra):
    extra_fields = dict(extra)
    if project_id is not None:
        extra_fields["project_id"] = str(project_id)
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT",
        json.dumps(
            {
                "conn_type": "posthog",
                "host": host or emulator.url,
                "password": key or emulator.api_key,
                "extra": extra_fields,
            }
        ),
    )


def test_a_complete_connection_passes(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    ok, message = PostHogHook().test_connection()
    assert ok, message
    assert "project 1 is readable" in message and "dashboard:write" in message
    paths = [record.path for record in api_requests(emulator)]
    assert paths == ["/api/personal_api_keys/@current/", "/api/projects/1/batch_exports/"]


def test_no_project_id_fails_and_says_so(emulator, monkeypatch):
    _connect(monkeypatch, emulator, project_id=None)
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert "no extra 'project_id'" in message


def test_missing_write_scopes_are_named(emulator, monkeypatch):
    key = emulator.state.add_api_key(["batch_export:read", "dashboard:read"])
    _connect(monkeypatch, emulator, key=key)
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert "lacks the scopes batch_export:write, dashboard:write" in message
    assert "project" not in message.split("lacks")[0]  # the project itself was fine


def test_write_scope_grants_read_and_star_grants_all(emulator, monkeypatch):
    for scopes in (["batch_export:write", "dashboard:write"], ["*"]):
        _connect(monkeypatch, emulator, key=emulator.state.add_api_key(scopes))
        ok, message = PostHogHook().test_connection()
        assert ok, (scopes, message)


def test_a_key_that_reads_dashboards_only_still_checks_the_project(emulator, monkeypatch):
    _connect(monkeypatch, emulator, key=emulator.state.add_api_key(["dashboard:write"]), project_id=999)
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert "lacks the scopes batch_export:read, batch_export:write" in message
    assert "project 999 cannot be read" in message and "Project not found" in message


def test_a_project_of_another_organization_fails(emulator, monkeypatch):
    _connect(monkeypatch, emulator, project_id=SEED.other_team_id)
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert f"project {SEED.other_team_id} cannot be read" in message
    assert "You don't have access to the project." in message


def test_a_rejected_key_fails_with_the_hint(emulator, monkeypatch):
    _connect(monkeypatch, emulator, key="phx_wrong")
    ok, message = PostHogHook().test_connection()
    assert not ok
    assert "HTTP 401" in message and "rejected the personal API key" in message
    assert len(api_requests(emulator)) == 1  # not retried


def test_an_older_posthog_without_the_key_endpoint_still_checks_the_project(emulator, monkeypatch):
    emulator.faults.add("status", status=404, path="/api/personal_api_keys/")
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    ok, message = PostHogHook().test_connection()
    assert ok, message
    assert "scopes could not be read" in message


def test_a_throttled_test_is_not_retried(emulator, monkeypatch):
    emulator.faults.add("status", status=429, retry_after=30)
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    started = time.monotonic()
    ok, message = PostHogHook().test_connection()
    assert not ok and "HTTP 429" in message
    assert time.monotonic() - started < 5


def test_an_unreachable_host_answers_within_seconds(emulator, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _connect(monkeypatch, emulator, host=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    ok, message = PostHogHook(max_retries=5).test_connection()
    elapsed = time.monotonic() - started
    assert not ok
    assert message.startswith(f"Could not reach PostHog at http://127.0.0.1:{port} within 5 s")
    assert elapsed < 5, elapsed


def test_the_hook_keeps_its_own_retries_after_a_test(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, max_retries="4"))
    hook = PostHogHook()
    assert hook.test_connection()[0]
    assert hook.settings.max_retries == 4


def test_the_access_scopes_are_named_as_needed_only_by_access_tasks(emulator, monkeypatch):
    key = emulator.state.add_api_key(["batch_export:write", "dashboard:write", "organization:read"])
    _connect(monkeypatch, emulator, key=key)
    ok, message = PostHogHook().test_connection()
    assert ok, message  # other tasks need none of them
    assert (
        "Only dashboard tasks that set editors, viewers or default_access also need "
        "access_control:write, organization_member:read, which it lacks." in message
    )
    _connect(monkeypatch, emulator)  # the seeded key has every scope
    assert "also need" not in PostHogHook().test_connection()[1]
