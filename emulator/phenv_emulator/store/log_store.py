"""Batch export log entries, kept sorted by timestamp per export.

Entries may carry future timestamps: a run writes its whole timeline when it starts, and each
entry becomes visible once its moment has passed. That keeps the emulator free of background
threads and makes "logs appear over time" deterministic.

Visibility is not in timestamp order (docs/posthog-api.md §6.3): a query passes a ``delay``
function, and an entry shows up ``delay(entry)`` seconds after its timestamp (or at its own
``visible_at``), so a newer entry can be visible before an older one.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any


@dataclass(frozen=True)
class LogEntry:
    """One log line, as PostHog's ``LogEntry`` dataclass."""

    log_source_id: str
    instance_id: str
    timestamp: datetime
    level: str
    message: str
    #: When the entry becomes visible; None: decided by the query's ``delay``.
    visible_at: datetime | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, Any]:
        """The API representation: DRF's ``isoformat()`` with ``Z``, no fraction when it is zero."""
        return {
            "log_source_id": self.log_source_id,
            "instance_id": self.instance_id,
            "timestamp": self.timestamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "level": self.level,
            "message": self.message,
        }


@dataclass(frozen=True)
class LogQuery:
    """Filters of the ``logs`` endpoint. Bounds are exclusive; ``levels`` are upper-case."""

    limit: int = 50
    after: datetime | None = None
    before: datetime | None = None
    levels: frozenset[str] | None = None
    search: str | None = None
    instance_id: str | None = None


class LogStore:
    """Per-export lists of ``(timestamp, sequence, entry)``, sorted so range queries use bisect.

    The sequence number breaks timestamp ties (entries are never compared) and keeps insertion
    order among equal timestamps.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[datetime, int, LogEntry]]] = {}
        self._sequence = itertools.count()

    def add(self, entries: Iterable[LogEntry]) -> None:
        """Store entries (any order, any time, past or future)."""
        touched = set()
        for entry in entries:
            self._rows.setdefault(entry.log_source_id, []).append(
                (entry.timestamp, next(self._sequence), entry)
            )
            touched.add(entry.log_source_id)
        for log_source_id in touched:
            # Timsort is linear on already-sorted runs, so appending then sorting stays cheap.
            self._rows[log_source_id].sort(key=_sort_key)

    def discard_after(self, log_source_id: str, instance_id: str, moment: datetime) -> None:
        """Drop one run's entries stamped after ``moment`` (a cancelled run writes nothing more)."""
        rows = self._rows.get(log_source_id, [])
        rows[:] = [row for row in rows if not (row[2].instance_id == instance_id and row[0] > moment)]

    def query(
        self,
        log_source_id: str,
        query: LogQuery,
        now: datetime,
        delay: Callable[[LogEntry], float] | None = None,
        max_delay: float = 0.0,
    ) -> list[LogEntry]:
        """Visible entries matching ``query``, newest first, at most ``query.limit``.

        :param log_source_id: the batch export id.
        :param query: the filters.
        :param now: entries stamped after this moment are not written yet.
        :param delay: seconds after its timestamp an entry without ``visible_at`` becomes visible.
        :param max_delay: the largest value ``delay`` returns (older entries skip the check).
        """
        rows = self._rows.get(log_source_id, [])
        low = 0 if query.after is None else bisect.bisect_right(rows, query.after, key=_timestamp)
        if query.before is not None and query.before <= now:
            high = bisect.bisect_left(rows, query.before, key=_timestamp)
        else:
            # Not written yet: an entry stamped after ``now`` stays hidden; one stamped exactly now shows.
            high = bisect.bisect_right(rows, now, key=_timestamp)
        search = query.search.lower() if query.search else None
        found: list[LogEntry] = []
        settled = now - timedelta(seconds=max_delay)
        for index in range(high - 1, low - 1, -1):
            entry = rows[index][2]
            if not _visible(entry, now, settled, delay):
                continue
            if query.levels is not None and entry.level not in query.levels:
                continue
            if query.instance_id is not None and entry.instance_id != query.instance_id:
                continue
            if search is not None and search not in entry.message.lower():
                continue
            found.append(entry)
            if len(found) >= query.limit:
                break
        return found

    def count(self, log_source_id: str) -> int:
        """How many entries an export has, including those not visible yet."""
        return len(self._rows.get(log_source_id, []))


def _visible(
    entry: LogEntry, now: datetime, settled: datetime, delay: Callable[[LogEntry], float] | None
) -> bool:
    if entry.visible_at is not None:
        return max(entry.visible_at, entry.timestamp) <= now
    if delay is None or entry.timestamp <= settled:
        return True
    return entry.timestamp + timedelta(seconds=delay(entry)) <= now


def _timestamp(row: tuple[datetime, int, LogEntry]) -> datetime:
    return row[0]


def _sort_key(row: tuple[datetime, int, LogEntry]) -> tuple[datetime, int]:
    return row[0], row[1]
