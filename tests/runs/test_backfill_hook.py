"""The hook's runs and backfills endpoints against the emulator over HTTP."""

from __future__ import annotations

import time

import pytest

from airflow_provider_phenv.errors import (
    PostHogBadRequestError,
    PostHogRateLimitError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks.posthog import PostHogHook
from tests.helpers.emulator import api_requests
from tests.runs.conftest import FAST, HOURLY, hours_ago


@pytest.fixture
def hook(posthog_conn):
    with PostHogHook(**FAST["hook_params"]) as hook:
        yield hook


def shown(hook: PostHogHook, created: dict) -> dict:
    """The backfill PostHog accepted, once its workflow has written it (a moment after the 201)."""
    return hook.get_batch_export_backfill(HOURLY, created["backfill_id"], row_timeout=10)


def test_create_get_list_and_cancel_a_backfill(hook, emulator):
    emulator.state.set_run_outcome(HOURLY, "completed", duration=30)
    created = hook.create_batch_export_backfill(HOURLY, start_at=hours_ago(8), end_at=hours_ago(6))
    backfill_id = created["backfill_id"]
    got = shown(hook, created)
    assert got["id"] == backfill_id and got["status"] in ("Starting", "Running")
    assert backfill_id in [backfill["id"] for backfill in hook.list_batch_export_backfills(HOURLY)]
    assert hook.cancel_batch_export_backfill(HOURLY, backfill_id) == {"cancelled": True}
    assert hook.get_batch_export_backfill(HOURLY, backfill_id)["status"] == "Cancelled"
    (post,) = [r for r in api_requests(emulator) if r.method == "POST" and r.path.endswith("/backfills/")]
    assert post.body == {
        "start_at": hours_ago(8).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "end_at": hours_ago(6).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }


def test_a_lost_answer_to_a_backfill_create_is_looked_up_not_sent_again(hook, emulator):
    emulator.faults.add("lost_response", method="POST", path="/backfills/")
    created = hook.create_batch_export_backfill(HOURLY, start_at=hours_ago(8), end_at=hours_ago(6))
    posts = [r for r in api_requests(emulator) if r.method == "POST"]
    assert len(posts) == 1  # never re-sent
    backfills = hook.list_batch_export_backfills(HOURLY)
    assert [b["id"] for b in backfills if b["start_at"].startswith(hours_ago(8).strftime("%Y-%m-%dT%H"))] == [
        created["backfill_id"]
    ]


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_lost_answer_with_nothing_made_raises_rather_than_guessing(hook, emulator):
    emulator.faults.add("drop", method="POST", path="/backfills/")  # closed before PostHog handled it
    hook.backfill_row_grace = 1.0  # a backfill PostHog made may show this late
    with pytest.raises(PostHogWriteOutcomeUnknownError, match="not sent again"):
        hook.create_batch_export_backfill(HOURLY, start_at=hours_ago(8), end_at=hours_ago(6))
    assert len([r for r in api_requests(emulator) if r.method == "POST"]) == 1
    # It looked for the backfill for the whole grace before giving up, not once.
    assert len([r for r in api_requests(emulator) if r.path.endswith("/backfills/")]) > 2


def test_retry_and_cancel_a_run(hook, emulator):
    emulator.state.set_run_outcome(HOURLY, "completed", duration=30)
    run = emulator.state.start_run(HOURLY, hours_ago(9), hours_ago(8))
    assert hook.cancel_batch_export_run(HOURLY, run["id"]) == {"cancelled": True}
    with pytest.raises(PostHogBadRequestError, match="Cannot cancel a run"):
        hook.cancel_batch_export_run(HOURLY, run["id"])
    retried = hook.retry_batch_export_run(HOURLY, run["id"])
    assert hook.get_batch_export_backfill(HOURLY, retried["backfill_id"])["id"] == retried["backfill_id"]


def test_a_lost_answer_to_a_run_retry_finds_the_backfill_it_made(hook, emulator):
    run = emulator.state.start_run(HOURLY, hours_ago(9), hours_ago(8))
    emulator.faults.add("lost_response", method="POST", path="/retry/")
    retried = hook.retry_batch_export_run(HOURLY, run["id"])
    assert len([r for r in api_requests(emulator) if r.method == "POST"]) == 1
    assert hook.get_batch_export_backfill(HOURLY, retried["backfill_id"])["id"] == retried["backfill_id"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_at": hours_ago(2), "end_at": hours_ago(3)}, "start_at must be before end_at"),
        ({"start_at": hours_ago(2), "end_at": hours_ago(-3)}, "in the future"),
        ({"start_at": "2026-01-01T00:00:00", "end_at": hours_ago(3)}, "Invalid start_at"),
    ],
)
def test_bad_backfill_input_fails_before_any_request(hook, emulator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        hook.create_batch_export_backfill(HOURLY, **kwargs)
    with pytest.raises(ValueError, match="Invalid backfill_id 'b1'"):
        hook.get_batch_export_backfill(HOURLY, "b1")
    assert api_requests(emulator) == []


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_too_many_concurrent_backfills_waits_for_a_free_slot(hook, emulator):
    """PostHog's 429 ``too_many_concurrent_backfills`` is a wait for a slot, not a rate-limit retry."""
    emulator.state.set_run_outcome(HOURLY, "completed", duration=1.5)
    for number in range(3):  # the emulator's default: three running backfills per team
        shown(
            hook,
            hook.create_batch_export_backfill(
                HOURLY, start_at=hours_ago(20 + number), end_at=hours_ago(19 + number)
            ),
        )
    started = time.monotonic()
    created = hook.create_batch_export_backfill(
        HOURLY, start_at=hours_ago(9), end_at=hours_ago(8), slot_poll_interval=0.2
    )
    assert created["backfill_id"] and time.monotonic() - started >= 0.2
    posts = [r.status for r in api_requests(emulator) if r.method == "POST"]
    assert posts[:3] == [201, 201, 201] and posts[-1] == 201 and 429 in posts[3:]


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_no_free_slot_in_time_is_a_clear_error(hook, emulator):
    emulator.state.set_run_outcome(HOURLY, "completed", duration=30)
    for number in range(3):  # PostHog counts the backfills it shows
        shown(
            hook,
            hook.create_batch_export_backfill(
                HOURLY, start_at=hours_ago(20 + number), end_at=hours_ago(19 + number)
            ),
        )
    with pytest.raises(PostHogRateLimitError, match="too_many_concurrent_backfills"):
        hook.create_batch_export_backfill(
            HOURLY, start_at=hours_ago(9), end_at=hours_ago(8), slot_timeout=0.5, slot_poll_interval=0.2
        )
