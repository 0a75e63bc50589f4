"""
Issue 15 #1 and #5: listings that never end. A logs source that ignores ``before=`` and repeats a
full page, a ``next`` link back to the same page, and a list with more pages than ``max_pages``
stop with :class:`PostHogPaginationError` naming the request, in every path (sync hook, async
hook, poke sensor, trigger, the create-dashboard operator's name lookup).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from airflow_provider_phenv.errors import PostHogPaginationError, PostHogUnexpectedResponseError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from airflow_provider_phenv.operators.dashboards import PostHogCreateDashboardOperator
from tests.helpers.hostile_server import json_reply
from tests.helpers.sensor_modes import FakeTI, make_context, sensor_for_mode, utcnow
from tests.hostile.conftest import EXPORT_ID, FAST, trigger_event


def full_page(request):
    """500 entries, newest first, just before now: the same page whatever ``before`` says."""
    now = utcnow()
    results = [
        {
            "timestamp": (now - timedelta(milliseconds=n)).isoformat(),
            "level": "INFO",
            "message": f"line {n}",
            "instance_id": "r",
        }
        for n in range(500)
    ]
    return {"count": 500, "next": None, "previous": None, "results": results}


FROZEN = full_page(None)  # one fixed page, repeated verbatim


def endless_history(size: int, step: timedelta, delay: float = 0.0):
    """A logs source that honours ``before=``: ``size`` entries ``step`` apart, each page older than
    the one before, for ever; each answer after ``delay`` seconds."""

    def older_page(request):
        from airflow_provider_phenv.validation import parse_timestamp

        time.sleep(delay)
        before = request.query.get("before", [None])[0]
        top = parse_timestamp("before", before) if before else utcnow()
        results = [
            {"timestamp": (top - step * (n + 1)).isoformat(), "level": "INFO", "message": "x"}
            for n in range(size)
        ]
        return {"next": None, "results": results}

    return older_page


def test_logs_pager_stops_when_before_is_ignored_sync(hostile):
    hostile.on(json_reply(FROZEN))
    with (
        PostHogHook(**FAST) as hook,
        pytest.raises(PostHogPaginationError, match="ignored before=") as raised,
    ):
        list(hook.iter_batch_export_logs(EXPORT_ID, after=utcnow() - timedelta(days=1)))
    assert len(hostile.requests) == 2
    assert f"GET /api/projects/1/batch_exports/{EXPORT_ID}/logs/" in str(raised.value)


def test_logs_pager_stops_when_before_is_ignored_async(hostile):
    hostile.on(json_reply(FROZEN))

    async def main():
        async with PostHogAsyncHook(**FAST) as hook:
            return [
                e async for e in hook.iter_batch_export_logs(EXPORT_ID, after=utcnow() - timedelta(days=1))
            ]

    with pytest.raises(PostHogPaginationError, match="ignored before="):
        asyncio.run(main())
    assert len(hostile.requests) == 2


def test_logs_pager_stops_for_a_page_that_moves_forward(hostile):
    # A fresh page of newer entries on every request: before= never moves back.
    hostile.on(json_reply(full_page))
    with PostHogHook(**FAST) as hook, pytest.raises(PostHogPaginationError, match="ignored before="):
        list(hook.iter_batch_export_logs(EXPORT_ID, after=utcnow() - timedelta(days=1)))
    assert len(hostile.requests) == 2


def test_logs_pager_stops_at_max_pages(hostile):
    # An honest-looking server with an endless history: each page older than the one before.
    hostile.on(json_reply(endless_history(10, timedelta(seconds=1))))
    with PostHogHook(**FAST, max_pages=5) as hook, pytest.raises(PostHogPaginationError, match="max_pages=5"):
        list(hook.iter_batch_export_logs(EXPORT_ID, page_size=10, after=utcnow() - timedelta(days=365)))
    assert len(hostile.requests) == 5


def test_poke_sensor_fails_instead_of_looping(hostile):
    hostile.on(json_reply(FROZEN))
    sensor = sensor_for_mode("poke", hook_params=FAST, since=utcnow() - timedelta(hours=1))
    started = time.monotonic()
    with pytest.raises(PostHogPaginationError, match="ignored before="):
        sensor.execute(make_context(FakeTI(utcnow())))
    assert time.monotonic() - started < 5


def test_trigger_reports_an_error_instead_of_looping(hostile):
    hostile.on(json_reply(FROZEN))
    started = time.monotonic()
    event = trigger_event()
    assert event["status"] == "error" and "ignored before=" in event["message"]
    assert time.monotonic() - started < 5


def test_entries_without_a_timestamp_name_the_request(hostile):
    page = {"next": None, "results": [{"level": "INFO", "message": "no time"}] * 500}
    hostile.on(json_reply(page))
    with (
        PostHogHook(**FAST) as hook,
        pytest.raises(PostHogUnexpectedResponseError, match="no valid timestamp"),
    ):
        list(hook.iter_batch_export_logs(EXPORT_ID))


def _self_link(request):
    return {
        "count": 9,
        "next": f"http://elsewhere.invalid{request.target}",
        "results": [{"id": 1, "name": "a"}],
    }


def test_next_back_to_the_same_page_stops_sync(hostile):
    hostile.on(json_reply(_self_link))
    with (
        PostHogHook(**FAST) as hook,
        pytest.raises(PostHogPaginationError, match="points back at a page") as raised,
    ):
        hook.list_dashboards()
    assert len(hostile.requests) == 1  # the link is recognised before it is followed
    assert "GET /api/projects/1/dashboards/ for dashboards in project 1" in str(raised.value)


def test_next_back_to_the_first_page_in_another_order_stops(hostile):
    # The first request sends ?limit=500; a next link with the parameters reordered is the same page.
    def link(request):
        return {
            "next": "/api/projects/1/dashboards?offset=0&limit=500"
            if "offset" not in request.target
            else "/api/projects/1/dashboards/?limit=500",
            "results": [],
        }

    hostile.on(json_reply(link))
    with PostHogHook(**FAST) as hook, pytest.raises(PostHogPaginationError, match="points back"):
        hook.list_dashboards()
    assert len(hostile.requests) == 2


def test_next_back_to_the_same_page_stops_async(hostile):
    hostile.on(json_reply(_self_link))

    async def main():
        async with PostHogAsyncHook(**FAST) as hook:
            return await hook.list_batch_export_runs(EXPORT_ID)

    with pytest.raises(PostHogPaginationError, match="points back at a page"):
        asyncio.run(main())
    assert len(hostile.requests) == 1


def test_endless_next_links_stop_at_max_pages(hostile):
    def onward(request):
        offset = int(request.query.get("offset", ["0"])[0])
        return {"next": f"/api/projects/1/dashboards/?offset={offset + 1}", "results": []}

    hostile.on(json_reply(onward))
    with (
        PostHogHook(**FAST, max_pages=20) as hook,
        pytest.raises(PostHogPaginationError, match="max_pages=20"),
    ):
        hook.list_dashboards()
    assert len(hostile.requests) == 20


def test_create_dashboard_lookup_does_not_loop(hostile):
    hostile.on(json_reply(_self_link))
    operator = PostHogCreateDashboardOperator(task_id="create", name="Loop", hook_params=FAST)
    with pytest.raises(PostHogPaginationError, match="points back"):
        operator.execute({})
    assert len(hostile.requests) == 1
    assert all(request.method == "GET" for request in hostile.requests)


@pytest.mark.parametrize(
    "page",
    [
        {"results": None},
        {"results": "x"},
        {"results": [1, 2]},
        [],
        {"next": None},
        {"results": [], "next": 3},
    ],
)
def test_pages_of_the_wrong_shape_name_the_request(hostile, page):
    # results: null used to count as "no entries"; other shapes escaped as TypeError/AttributeError.
    hostile.on(json_reply(page))
    with (
        PostHogHook(**FAST) as hook,
        pytest.raises(PostHogUnexpectedResponseError, match="unexpected answer") as raised,
    ):
        hook.list_dashboards()
    assert "GET /api/projects/1/dashboards/" in str(raised.value)


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_trigger_keeps_its_end_time_during_a_long_listing(hostile):
    # An endless history served one slow page at a time: no single request breaks a limit, yet
    # the trigger still reports its timeout at end_time instead of reading on.
    from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
    from tests.helpers.hostile_server import sequence
    from tests.helpers.sensor_modes import run_trigger

    hostile.on(sequence(json_reply(endless_history(500, timedelta(microseconds=1), delay=0.05))))
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT_ID,
        since=(utcnow() - timedelta(days=1)).isoformat(),
        criteria={"message_pattern": "never"},
        poll_interval=0.05,
        end_time=time.time() + 1,
        # Request limits far past end_time: the trigger's own deadline must stop it, and a loaded
        # machine's slow page is no ReadTimeout.
        hook_params={**FAST, "timeout": 10, "request_deadline": 20},
    )
    trigger.poll_grace = 0.5
    started = time.monotonic()
    event = run_trigger(trigger).payload
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 1 + 0.5 + 1
