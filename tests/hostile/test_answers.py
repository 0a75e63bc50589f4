"""
Issue 15 #7, #9 and #10, and 11.3's redirects: a success needs evidence, a redirect is followed
only to the same origin with 307/308, PostHog's ``detail`` is shortened, and JSON of the wrong
shape is an error naming the request. Also what already held: invalid JSON, ``Retry-After``
extremes.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import (
    PostHogBadRequestError,
    PostHogRateLimitError,
    PostHogRedirectError,
    PostHogUnexpectedResponseError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from airflow_provider_phenv.hooks.settings import MAX_RETRY_AFTER, WaitForPostHog, parse_retry_after
from airflow_provider_phenv.operators.batch_exports import (
    PostHogPauseBatchExportOperator,
    PostHogTestBatchExportOperator,
    PostHogUnpauseBatchExportOperator,
)
from tests.helpers.hostile_server import HostileServer, json_reply, redirect, reply, sequence
from tests.hostile.conftest import EXPORT_ID, FAST, async_get, connection, sync_get, trigger_event


@pytest.mark.parametrize(
    "answer",
    [json_reply({}), reply(200, b""), reply(204), reply(304), json_reply({"paused": "yes"}), json_reply([])],
    ids=["{}", "empty-200", "204", "304", "paused-not-bool", "list"],
)
@pytest.mark.parametrize("operator", [PostHogPauseBatchExportOperator, PostHogUnpauseBatchExportOperator])
def test_pause_and_unpause_need_evidence(hostile, answer, operator):
    hostile.on(answer)
    with pytest.raises(PostHogUnexpectedResponseError) as raised:
        operator(task_id="t", batch_export_id=EXPORT_ID, hook_params=FAST).execute({})
    assert "POST /api/projects/1/batch_exports/" in str(raised.value)


def test_pause_answered_unpaused_is_an_error(hostile):
    hostile.on(json_reply({"paused": False}))
    with pytest.raises(PostHogUnexpectedResponseError, match="expected 'paused': true, got false"):
        PostHogHook(**FAST).pause_batch_export(EXPORT_ID)


@pytest.fixture
def other_host():
    """A second server: another origin (127.0.0.2), which must never see the key."""
    with HostileServer(host="127.0.0.2") as server:
        server.on(json_reply({"paused": True, "id": EXPORT_ID, "results": [], "next": None}))
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(hostile, other_host, status):
    hostile.on(redirect(status, other_host.url + "/api/projects/1/batch_exports/x/pause/"))
    with pytest.raises(PostHogRedirectError, match=f"HTTP {status}") as raised:
        PostHogHook(**FAST).pause_batch_export(EXPORT_ID)
    assert other_host.url in str(raised.value)
    assert other_host.requests == []


@pytest.mark.parametrize("read", [sync_get, async_get], ids=["sync", "async"])
@pytest.mark.parametrize("status", [301, 302, 303, 305, 399])
def test_other_3xx_are_errors_never_an_empty_success(hostile, read, status):
    # The async hook used to take a 3xx as an empty success.
    hostile.on(redirect(status, "/api/projects/1/elsewhere/"))
    with pytest.raises(PostHogRedirectError, match=f"HTTP {status}.*/api/projects/1/elsewhere/"):
        read()


@pytest.mark.parametrize("read", [sync_get, async_get], ids=["sync", "async"])
def test_304_is_an_error_never_an_empty_success(hostile, read):
    hostile.on(reply(304))
    with pytest.raises(PostHogUnexpectedResponseError, match="HTTP 304 Not Modified"):
        read()


@pytest.mark.parametrize("status", [307, 308])
def test_same_origin_307_and_308_are_followed_with_method_and_body(hostile, status):
    hostile.on(json_reply({"paused": False}), path="/moved/")
    hostile.on(redirect(status, "/moved/unpause/?x=1"), path="/unpause")
    assert PostHogHook(**FAST).unpause_batch_export(EXPORT_ID, backfill=True) == {"paused": False}
    _first, second = hostile.requests
    assert (second.method, second.path, second.query) == ("POST", "/moved/unpause/", {"x": ["1"]})
    assert second.json() == {"backfill": True} and second.headers["authorization"].startswith("Bearer ")


def test_redirect_loops_stop(hostile):
    hostile.on(redirect(307, "/again/"))
    with pytest.raises(PostHogRedirectError, match="more than 5 redirects"):
        sync_get()
    assert len(hostile.requests) == 6


def test_environments_redirected_to_projects_is_followed(fronted, emulator, monkeypatch):
    # One PostHog build answered 307 from /api/environments/* to /api/projects/* (§1).
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT",
        connection(fronted.url, key=emulator.api_key, api_prefix="environments"),
    )
    fronted.on(
        redirect(307, lambda r: r.target.replace("/api/environments/", "/api/projects/")),
        path="/api/environments/",
    )
    with PostHogHook(**FAST) as hook:
        assert hook.pause_batch_export(SEED.s3_export_id) == {"paused": True}

    async def read():
        async with PostHogAsyncHook(**FAST) as hook:
            return await hook.get_batch_export(SEED.s3_export_id)

    assert asyncio.run(read())["id"] == SEED.s3_export_id
    assert [r.path.split("/")[2] for r in fronted.requests] == ["environments", "projects"] * 2


def test_deferrable_and_poke_sensors_agree_on_a_redirect(hostile):
    hostile.on(redirect(302, "https://login.example.com/"))
    event = trigger_event()
    assert event["status"] == "error" and "HTTP 302" in event["message"]


def test_a_huge_error_detail_is_shortened(hostile):
    hostile.on(
        json_reply({"type": "validation_error", "code": "invalid", "detail": "x" * 5_000_000}, status=400)
    )
    with pytest.raises(PostHogBadRequestError) as raised:
        sync_get()
    assert len(str(raised.value)) < 1500
    assert "more characters" in raised.value.detail
    event = trigger_event()
    assert len(json.dumps(event)) < 3000


def test_a_huge_html_error_page_is_shortened(hostile):
    hostile.on(reply(502, "<html><body>" + "y" * 3_000_000 + "</body></html>", content_type="text/html"))
    with pytest.raises(Exception) as raised:
        sync_get()
    assert len(str(raised.value)) < 1000


@pytest.mark.parametrize(
    ("method", "answer", "message"),
    [
        ("get_batch_export", [1, 2], "expected a JSON object, got a list"),
        ("get_batch_export", {"destination": "s3"}, "expected 'destination' to be an object or null"),
        ("get_batch_export_test_steps", {"steps": None}, "expected 'steps' to be a list, got null"),
        ("get_batch_export_test_steps", {"steps": ["a"]}, "steps item 0: expected a JSON object"),
        ("list_dashboard_collaborators", {"results": []}, "expected a JSON list, got an object"),
        (
            "list_dashboard_collaborators",
            [{"user": "bob"}],
            "item 0: expected 'user' to be an object or null",
        ),
        ("get_batch_export_logs", {"results": None}, "expected 'results' to be a list, got null"),
        ("get_batch_export", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("get_batch_export", "{not json", "non-JSON text response"),
        ("get_batch_export", "9" * 10_000, "non-JSON text response"),
    ],
)
def test_json_of_the_wrong_shape_names_the_request(hostile, method, answer, message):
    hostile.on(reply(200, answer) if isinstance(answer, str) else json_reply(answer))
    args = {
        "get_batch_export": (EXPORT_ID,),
        "get_batch_export_test_steps": ("AwsS3",),
        "list_dashboard_collaborators": (5,),
        "get_batch_export_logs": (EXPORT_ID,),
    }[method]
    with pytest.raises(PostHogUnexpectedResponseError, match=message) as raised:
        getattr(PostHogHook(**FAST), method)(*args)
    assert "GET /api/projects/1/" in str(raised.value)


def test_test_operator_with_odd_steps_fails_clearly(hostile):
    hostile.on(
        json_reply({"id": EXPORT_ID, "name": "e", "interval": "hour", "destination": {"type": "AwsS3"}}),
        path=f"{EXPORT_ID}/",
        times=1,
    )
    hostile.on(json_reply({"steps": "all of them"}))
    with pytest.raises(PostHogUnexpectedResponseError, match="expected 'steps' to be a list"):
        PostHogTestBatchExportOperator(task_id="t", batch_export_id=EXPORT_ID, hook_params=FAST).execute({})


def test_a_create_answered_with_an_unreadable_201_is_an_unknown_outcome(hostile):
    hostile.on(reply(201, "<html>created</html>", content_type="text/html"))
    with pytest.raises(PostHogWriteOutcomeUnknownError, match="HTTP 201"):
        PostHogHook(**FAST).create_dashboard(name="x")
    assert len(hostile.requests) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("-5", 0.0),
        ("nan", 0.0),
        ("1e400", MAX_RETRY_AFTER),
        ("99999999", MAX_RETRY_AFTER),
        ("soon", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_extremes_are_bounded(header, expected):
    parsed = parse_retry_after(header)
    if expected is None:
        assert parsed is None
        return
    error = PostHogRateLimitError(retry_after=parsed, status_code=429, method="GET", path="/")

    class State:
        class outcome:
            @staticmethod
            def exception():
                return error

    assert WaitForPostHog(0.01, 0.02)(State()) == expected


def test_a_negative_retry_after_retries_at_once(hostile):
    hostile.on(
        sequence(
            json_reply({"detail": "slow down"}, status=429, headers={"Retry-After": "-100"}),
            json_reply({"id": EXPORT_ID, "destination": None}),
        )
    )
    started = time.monotonic()
    assert sync_get(max_retries=1)["id"] == EXPORT_ID
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda hook: hook.get_dashboard(7), "'id'"),
        (lambda hook: hook.update_dashboard(7, name="x"), "'id'"),
        (lambda hook: hook.list_dashboards(), "'id'"),
        (lambda hook: hook.get_batch_export_backfill(EXPORT_ID, EXPORT_ID), "'id'"),
    ],
)
def test_a_2xx_answer_without_an_id_names_the_request_not_a_key_error(hostile, call, expected):
    hostile.on(json_reply({"name": "x", "results": [{"name": "x"}], "next": None}))
    with pytest.raises(PostHogUnexpectedResponseError, match=expected) as raised:
        call(PostHogHook(**FAST))
    assert "GET" in str(raised.value) or "PATCH" in str(raised.value)


def test_a_created_backfill_answered_without_its_id_is_looked_up_not_a_key_error(hostile):
    hostile.on(json_reply({"results": [], "next": None}), method="GET", path="/backfills/")
    hostile.on(json_reply({"interval": "hour", "destination": {}}), method="GET")
    hostile.on(json_reply({"id": "not the backfill id"}, status=201), method="POST")
    hook = PostHogHook(**FAST)
    hook.backfill_row_grace = 0.0
    with pytest.raises(PostHogWriteOutcomeUnknownError, match="'backfill_id'"):
        hook.create_batch_export_backfill(
            EXPORT_ID, start_at="2026-01-01T00:00:00Z", end_at="2026-01-01T01:00:00Z"
        )
    assert [r.method for r in hostile.requests].count("POST") == 1
