"""Batch export runs over real HTTP against the emulator: cursor pages, status and time filters."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogNotFoundError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from tests.helpers.emulator import api_requests

UNKNOWN_RUN = "01900000-0000-7000-8000-0000000000ff"


@pytest.fixture
def hook(posthog_conn):
    with PostHogHook(backoff=0.01, backoff_max=0.02) as hook:
        yield hook


def _add_runs(emulator, count, *, newest):
    """``count`` finished runs of the S3 export, one a minute, the newest created at ``newest``."""
    for number in range(count):
        created = newest - timedelta(minutes=number)
        emulator.state.start_run(SEED.s3_export_id, created - timedelta(hours=1), created, created_at=created)


def test_lists_runs_newest_first(hook, emulator):
    runs = hook.list_batch_export_runs(SEED.s3_export_id)
    assert len(runs) == 3  # the seeded history
    assert [run["created_at"] for run in runs] == sorted((run["created_at"] for run in runs), reverse=True)
    assert {run["batch_export"] for run in runs} == {SEED.s3_export_id}
    sent = api_requests(emulator)
    assert [(r.method, r.path) for r in sent] == [
        ("GET", f"/api/projects/1/batch_exports/{SEED.s3_export_id}/runs/")
    ]


def test_follows_the_cursor_through_every_page(hook, emulator):
    _add_runs(emulator, 150, newest=datetime.now(timezone.utc) - timedelta(hours=2))
    emulator.clear_requests()
    runs = hook.list_batch_export_runs(SEED.s3_export_id, status="Completed")
    assert len(runs) == 153
    assert len({run["id"] for run in runs}) == 153
    sent = api_requests(emulator)
    assert len(sent) == 2
    assert len({r.connection_id for r in sent}) == 1
    # The second request is PostHog's next link: its cursor, and the filter of the first request.
    assert "cursor" in sent[1].query and sent[1].query["status"] == ["Completed"]


def test_status_filter_is_sent_as_repeated_parameters(hook, emulator):
    failed = hook.list_batch_export_runs(SEED.postgres_export_id, status="Failed")
    assert len(failed) == 2 and {run["status"] for run in failed} == {"Failed"}
    assert hook.list_batch_export_runs(SEED.postgres_export_id, status=["Completed", "Running"]) == []
    assert api_requests(emulator)[-1].query["status"] == ["Completed", "Running"]


@pytest.mark.parametrize("status", ["Exploded", ["Failed", "failed"], [], 3])
def test_unknown_status_fails_before_any_request(hook, emulator, status):
    with pytest.raises(ValueError, match=r"Invalid status .*expected one of 'Cancelled'"):
        hook.list_batch_export_runs(SEED.s3_export_id, status=status)
    assert api_requests(emulator) == []


def test_after_and_before_filter_created_at(hook, emulator):
    # Three days back, where the seeded history (the last few hours) has no runs.
    newest = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3)
    _add_runs(emulator, 5, newest=newest)
    after = newest - timedelta(minutes=3)
    before = newest - timedelta(minutes=1)
    runs = hook.list_batch_export_runs(SEED.s3_export_id, after=after, before=before.isoformat())
    # Both bounds are inclusive: the runs created 1, 2 and 3 minutes before the newest one.
    assert [run["created_at"] for run in runs] == [
        (before - timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for k in range(3)
    ]
    query = api_requests(emulator)[-1].query
    assert query["after"] == [after.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]


@pytest.mark.parametrize(
    ("name", "value"), [("after", datetime(2026, 1, 1)), ("before", "2026-01-01T00:00:00")]
)
def test_naive_moments_are_refused_before_any_request(hook, emulator, name, value):
    with pytest.raises(ValueError, match=f"Invalid {name} .*expected a timestamp with a timezone"):
        hook.list_batch_export_runs(SEED.s3_export_id, **{name: value})
    assert api_requests(emulator) == []


def test_gets_one_run(hook, emulator):
    listed = hook.list_batch_export_runs(SEED.s3_export_id)[0]
    run = hook.get_batch_export_run(SEED.s3_export_id, listed["id"])
    assert run == listed
    assert api_requests(emulator)[-1].path == (
        f"/api/projects/1/batch_exports/{SEED.s3_export_id}/runs/{listed['id']}/"
    )
    with pytest.raises(PostHogNotFoundError, match=f"batch export {SEED.s3_export_id} in project 1"):
        hook.get_batch_export_run(SEED.s3_export_id, UNKNOWN_RUN)


def test_bad_run_id_fails_before_any_request(hook, emulator):
    with pytest.raises(ValueError, match="Invalid run_id 'latest'"):
        hook.get_batch_export_run(SEED.s3_export_id, "latest")
    assert api_requests(emulator) == []


def test_async_hook_lists_every_page_and_gets_a_run(emulator, posthog_conn):
    _add_runs(emulator, 120, newest=datetime.now(timezone.utc) - timedelta(hours=2))
    emulator.clear_requests()

    async def main():
        async with PostHogAsyncHook() as hook:
            runs = await hook.list_batch_export_runs(SEED.s3_export_id, status=("Completed",))
            return runs, await hook.get_batch_export_run(SEED.s3_export_id, runs[-1]["id"])

    runs, last = asyncio.run(main())
    assert len(runs) == 123 and last == runs[-1]
    sent = api_requests(emulator)
    assert [r.method for r in sent] == ["GET"] * 3
    assert len({r.connection_id for r in sent}) == 1


def test_misspelt_filters_fail_before_any_request(hook, emulator):
    with pytest.raises(TypeError, match="Unknown run filter statuses: expected status, after, before"):
        hook.list_batch_export_runs(SEED.s3_export_id, statuses="Failed")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Unknown log filter levels: expected after, before, level"):
        hook.get_batch_export_logs(SEED.s3_export_id, levels="ERROR")  # type: ignore[call-arg]
    assert api_requests(emulator) == []
