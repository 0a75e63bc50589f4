"""PostHog's personal-API-key throttles (docs/posthog-api.md §3): 480/minute burst and 4800/hour
sustained, counted per key, unless the team is on ``RATE_LIMITING_ALLOW_LIST_TEAMS``. Off by
default, like a self-hosted instance with ``RATE_LIMIT_ENABLED=false``.

PostHog's own tests (``posthog/test/test_rate_limit.py``) lower a rate to reach it quickly; so can
tests of the emulator, with :meth:`RateLimiter.configure`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from .errors import throttled

#: (requests, seconds) of BurstRateThrottle and SustainedRateThrottle.
RATES = ((480, 60.0), (4800, 3600.0))


class RateLimiter:
    """DRF ``SimpleRateThrottle`` semantics: a sliding window of request times per key and rate.

    :param enabled: whether requests are throttled at all.
    :param rates: ``(requests, seconds)`` per throttle, burst then sustained.
    :param allow_list_teams: team ids never throttled.

    :meth:`reset` forgets every key's history and restores these settings.
    """

    def __init__(
        self,
        enabled: bool = False,
        rates: Iterable[tuple[int, float]] = RATES,
        allow_list_teams: Iterable[int] = (),
    ) -> None:
        self._start = (enabled, tuple(rates), frozenset(allow_list_teams))
        self._lock = threading.Lock()
        self._history: dict[tuple[str, float], deque[float]] = {}
        self.enabled, self.rates, self.allow_list_teams = self._start

    def configure(
        self,
        enabled: bool | None = None,
        *,
        burst: int | None = None,
        sustained: int | None = None,
        allow_list_teams: Iterable[int] | None = None,
    ) -> None:
        """Change the settings; None leaves one as it is (:meth:`reset` restores the start's).

        :param enabled: throttle or not.
        :param burst: requests a key may make per minute.
        :param sustained: requests a key may make per hour.
        :param allow_list_teams: team ids never throttled.
        """
        (burst_rate, minute), (sustained_rate, hour) = self.rates
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            self.rates = ((burst or burst_rate, minute), (sustained or sustained_rate, hour))
            if allow_list_teams is not None:
                self.allow_list_teams = frozenset(allow_list_teams)
            self._history.clear()

    def check(self, key: str, team_id: int | None = None) -> None:
        """Count one request of ``key`` on ``team_id``.

        :raises ApiError: 429 with the longest wait of the throttles that refused it.
        """
        if not self.enabled or team_id in self.allow_list_teams:
            return
        now = time.monotonic()
        waits = []
        with self._lock:
            for limit, duration in self.rates:
                # Newest first, as DRF keeps it; the oldest request decides when a slot frees up.
                history = self._history.setdefault((key, duration), deque())
                while history and history[-1] <= now - duration:
                    history.pop()
                if len(history) >= limit:
                    waits.append(duration - (now - history[-1]))
                else:
                    history.appendleft(now)
        if waits:
            raise throttled(max(waits))

    def reset(self) -> None:
        """Forget every key's history and restore the starting settings."""
        with self._lock:
            self._history.clear()
            self.enabled, self.rates, self.allow_list_teams = self._start
