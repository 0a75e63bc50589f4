"""PostHog's personal-API-key throttles (docs/posthog-api.md §3): 480/minute burst and 4800/hour
sustained, counted per key. Off by default, like a self-hosted instance with
``RATE_LIMIT_ENABLED=false``."""

from __future__ import annotations

import threading
import time
from collections import deque

from .errors import throttled

# (requests, seconds) of BurstRateThrottle and SustainedRateThrottle.
RATES = ((480, 60.0), (4800, 3600.0))


class RateLimiter:
    """DRF ``SimpleRateThrottle`` semantics: a sliding window of request times per key and rate.

    :param enabled: whether requests are throttled at all.
    """

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._history: dict[tuple[str, float], deque[float]] = {}

    def check(self, key: str) -> None:
        """Count one request of ``key``.

        :raises ApiError: 429 with the longest wait of the throttles that refused it.
        """
        if not self.enabled:
            return
        now = time.monotonic()
        waits = []
        with self._lock:
            for limit, duration in RATES:
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
        """Forget every key's history."""
        with self._lock:
            self._history.clear()
