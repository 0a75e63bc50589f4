"""The shared project poll against the emulator over HTTP: one exports list read serves every wait."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timezone

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogNotFoundError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from airflow_provider_phenv.waits import WAITING
from airflow_provider_phenv.waits.project_poll import _POLLS, ProjectPoll
from airflow_provider_phenv.waits.runs import runs_wait
from tests.helpers.emulator import api_requests
from tests.runs.conftest import FAST, HOURLY, hours_ago

PARAMS = FAST["hook_params"]


def list_reads(emulator) -> list:
    return [record for record in api_requests(emulator) if record.path.endswith("/batch_exports/")]


def test_many_waits_asking_at_once_share_one_read(emulator, posthog_conn):
    emulator.clear_requests()

    async def main() -> list:
        async def one_wait() -> dict:
            async with ProjectPoll.member("posthog_default", None, 0.2, PARAMS) as poll:
                listing = await poll.listing(time.time())
                return listing.exports[HOURLY]

        return await asyncio.gather(*(one_wait() for _ in range(50)))

    exports = asyncio.run(main())
    assert len(list_reads(emulator)) == 1
    assert all(export["id"] == HOURLY and "latest_runs" in export for export in exports)
    assert list_reads(emulator)[0].query["limit"] == ["10000"]  # every export in one request


def test_reads_follow_the_shortest_interval_and_a_recent_read_is_reused(emulator, posthog_conn):
    emulator.clear_requests()

    async def main() -> tuple[int, list[float]]:
        async with (
            ProjectPoll.member("posthog_default", None, 5.0, PARAMS) as slow,
            ProjectPoll.member("posthog_default", None, 0.3, PARAMS) as fast,
        ):
            assert slow is fast and fast.interval == 0.3
            first = await fast.listing(time.time())
            again = await slow.listing(first.started)  # recent enough: no request
            assert again is first
            moments = [first.started]
            for _ in range(3):
                moments.append((await fast.listing(time.time())).started)
            return fast.reads, moments

    reads, moments = asyncio.run(main())
    assert reads == 4 == len(list_reads(emulator))
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert min(gaps) >= 0.3 - 0.01


def test_a_failed_read_reaches_every_waiting_member(emulator, posthog_conn):
    async def main() -> list:
        async def one_wait() -> BaseException | None:
            async with ProjectPoll.member("posthog_default", "424242", 0.2, PARAMS) as poll:
                try:
                    await poll.listing(time.time())
                except Exception as error:
                    return error
            return None

        return await asyncio.gather(*(one_wait() for _ in range(3)))

    errors = asyncio.run(main())
    assert all(isinstance(error, PostHogNotFoundError) for error in errors), errors


def test_the_last_member_leaving_closes_the_poll(emulator, posthog_conn):
    async def main() -> tuple[int, int]:
        async with ProjectPoll.member("posthog_default", None, 0.2, PARAMS) as poll:
            await poll.listing(time.time())
            during = len(_POLLS[asyncio.get_running_loop()])
        return during, len(_POLLS[asyncio.get_running_loop()])

    assert asyncio.run(main()) == (1, 0)


def test_a_backfill_wait_skips_the_backfill_read_while_the_list_shows_its_run_at_work(emulator, posthog_conn):
    emulator.state.set_run_outcome(HOURLY, "completed", duration=30)
    with PostHogHook() as hook:
        started = hook.create_batch_export_backfill(HOURLY, start_at=hours_ago(8), end_at=hours_ago(7))
    wait = runs_wait(HOURLY, backfill_id=started["backfill_id"], started_at=datetime.now(timezone.utc))

    async def main():
        async with (
            PostHogAsyncHook(**PARAMS) as hook,
            ProjectPoll.member("posthog_default", None, 0.1, PARAMS) as poll,
        ):
            deadline = time.monotonic() + 10
            while True:  # the backfill's workflow starts its run shortly after the 201
                listing = await poll.listing(time.time())
                runs = listing.exports[HOURLY]["latest_runs"]
                if any(run.get("backfill") == wait.backfill_id for run in runs):
                    break
                assert time.monotonic() < deadline, "the backfill's run never showed"
            emulator.clear_requests()
            return await wait.poll_async(hook, None, listing)

    outcome = asyncio.run(main())
    assert outcome.status == WAITING
    assert "is Running" in outcome.message or "is Starting" in outcome.message
    assert api_requests(emulator) == []  # neither the backfill nor the export was read


@pytest.mark.parametrize("listed", [True, False])
def test_a_range_wait_judges_from_the_listing_as_from_its_own_read(emulator, posthog_conn, listed):
    wait = runs_wait(HOURLY, since=hours_ago(3), until=hours_ago(2))

    async def main():
        async with (
            PostHogAsyncHook(**PARAMS) as hook,
            ProjectPoll.member("posthog_default", None, 0.1, PARAMS) as poll,
        ):
            listing = await poll.listing(time.time())
            own = await wait.poll_async(hook, None)
            emulator.clear_requests()
            if not listed:  # an export the list does not show (Workflows ones) is read on its own
                listing = type(listing)(listing.started, {SEED.s3_export_id + "x": {}})
            shared = await wait.poll_async(hook, None, listing)
            return own, shared

    own, shared = asyncio.run(main())
    assert (shared.status, shared.message) == (own.status, own.message)
    gets = [record.path for record in api_requests(emulator)]
    assert gets == ([] if listed else [f"/api/projects/{SEED.project_id}/batch_exports/{HOURLY}/"])


def test_the_poll_says_once_a_minute_how_it_and_its_key_fare(emulator, posthog_conn, caplog):
    async def main() -> None:
        async with (
            ProjectPoll.member("posthog_default", None, 0.05, PARAMS) as poll,
            ProjectPoll.member("posthog_default", None, 30.0, PARAMS),
        ):
            for _ in range(3):
                await poll.listing(time.time())

    with caplog.at_level("INFO", logger="airflow_provider_phenv.waits.project_poll"):
        asyncio.run(main())
    lines = [record.getMessage() for record in caplog.records if "share one read" in record.getMessage()]
    # Three reads, one line: the waits it serves, how often it reads, the key's requests so far.
    assert len(lines) == 1
    assert lines[0].startswith(f"PostHog project {emulator.project_id}: 2 waits share one read")
    assert (
        "asked for every 0.05 s" in lines[0]
        and "1 requests in the last minute and 1 in the last hour" in lines[0]
    )
