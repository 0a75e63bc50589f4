"""The log of API requests the emulator received, for tests to assert on (what, how often, on
which connection). The API key never appears in it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it.

    :param method: HTTP method.
    :param path: request path, without the query string.
    :param query: parsed query string (``personal_api_key`` redacted).
    :param body: parsed JSON body (``personal_api_key`` redacted), or None.
    :param status: the status sent, or None when the connection was closed without an answer.
    :param connection_id: one id per TCP connection (equal ids prove keep-alive).
    :param response_bytes: size of the response body sent.
    :param user_agent: the ``User-Agent`` header.
    :param started_at: epoch seconds when the request was read.
    :param duration: seconds spent handling it (including an injected delay).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int | None
    connection_id: int
    response_bytes: int
    user_agent: str | None
    started_at: float
    duration: float


def redact(value: Any) -> Any:
    """Hide a ``personal_api_key`` field of a query dict or JSON body."""
    if isinstance(value, dict) and "personal_api_key" in value:
        replacement = [REDACTED] if isinstance(value["personal_api_key"], list) else REDACTED
        return {**value, "personal_api_key": replacement}
    return value


class RequestLog:
    """Thread-safe, append-only list of :class:`RecordedRequest`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def append(self, record: RecordedRequest) -> None:
        """Add a record."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
