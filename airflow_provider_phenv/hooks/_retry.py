"""
The retry policy shared by the sync hook and the async hook used in triggers.

Errors are raised inside the attempt, so tenacity sees the real PostHog error and its status
(the dbt Cloud hook converts them first and never retries a 503). What is retried:

* 429, always: PostHog throttles before doing anything. The wait is PostHog's ``Retry-After``
  (capped), else exponential backoff with jitter.
* 500, 502, 503, 504 and transport errors, for requests that are safe to repeat.
* For requests that are not (creates), only what certainly did not reach PostHog: a connection
  that could not be opened. Anything else ambiguous (any 5xx, 503 and Cloudflare's 520/524
  included, as each can come after the create committed; a lost or unreadable answer) becomes
  :class:`~airflow_provider_phenv.errors.PostHogWriteOutcomeUnknownError` in the hook.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

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
