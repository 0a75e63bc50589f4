"""Injected faults: what a flaky network or an overloaded PostHog does to a client.

A fault matches by method and a substring of the path and applies to the next ``times`` matching
requests, then it is gone. Faults never apply to the ``/_emulator/`` control endpoints.
"""

from __future__ import annotations

import http
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .calls import Response
from .errors import for_status

KINDS = ("status", "html", "drop", "slow", "lost_response")
_HTML_PAGE = """<html>
<head><title>{status} {phrase}</title></head>
<body>
<center><h1>{status} {phrase}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@dataclass
class Fault:
    """One pending fault; see :meth:`FaultInjector.add` for the fields."""

    kind: str
    method: str | None
    path: str | None
    times: int
    status: int | None
    retry_after: float | None
    delay: float | None

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is affected."""
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or self.path in path
        )

    def response(self) -> Response:
        """The canned answer of a ``status`` or ``html`` fault."""
        status = self.status or 502
        if self.kind == "html":
            page = _HTML_PAGE.format(status=status, phrase=http.HTTPStatus(status).phrase)
            headers = (
                {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after is not None else {}
            )
            return Response(status, page, headers=headers, content_type="text/html")
        error = for_status(status, self.retry_after)
        return Response(status, error.body(), headers=dict(error.headers))


class FaultInjector:
    """Thread-safe queue of pending faults (first added, first applied)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Inject a fault into the next ``times`` matching requests.

        :param kind: ``"status"`` (answer ``status`` with PostHog's error envelope; 429 gets the
            throttled envelope and ``Retry-After`` when ``retry_after`` is given), ``"html"`` (a
            text/html proxy error page, status 502 by default), ``"drop"`` (close the connection
            before handling: nothing is committed), ``"slow"`` (sleep ``delay`` seconds, then handle
            normally) or ``"lost_response"`` (handle and commit, then close without answering).
        :param method: HTTP method to match; None matches any.
        :param path: substring of the request path to match; None matches any.
        :param times: how many matching requests are affected.
        :param status: the status of ``status``/``html`` faults.
        :param retry_after: seconds for the ``Retry-After`` header.
        :param delay: seconds a ``slow`` fault waits.
        :returns: the pending fault.
        :raises ValueError: on an unknown kind or a missing ``status``/``delay``.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if kind == "status" and status is None:
            raise ValueError("a 'status' fault needs status=")
        if kind == "slow" and delay is None:
            raise ValueError("a 'slow' fault needs delay=")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(kind, method, path, times, status, retry_after, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, using up one of its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The faults still waiting, as dicts."""
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def clear(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._faults.clear()
