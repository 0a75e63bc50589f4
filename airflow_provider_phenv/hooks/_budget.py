"""
One request budget per PostHog key in a process: what keeps a triggerer full of waits under
PostHog's rate limit.

PostHog allows a personal API key 480 requests a minute and 4,800 an hour (docs/posthog-api.md §3).
A thousand deferred waits polling every few seconds would ask for far more, and each would spend
its retries on 429s. So every async hook in one event loop (the triggerer's) that uses the same
host and key shares one :class:`RequestBudget`:

* at most so many requests go out in any minute and any hour (PostHog counts sliding windows too),
  first come first served, so when the budget is short every wait's polls stretch alike (and the
  budget says so in the log);
* identical GETs in flight at the same moment (two waits on the same backfill, say) are sent once
  and share the answer (each gets its own copy);
* a 429 that still happens pauses every request on that key for ``Retry-After`` (or a backoff), not
  only the one that got it.

Budgets are kept per event loop, since asyncio primitives belong to one loop, and are keyed by a
digest of the host and key: the key itself is never kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from airflow_provider_phenv.errors import PostHogRateLimitError
from airflow_provider_phenv.hooks._retry import MAX_RETRY_AFTER

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Defaults a little under PostHog's personal-API-key limits (480/minute, 4,800/hour), leaving
#: room for the workers' own requests with the same key.
DEFAULT_PER_MINUTE = 400
DEFAULT_PER_HOUR = 4000
# A 429 without Retry-After pauses the key this long.
_DEFAULT_PAUSE = 30.0
# Say at most this often that the budget is short.
_REPORT_EVERY = 60.0


class _Window:
    """
    At most ``limit`` requests in any ``seconds``-long window, the way PostHog counts them.

    A request counts from the moment it may go until ``seconds`` after its answer arrived: PostHog
    counts it when it arrives, somewhere in between, so no window of PostHog's can hold more.
    """

    # While every counted request is still in flight, look again this often.
    _RECHECK = 0.05

    def __init__(self, limit: float, seconds: float) -> None:
        self.limit = int(limit)
        self.seconds = seconds
        self.in_flight = 0
        self.answered: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more request fits (0 when it does)."""
        while self.answered and now - self.answered[0] >= self.seconds:
            self.answered.popleft()
        if self.in_flight + len(self.answered) < self.limit:
            return 0.0
        return self.answered[0] + self.seconds - now if self.answered else self._RECHECK


class RequestBudget:
    """
    The shared budget of one host and key in one event loop.

    :param per_minute: requests a minute at most.
    :param per_hour: requests an hour at most.
    :param label: how the budget is named in the log (host only, never the key).
    """

    def __init__(self, per_minute: float, per_hour: float, label: str) -> None:
        self.windows = (_Window(per_minute, 60.0), _Window(per_hour, 3600.0))
        self.label = label
        self.paused_until = 0.0
        self.waiting = 0
        self.sent = 0
        self.coalesced = 0
        self._turn = asyncio.Lock()
        self._in_flight: dict[Any, asyncio.Future[Any]] = {}
        self._reported = 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request's place in the budget while it is sent and answered."""
        await self.acquire()
        try:
            yield
        finally:
            answered = time.monotonic()
            for window in self.windows:
                window.in_flight -= 1
                window.answered.append(answered)

    async def acquire(self) -> None:
        """Wait for a place, in arrival order (a pause after a 429 holds everyone); see :meth:`slot`."""
        self.waiting += 1
        started = time.monotonic()
        try:
            async with self._turn:
                while True:
                    now = time.monotonic()
                    delay = max(
                        [self.paused_until - now, *(window.wait_time(now) for window in self.windows)]
                    )
                    if delay <= 0:
                        break
                    await asyncio.sleep(delay)
                for window in self.windows:
                    window.in_flight += 1
        finally:
            self.waiting -= 1
        self._report(time.monotonic() - started)

    def _report(self, waited: float) -> None:
        now = time.monotonic()
        if waited >= 1.0 and now - self._reported >= _REPORT_EVERY:
            self._reported = now
            log.warning(
                "The request budget for %s is short: polls are stretched (this request waited %.1f s, "
                "%d more waiting). Poll less often or raise the connection's request budget.",
                self.label,
                waited,
                self.waiting,
            )

    def pause(self, seconds: float | None) -> None:
        """
        After a 429: hold every request on this key for ``seconds`` (or a default), at most
        ``MAX_RETRY_AFTER``: one answer with an absurd ``Retry-After`` must not freeze every wait.
        """
        until = time.monotonic() + min(_DEFAULT_PAUSE if seconds is None else seconds, MAX_RETRY_AFTER)
        if until > self.paused_until:
            self.paused_until = until
            log.warning(
                "PostHog throttled the key for %s: every request on it waits %.0f s.",
                self.label,
                until - time.monotonic(),
            )

    async def send(self, coalesce_key: Any, send: Callable[[], Awaitable[T]]) -> T:
        """
        Send one request within the budget; ``coalesce_key`` (None for none) shares an identical
        request already in flight instead of sending it again.

        A wait that shares a request gets its own copy of the answer (or the same error). When the
        wait that sent it is cancelled, the others do not inherit the cancellation: they send their
        own request.
        """
        while coalesce_key is not None and coalesce_key in self._in_flight:
            shared = self._in_flight[coalesce_key]
            # asyncio.wait raises only when this wait itself is cancelled, and never cancels ``shared``.
            await asyncio.wait({shared})
            if not shared.cancelled():
                self.coalesced += 1
                return copy.deepcopy(shared.result())
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if coalesce_key is not None:
            self._in_flight[coalesce_key] = future
        try:
            async with self.slot():
                self.sent += 1
                result = await send()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            if isinstance(error, PostHogRateLimitError):
                self.pause(error.retry_after)
            future.set_exception(error)
            future.exception()  # retrieved: a lone request's failure is not "never retrieved"
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if coalesce_key is not None:
                self._in_flight.pop(coalesce_key, None)


_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RequestBudget]] = (
    weakref.WeakKeyDictionary()
)


def request_budget(host: str, api_key: str, per_minute: float, per_hour: float) -> RequestBudget:
    """The budget shared by every async hook of this event loop that uses ``host`` and ``api_key``."""
    loop = asyncio.get_running_loop()
    digest = hashlib.blake2b(f"{host}\x1f{api_key}".encode(), digest_size=8).hexdigest()
    budgets = _budgets.setdefault(loop, {})
    budget = budgets.get(digest)
    if budget is None:
        budget = budgets[digest] = RequestBudget(per_minute, per_hour, label=host)
    return budget
