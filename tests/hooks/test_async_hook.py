"""PostHogAsyncHook: the triggers' read path, over httpx, with the same errors and retries."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import PostHogNotFoundError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from tests.helpers.emulator import api_requests


def run(coroutine):
    return asyncio.run(coroutine)


async def _collect(hook, **kwargs):
    async with hook:
        return [entry async for entry in hook.iter_batch_export_logs(SEED.s3_export_id, **kwargs)]


def test_reads_an_export(posthog_conn):
    async def main():
        async with PostHogAsyncHook() as hook:
            return await hook.get_batch_export(SEED.s3_export_id)

    assert run(main())["id"] == SEED.s3_export_id


def test_iterates_1200_log_entries_on_one_connection(emulator, posthog_conn):
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)  # long before the seeded history
    emulator.state.add_log_entries(
        SEED.s3_export_id,
        [
            {"timestamp": start + timedelta(milliseconds=n), "level": "INFO", "message": f"e{n}"}
            for n in range(1200)
        ],
    )
    entries = run(
        _collect(PostHogAsyncHook(), after=start - timedelta(seconds=1), before=start + timedelta(days=1))
    )
    assert sorted(entry["message"] for entry in entries) == sorted(f"e{n}" for n in range(1200))
    sent = api_requests(emulator)
    assert len(sent) == 3 and len({r.connection_id for r in sent}) == 1
    assert all(r.method == "GET" for r in sent)


def test_retries_server_errors_and_throttling(emulator, posthog_conn):
    emulator.faults.add("status", status=503, times=1)
    emulator.faults.add("status", status=429, retry_after=0, times=1)
    emulator.faults.add("drop", times=1)
    run(_collect(PostHogAsyncHook(backoff=0.01)))
    assert [r.status for r in api_requests(emulator)] == [503, 429, None, 200]


def test_errors_match_the_sync_hook(posthog_conn):
    async def main():
        async with PostHogAsyncHook() as hook:
            await hook.get_batch_export_logs("01900000-0000-7000-8000-00000000dead")

    with pytest.raises(PostHogNotFoundError, match=r"HTTP 404 on GET .*00000000dead"):
        run(main())


def test_bad_input_fails_before_any_request(emulator, posthog_conn):
    with pytest.raises(ValueError, match="Invalid batch_export_id 'nope'"):
        run(_collect_for("nope"))
    assert api_requests(emulator) == []


async def _collect_for(batch_export_id):
    async with PostHogAsyncHook() as hook:
        return await hook.get_batch_export_logs(batch_export_id)


@pytest.mark.parametrize(("keepalive", "connections"), [(0.1, 2), (60.0, 1)])
def test_idle_connection_is_kept_for_keepalive_seconds(emulator, posthog_conn, keepalive, connections):
    async def main():
        async with PostHogAsyncHook(keepalive=keepalive) as hook:
            await hook.get_batch_export(SEED.s3_export_id)
            await asyncio.sleep(0.4)
            await hook.get_batch_export(SEED.s3_export_id)

    run(main())
    assert len({r.connection_id for r in api_requests(emulator)}) == connections


def test_clients_share_one_tls_context(posthog_conn):
    # Loading the CA bundle per client costs ~20 ms of event-loop time and ~0.8 MB per trigger.
    async def context_of_new_client():
        async with PostHogAsyncHook() as hook:
            client = await hook._get_client()
            return client._transport._pool._ssl_context

    first, second = run(context_of_new_client()), run(context_of_new_client())
    assert first is second
