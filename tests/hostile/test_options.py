"""
Issue 15 #12: options that used to fail late with raw errors fail early and name themselves; and
what already held under load: 200 triggers cancelled in the middle of their requests.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from airflow_provider_phenv.errors import PostHogConnectionConfigError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from airflow_provider_phenv.operators.batch_exports import PostHogTestBatchExportOperator
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
from tests.helpers.hostile_server import hang
from tests.helpers.sensor_modes import cancel_logs_triggers_mid_request
from tests.hostile.conftest import EXPORT_ID, FAST, connection


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("backoff", -1),
        ("backoff_max", -0.5),
        ("timeout", math.inf),
        ("timeout", math.nan),
        ("request_deadline", 0),
        ("max_body_bytes", 0),
        ("max_pages", 1.5),
        ("max_retries", -1),
    ],
)
def test_bad_hook_options_fail_when_built_with_their_name(name, value):
    for build in (PostHogHook, PostHogAsyncHook):
        with pytest.raises(ValueError, match=f"Invalid {name} "):
            build(**{name: value})
    # The sensor hands hook_params on to the triggerer: checked when the DAG is parsed.
    with pytest.raises(ValueError, match=f"Invalid {name} "):
        PostHogBatchExportLogsSensor(task_id="s", batch_export_id=EXPORT_ID, hook_params={name: value})


@pytest.mark.parametrize(
    "extra", [{"timeout": "inf"}, {"timeout": "nan"}, {"request_deadline": "-1"}, {"max_pages": "0"}]
)
def test_bad_limits_in_the_connection_are_named(monkeypatch, extra):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection("https://eu.posthog.com", **extra))
    (name,) = extra
    with pytest.raises(PostHogConnectionConfigError, match=f"extra '{name}'"):
        _ = PostHogHook().settings


def test_limits_come_from_the_connection_and_hook_arguments_win(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT",
        connection("https://eu.posthog.com", max_body_bytes="1000", request_deadline="9", max_pages="7"),
    )
    settings = PostHogHook().settings
    assert (settings.max_body_bytes, settings.request_deadline, settings.max_pages) == (1000, 9.0, 7)
    settings = PostHogHook(max_pages=3, request_deadline=2).settings
    assert (settings.max_pages, settings.request_deadline) == (3, 2.0)


def test_default_limits(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection("https://eu.posthog.com", timeout="12"))
    settings = PostHogHook().settings
    assert (settings.max_body_bytes, settings.request_deadline, settings.max_pages) == (
        32 << 20,
        24.0,
        10_000,
    )


def test_a_templated_steps_is_checked_before_any_request(hostile):
    operator = PostHogTestBatchExportOperator(
        task_id="t", batch_export_id=EXPORT_ID, steps="{{ params.steps }}", hook_params=FAST
    )
    operator.render_template_fields({"params": {"steps": "all"}})
    with pytest.raises(ValueError, match="Invalid steps 'all'"):
        operator.execute({})
    assert hostile.requests == []


def test_200_triggers_cancelled_mid_request_leave_nothing_behind(hostile):
    # Every trigger is inside a request the server never answers when the triggerer cancels them.
    hostile.on(hang(10))

    hook_params = {**FAST, "timeout": 30, "request_deadline": 60}
    sent, results, leftover = asyncio.run(
        cancel_logs_triggers_mid_request(
            hostile, EXPORT_ID, count=200, polls=200, poll_interval=0.05, hook_params=hook_params
        )
    )
    assert sent == 200
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert leftover == []
    json.dumps([str(r) for r in results])  # nothing odd escaped
