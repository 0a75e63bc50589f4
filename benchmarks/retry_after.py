"""
Item 7: the wait after a 429 with ``Retry-After: 2``, measured between the two requests' arrival.

Ours: one hook call with the default retry policy. HTTP provider: HttpOperator with the
``retry_args`` its documentation shows (tenacity ``wait_exponential``, retry on any exception);
without ``retry_args`` it does not retry at all and the task fails.
"""

from __future__ import annotations

from typing import Any

import tenacity
from airflow.providers.http.operators.http import HttpOperator
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from benchmarks.harness import HTTP_CONN_ID, Bench, Figure, fake_context, median

RETRY_AFTER = 2.0


def gap(bench: Bench, call: Any) -> float:
    """Seconds between the 429'd request and the retry, from the emulator's request log."""
    bench.reset()
    bench.emulator.faults.add("status", status=429, retry_after=RETRY_AFTER, times=1)
    call()
    first, second = bench.emulator.requests[:2]
    assert first.status == 429 and second.status == 200, (first, second)
    return second.started_at - first.started_at


def run(bench: Bench, repeats: int) -> tuple[list[Figure], dict[str, Any]]:
    def ours() -> None:
        with PostHogHook() as hook:
            hook.get_batch_export(SEED.s3_export_id)

    def http() -> None:
        HttpOperator(
            task_id="get",
            http_conn_id=HTTP_CONN_ID,
            method="GET",
            endpoint=f"{bench.api}/batch_exports/{SEED.s3_export_id}/",
            retry_args={
                "wait": tenacity.wait_exponential(),
                "stop": tenacity.stop_after_attempt(5),
                "retry": tenacity.retry_if_exception_type(Exception),
            },
        ).execute(fake_context())

    def http_plain() -> int:
        bench.reset()
        bench.emulator.faults.add("status", status=429, retry_after=RETRY_AFTER, times=1)
        try:
            HttpOperator(
                task_id="get",
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                endpoint=f"{bench.api}/batch_exports/{SEED.s3_export_id}/",
            ).execute(fake_context())
        except Exception:
            return len(bench.emulator.requests)
        return -1

    ours_gaps = [gap(bench, ours) for _ in range(repeats)]
    http_gaps = [gap(bench, http) for _ in range(repeats)]
    plain_requests = http_plain()
    value = median(ours_gaps)
    details = {
        "retry_after": RETRY_AFTER,
        "ours_seconds": ours_gaps,
        "http_retry_args_seconds": http_gaps,
        "http_without_retry_args": f"task failed after {plain_requests} request(s)",
    }
    worst = max(abs(g - RETRY_AFTER) for g in ours_gaps)
    return [
        Figure(
            7,
            f"wait after 429 Retry-After {RETRY_AFTER:g} (median of {repeats})",
            round(value, 3),
            "s",
            round(median(http_gaps), 3),
            "2 s +- 10 %",
            worst <= 0.1 * RETRY_AFTER,
            f"all {repeats} within {worst * 1000:.0f} ms of 2 s; HttpOperator with documented retry_args "
            f"ignores Retry-After, without retry_args the task fails after {plain_requests} request",
        ),
    ], details
