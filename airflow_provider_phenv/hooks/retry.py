"""
The retry policy and the request budget, shared by the sync hook and the async hook.

Errors are raised inside the attempt, so tenacity sees the real PostHog error and its status. 429
is always retried (PostHog's ``Retry-After``, capped, else backoff); 5xx and transport errors only
for requests safe to repeat; a create only when it certainly did not reach PostHog. Every async
hook of one event loop with the same host and key shares one :class:`RequestBudget`, under
PostHog's per-key limits. Why, in detail: docs/airflow-internals.md, "Retries and the request
budget".
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
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
)

from airflow_provider_phenv.errors import (
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})

# Statuses after which a non-repeatable request may or may not have been carried out: every 5xx.
# A 503 or a proxy's 520/524 can come after the create committed, as a 500/502/504 can.
AMBIGUOUS_STATUSES = frozenset(range(500, 600))
MAX_RETRY_AFTER = 120.0


#: PostHog's 429 code when an export already runs as many backfills as it may (docs §6.9).
TOO_MANY_BACKFILLS = "too_many_concurrent_backfills"


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt is worth another one (the caller already ruled out unsafe repeats)."""
    if isinstance(error, PostHogRateLimitError):
        # Not throttling: a wait for a free backfill slot, which the backfill create does itself.
        return error.code != TOO_MANY_BACKFILLS
    if isinstance(error, PostHogServerError):
        return error.status_code in RETRYABLE_STATUSES
    return isinstance(error, PostHogTransportError)


class WaitForPostHog:
    """
    Tenacity wait: PostHog's ``Retry-After`` when it sent one, else exponential backoff with jitter.

    :param backoff: first backoff in seconds; doubles per attempt.
    :param backoff_max: longest backoff in seconds.
    :param retry_after_max: longest ``Retry-After`` honoured, so a bad header cannot stall a task.
    """

    def __init__(self, backoff: float, backoff_max: float, retry_after_max: float = MAX_RETRY_AFTER) -> None:
        self.retry_after_max = retry_after_max
        # Composed from the two oldest tenacity waits, so every tenacity Airflow ships behaves alike.
        self._exponential = wait_exponential(multiplier=backoff, max=backoff_max) + wait_random(0, backoff)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, PostHogRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, self.retry_after_max)
        return self._exponential(retry_state)


def retry_kwargs(
    *, max_retries: int, backoff: float, backoff_max: float, logger: logging.Logger | Any
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``tenacity.AsyncRetrying`` alike."""

    def log_retry(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.warning(
            "Retrying in %.1f s (attempt %d of %d failed): %s",
            wait,
            retry_state.attempt_number,
            max_retries + 1,
            error,
        )

    return {
        "retry": retry_if_exception(is_retryable),
        "stop": stop_after_attempt(max_retries + 1),
        "wait": WaitForPostHog(backoff, backoff_max),
        "before_sleep": log_retry,
        "reraise": True,
    }


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date (RFC 9110 allows both)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def is_backfill_slot_busy(error: BaseException) -> bool:
    """Whether PostHog refused a backfill because too many run already."""
    return isinstance(error, PostHogRateLimitError) and error.code == TOO_MANY_BACKFILLS


def row_wait_kwargs(timeout: float, retry: Any) -> dict[str, Any]:
    """
    Keyword arguments for ``tenacity.Retrying``: ask again, soon then every 2 s, while ``retry``
    says a new backfill is not visible yet, for at most ``timeout`` seconds (one try for 0).
    """
    return {
        "retry": retry,
        "stop": stop_after_delay(timeout),
        "wait": wait_exponential(multiplier=0.1, max=2.0),
        "reraise": True,
    }


def slot_wait_kwargs(timeout: float, interval: float, logger: logging.Logger | Any) -> dict[str, Any]:
    """
    Keyword arguments for ``tenacity.Retrying``: try again every ``interval`` seconds while PostHog
    has no free backfill slot, for at most ``timeout`` seconds, saying so in the log.
    """

    def log_wait(retry_state: RetryCallState) -> None:
        logger.warning(
            "PostHog runs as many backfills as it allows; trying again in %.0f s (waited %.0f s of %.0f s).",
            interval,
            retry_state.seconds_since_start or 0.0,
            timeout,
        )

    return {
        "retry": retry_if_exception(is_backfill_slot_busy),
        "stop": stop_after_delay(timeout),
        "wait": wait_fixed(interval),
        "before_sleep": log_wait,
        "reraise": True,
    }


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
