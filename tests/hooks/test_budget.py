"""The request budget that every async hook of one triggerer shares per PostHog key."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.hooks.settings import RequestBudget, _budgets, _Window
from tests.helpers.emulator import api_requests, connection_json

FAST = {"backoff": 0.01, "backoff_max": 0.02}


def _slow_reads_at_once(emulator, monkeypatch, count: int) -> list[dict]:
    """``count`` async hooks read the same batch export at once, while PostHog takes 0.3 s to answer."""
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    emulator.faults.add("slow", path=f"/batch_exports/{SEED.s3_export_id}/", delay=0.3)

    async def main() -> list[dict]:
        hooks = [PostHogAsyncHook(**FAST) for _ in range(count)]
        try:
            return await asyncio.gather(*(hook.get_batch_export(SEED.s3_export_id) for hook in hooks))
        finally:
            await asyncio.gather(*(hook.aclose() for hook in hooks))

    return asyncio.run(main())


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_requests_beyond_the_budget_wait_in_arrival_order():
    async def main() -> list[tuple[int, float]]:
        budget = RequestBudget(per_minute=400, per_hour=4000, label="test")
        budget.windows = (_Window(3, 0.5),)  # 3 a half-second, for a quick test
        started = time.monotonic()
        moments: list[tuple[int, float]] = []

        async def one(number: int) -> None:
            async with budget.slot():
                moments.append((number, time.monotonic() - started))

        await asyncio.gather(*(one(number) for number in range(7)))
        return moments

    moments = asyncio.run(main())
    assert [number for number, _ in moments] == list(range(7))  # first come, first served
    times = [moment for _, moment in moments]
    assert max(times[:3]) < 0.2
    assert 0.45 < times[3] < 0.8 and 0.95 < times[6] < 1.4
    # Never more than 3 in any half-second window.
    assert all(later - earlier >= 0.49 for earlier, later in zip(times, times[3:], strict=False))


def test_identical_reads_in_flight_are_sent_once(emulator, monkeypatch):
    answers = _slow_reads_at_once(emulator, monkeypatch, 5)
    assert len(api_requests(emulator)) == 1
    assert all(answer["id"] == SEED.s3_export_id for answer in answers)


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_a_429_slows_every_wait_on_the_key_not_only_the_one_that_got_it(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    emulator.faults.add("status", status=429, retry_after=1, times=1)

    def paused() -> bool:
        budgets = _budgets.get(asyncio.get_running_loop(), {}).values()
        return any(budget.paused_until for budget in budgets)

    async def main() -> None:
        hooks = [PostHogAsyncHook(**FAST) for _ in range(3)]
        exports = [SEED.s3_export_id, SEED.bigquery_export_id, SEED.postgres_export_id]
        try:
            first = asyncio.create_task(hooks[0].get_batch_export(exports[0]))
            deadline = time.monotonic() + 10
            while not paused():  # until PostHog has throttled the first wait, and it has read the 429
                assert time.monotonic() < deadline, "the first wait was never throttled"
                await asyncio.sleep(0.01)
            others = [
                hook.get_batch_export(export) for hook, export in zip(hooks[1:], exports[1:], strict=True)
            ]
            await asyncio.gather(first, *others)
        finally:
            await asyncio.gather(*(hook.aclose() for hook in hooks))

    asyncio.run(main())
    sent = api_requests(emulator)
    assert [record.status for record in sent] == [429, 200, 200, 200]
    throttled_at = sent[0].started_at
    assert all(record.started_at - throttled_at >= 0.9 for record in sent[1:])


def test_the_budget_is_a_connection_setting(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, requests_per_minute="60"))

    async def main() -> float:
        async with PostHogAsyncHook(**FAST) as hook:
            return (await hook.get_settings()).requests_per_minute

    assert asyncio.run(main()) == 60.0
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, requests_per_hour="0"))
    with pytest.raises(Exception, match="requests_per_hour"):
        asyncio.run(main())


def test_a_cancelled_read_does_not_cancel_the_waits_that_share_it(emulator, monkeypatch):
    # Two waits read the same export; the triggerer cancels the first (its task was cleared) while
    # its GET is in flight. The second must still get its answer, not the first one's cancellation.
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    emulator.faults.add("slow", path=f"/batch_exports/{SEED.s3_export_id}/", delay=0.3)

    async def main() -> dict:
        first_hook, second_hook = PostHogAsyncHook(**FAST), PostHogAsyncHook(**FAST)
        try:
            first = asyncio.create_task(first_hook.get_batch_export(SEED.s3_export_id))
            await asyncio.sleep(0.1)  # the first read is on the wire (the emulator answers at 0.3 s)
            second = asyncio.create_task(second_hook.get_batch_export(SEED.s3_export_id))
            await asyncio.sleep(0.05)  # the second now shares the first's request
            assert not first.done()
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            answer = await asyncio.wait_for(second, 10)
            await asyncio.sleep(0.4)  # the emulator is done with the abandoned request
            return answer
        finally:
            await asyncio.gather(first_hook.aclose(), second_hook.aclose())

    answer = asyncio.run(main())
    assert answer["id"] == SEED.s3_export_id
    # The second wait sent its own read once the first was cancelled.
    abandoned, own = sorted(api_requests(emulator), key=lambda record: record.started_at)
    assert own.started_at - abandoned.started_at >= 0.1


def test_waits_sharing_a_read_get_their_own_copy_of_the_answer(emulator, monkeypatch):
    first, second = _slow_reads_at_once(emulator, monkeypatch, 2)
    assert len(api_requests(emulator)) == 1
    first["paused"] = "changed by one wait"
    assert second["paused"] != "changed by one wait"


def test_a_held_request_is_reported_while_it_waits(caplog):
    # A full minute window holds the next request for about a minute: the log says so at once,
    # not after the wait (a wait held by the budget must never be silent).
    async def main() -> float:
        budget = RequestBudget(per_minute=2, per_hour=100, label="https://posthog.test")
        for _ in range(2):
            async with budget.slot():
                pass
        held = asyncio.create_task(budget.acquire())
        began = time.monotonic()
        while "is short" not in caplog.text and time.monotonic() - began < 30:
            await asyncio.sleep(0.01)
        assert not held.done()
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        return time.monotonic() - began

    with caplog.at_level("WARNING"):
        elapsed = asyncio.run(main())
    assert elapsed < 30  # said within the first half of a 60 s hold, not after it
    assert re.search(r"https://posthog\.test is short: 1 waiting, the next for (59|60) s more", caplog.text)


def test_when_the_hour_binds_requests_are_spread_across_it():
    async def main() -> list[float]:
        budget = RequestBudget(per_minute=1000, per_hour=120, label="test")
        waits = []
        for _ in range(10):
            waits.append(budget.pace.wait_time(time.monotonic()))
            async with budget.slot():
                pass
        return [*waits, budget.pace.wait_time(time.monotonic())]  # the 11th's, not waited for

    waits = asyncio.run(main())
    # Five minutes' worth of the hour's average (10) at once, then one every 3600 / 120 = 30 s: not
    # the hour's other 110 at once and then silence.
    assert waits[:10] == [0.0] * 10
    assert 29 < waits[10] <= 30


def test_processes_sharing_the_key_split_its_budget(emulator, monkeypatch):
    def settings(**extra: object):
        monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator, **extra))

        async def read():
            async with PostHogAsyncHook() as hook:
                return await hook.get_settings()

        return asyncio.run(read())

    shared = settings(requests_per_minute="60", key_shared_by="3")
    assert (shared.requests_per_minute, shared.requests_per_hour) == (20, 4000 / 3)
    with pytest.raises(Exception, match=r"key_shared_by.*whole number.*'1\.5'"):
        settings(key_shared_by="1.5")


# One triggerer process: 12 distinct reads at once on one key, for at most 3 s; prints what came back.
TRIGGERER = """
import asyncio, sys
from datetime import datetime, timedelta, timezone
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook

