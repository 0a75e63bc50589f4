"""Batch export log entries, kept sorted by timestamp per export.

Entries may carry future timestamps: a run writes its whole timeline when it starts, and each
entry becomes visible once its moment has passed. That keeps the emulator free of background
threads and makes "logs appear over time" deterministic.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..web.fields import iso


@dataclass(frozen=True)
class LogEntry:
    """One log line, as PostHog's ``LogEntry`` dataclass."""

    log_source_id: str
    instance_id: str
    timestamp: datetime
    level: str
    message: str

    def as_json(self) -> dict[str, Any]:
        """The API representation (timestamp in ISO UTC with microseconds and ``Z``)."""
        return {
            "log_source_id": self.log_source_id,
            "instance_id": self.instance_id,
            "timestamp": iso(self.timestamp),
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

    def query(self, log_source_id: str, query: LogQuery, now: datetime) -> list[LogEntry]:
        """Visible entries matching ``query``, newest first, at most ``query.limit``.

        :param log_source_id: the batch export id.
        :param query: the filters.
        :param now: entries stamped after this moment are not written yet.
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
        for index in range(high - 1, low - 1, -1):
            entry = rows[index][2]
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


def _timestamp(row: tuple[datetime, int, LogEntry]) -> datetime:
    return row[0]


def _sort_key(row: tuple[datetime, int, LogEntry]) -> tuple[datetime, int]:
    return row[0], row[1]
