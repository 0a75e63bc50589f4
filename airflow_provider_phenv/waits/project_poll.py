"""One read of a project's batch exports list per poll interval, shared by every wait of one triggerer process
(docs/waits.md, "The shared project poll").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.hooks.settings import request_budget
from airflow_provider_phenv.hooks.transport import within

log = logging.getLogger(__name__)

# PostHog sets no maximum page size (docs/posthog-api.md §4): one request for up to 10,000 exports.
EXPORTS_PAGE = 10_000
# The triggerer's log says how each poll and its key fare at most this often.
REPORT_EVERY = 60.0


@dataclass(frozen=True)
class Listing:
    """One read of the exports list: when it was sent (``time.time()``) and the exports by id."""

    started: float
    exports: Mapping[str, dict[str, Any]]


class ProjectPoll:
    """The exports list of one project, read for every member wait of this event loop: one ``GET
    batch_exports/`` (every page) when the earliest member is due, never more often than the shortest interval
    a member asked for. Join with :meth:`member`; ask with :meth:`listing`.

    :param posthog_conn_id: the connection the members read PostHog with.
    :param project_id: the project, or None for the connection's.
    :param hook_params: the members' hook options.
    """

    def __init__(
        self, posthog_conn_id: str, project_id: int | str | None, hook_params: dict[str, Any]
    ) -> None:
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.hook_params = hook_params
        #: Reads of the list so far (for the triggerer's log and the benchmarks).
        self.reads = 0
        self._members: dict[object, float] = {}
        self._waiters: list[tuple[float, asyncio.Future[Listing]]] = []
        self._last: Listing | None = None
        self._read_at = float("-inf")
        self._reported = float("-inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hook: PostHogAsyncHook | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def member(
        cls, posthog_conn_id: str, project_id: int | str | None, interval: float, hook_params: dict[str, Any]
    ) -> AsyncIterator[ProjectPoll]:
        """Be one of the waits the project's poll serves, asking for a read every ``interval`` seconds."""
        params = dict(hook_params)
        polls = _POLLS.setdefault(asyncio.get_running_loop(), {})
        key = (posthog_conn_id, project_id, tuple(sorted(params.items())))
        poll = polls.get(key)
        if poll is None:
            poll = polls[key] = cls(posthog_conn_id, project_id, params)
        token = object()
        poll._members[token] = float(interval)
        try:
            yield poll
        finally:
            del poll._members[token]
            if not poll._members:
                if polls.get(key) is poll:
                    del polls[key]
                await poll._close()

    @property
    def interval(self) -> float:
        """The shortest interval a member asked for: the list is never read more often."""
        return min(self._members.values(), default=60.0)

    async def listing(self, not_before: float) -> Listing:
        """The last read of the list if sent at or after ``not_before`` (``time.time()``), else the next one.

        :raises PostHogError: the read failed after the hook's retries.
        """
        if self._last is not None and self._last.started >= not_before:
            return self._last
        future: asyncio.Future[Listing] = asyncio.get_running_loop().create_future()
        self._waiters.append((not_before, future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"posthog-project-poll-{self.project_id}")
        return await future

    async def _run(self) -> None:
        while True:
            self._waiters = [(moment, future) for moment, future in self._waiters if not future.done()]
            if not self._waiters:
                return
            due = max(min(moment for moment, _future in self._waiters), self._read_at + self.interval)
            delay = due - time.time()
            if delay > 0:
                # A member asking for an earlier read wakes the loop.
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await within(delay, self._wake.wait())
                continue
            await self._read()

    async def _read(self) -> None:
        started, previous = time.time(), self._read_at
        self._read_at = started
        self.reads += 1
        waiters = [(moment, future) for moment, future in self._waiters if moment <= started]
        self._waiters = [item for item in self._waiters if item[0] > started]
        try:
            if self._hook is None:
                self._hook = PostHogAsyncHook(
                    self.posthog_conn_id, keepalive=self.interval + 30, **self.hook_params
                )
            exports = await self._hook.list_batch_exports(project_id=self.project_id, page_size=EXPORTS_PAGE)
        except Exception as error:
            for _moment, future in waiters:
                if not future.done():
                    future.set_exception(error)
            return
        self._last = Listing(started, {export["id"]: export for export in exports})
        for _moment, future in waiters:
            if not future.done():
                future.set_result(self._last)
        # After the waiters have their answer: the report delays none of them.
        if started - self._reported >= REPORT_EVERY:
            self._reported = started
            await self._report(started - previous)

    async def _report(self, gap: float) -> None:
        assert self._hook is not None
        settings = await self._hook.get_settings()
        budget = request_budget(settings)
        minute, hour = budget.sent_within(time.monotonic())
        last = f"the last {gap:.0f} s after the one before" if gap < float("inf") else "the first"
        log.info(
            f"PostHog project {self.project_id or settings.project_id}: {len(self._members)} waits share one "
            f"read of the exports list, {last} (asked for every {self.interval:g} s); the key for "
            f"{budget.label} sent {minute} requests in the last minute and {hour} in the last hour (budget "
            f"{settings.requests_per_minute:.0f}, {settings.requests_per_hour:.0f})."
        )

    async def _close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._hook is not None:
            await self._hook.aclose()
            self._hook = None


# One registry per event loop: a triggerer runs all its triggers in one loop.
_POLLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, ProjectPoll]] = (
    weakref.WeakKeyDictionary()
)
