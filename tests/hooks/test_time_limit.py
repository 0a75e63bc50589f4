"""A time limit never swallows a cancellation, even one that arrives as the awaited call answers.

Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when its task is
cancelled in the loop step the inner call finishes in (CPython gh-86296); a trigger's wait then
carried on after the triggerer had stopped it, and the test awaiting it hung.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

from airflow_provider_phenv.hooks.transport import within
from airflow_provider_phenv.triggers.batch_exports import PostHogPollTrigger

needs_timeout = pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has only wait_for")


@needs_timeout
def test_a_cancellation_arriving_with_the_answer_is_raised():
    async def scenario() -> None:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(within(5, answer))
        await asyncio.sleep(0)  # the task now waits on the answer
        answer.set_result(1)
        task.cancel()  # in the same loop step
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_the_limit_raises_timeout_and_passes_results():
    async def scenario() -> None:
        assert await within(1, asyncio.sleep(0, result="ok")) == "ok"
        began = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await within(0.05, asyncio.sleep(5))
        assert time.monotonic() - began < 1

    asyncio.run(scenario())


class _AnsweredOnCue(PostHogPollTrigger):
    """A trigger whose every poll waits for the test to answer it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    def about(self) -> str:
        return "a test wait"

    async def poll(self, hook: Any) -> dict[str, Any] | None:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.answers.put(answer)
        return await answer


@needs_timeout
def test_a_trigger_cancelled_as_its_poll_answers_stops(posthog_conn):
    async def scenario() -> None:
        trigger = _AnsweredOnCue(poll_interval=0.01, end_time=time.time() + 30)
        task = asyncio.create_task(trigger.run().__anext__())
        answer = await asyncio.wait_for(trigger.answers.get(), 5)
        answer.set_result(None)  # nothing decided yet...
        task.cancel()  # ...and the triggerer stops the trigger in the same step
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the cancelled trigger went on polling"
        assert task.cancelled()

    asyncio.run(scenario())