async def main():
    async with PostHogAsyncHook(max_retries=0) as hook:
        await hook.get_settings()  # the connection is read first: the window below times the budget alone
        now = datetime.now(timezone.utc)
        reads = [
            asyncio.ensure_future(hook.list_batch_export_runs(sys.argv[1], after=now - timedelta(minutes=n)))
            for n in range(12)
        ]
        # Held requests wait for the minute to pass: 15 s tells them from slow answers on a busy machine.
        done, held = await asyncio.wait(reads, timeout=15)
        for read in held:
            read.cancel()
        answered = [read for read in done if read.exception() is None or read.exception().status_code]
        print("sent", len(answered), len(held))

asyncio.run(main())
"""


@pytest.mark.slow  # two Airflow processes: the --all tier
@pytest.mark.parametrize(("shared_by", "sent", "throttled"), [(2, 20, 0), (1, 24, 4)])
def test_two_triggerers_on_one_key_stay_under_its_limit_together(emulator, shared_by, sent, throttled):
    emulator.rate_limiter.configure(enabled=True, burst=20)
    conn = connection_json(emulator, requests_per_minute=20, key_shared_by=shared_by)
    env = {**os.environ, "AIRFLOW_CONN_POSTHOG_DEFAULT": conn}
    command = [sys.executable, "-c", TRIGGERER, SEED.s3_export_id]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    statuses = [record.status for record in api_requests(emulator)]
    # key_shared_by=2: each process sends its 10 and holds 2; told nothing, both send all 12.
    assert len(statuses) == sent and statuses.count(429) == throttled
    # Each process's line: requests answered (200 or 429), requests still held by its budget.
    answered = [
        line.split()[1:] for output in outputs for line in output.splitlines() if line.startswith("sent ")
    ]
    assert answered == ([["10", "2"]] * 2 if shared_by == 2 else [["12", "0"]] * 2)
