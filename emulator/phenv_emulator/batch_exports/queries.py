"""The query strings of the runs and backfills routes (docs/posthog-api.md §6.9).

``ordering`` is DRF's ``OrderingFilter`` on both: comma-separated terms among the view's fields,
``-`` for descending; unknown terms are dropped and none left means the default; nulls sort as in
PostgreSQL (last ascending, first descending).

Runs (``BatchExportRunViewSet.safely_get_queryset``). PostHog filters the queryset of every runs
route with the query, not only the list's: a run outside the window (created more than 7 days ago
by default) is 404 on ``runs/{id}/``, ``retry/`` and ``cancel/`` too, unless the request's
``after=`` (or ``start=``) reaches it.

- ``status``: repeatable, each one of the run statuses (else 400, ``attr`` ``status__<index>``).
- ``ordering``: ``created_at`` or ``data_interval_start`` (default ``-created_at``).
- Ordered by ``data_interval_start`` (exactly that, or ``-data_interval_start``): the data interval
  must start at or after ``start`` (default ``-7d``) and end at or before ``end`` (default now).
  Otherwise ``created_at`` must lie within ``[after, before]`` (default ``-7d`` to now).
- Moments are read by ``relative_date_parse`` in the team's timezone (UTC here): an ISO date or
  datetime (naive means that timezone), else a relative ``-<n><unit>`` found anywhere in the text,
  with an optional ``Start``/``End``; text without one means now. It never answers 400.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from ..web.calls import Call
from ..web.errors import validation_error
from .runs import RUN_STATUSES, run_status

RUN_ORDERING_FIELDS = ("created_at", "data_interval_start")
_BY_INTERVAL = ("data_interval_start", "-data_interval_start")
_RELATIVE = re.compile(r"\-?(?P<number>[0-9]+)?(?P<kind>[hdwmqysHDWMQY])(?P<position>Start|End)?")
# Units of ``get_delta_mapping_for``: a relative duration; months and years are calendar steps.
_DURATIONS = {"h": "hours", "d": "days", "w": "weeks", "M": "minutes", "s": "seconds"}
# ``Start``/``End`` of a unit: the fields they set.
_POSITIONS: dict[tuple[str, str], dict[str, int]] = {
    ("h", "Start"): {"minute": 0, "second": 0, "microsecond": 0},
    ("h", "End"): {"minute": 59, "second": 59, "microsecond": 999999},
    ("d", "Start"): {"hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    ("d", "End"): {"hour": 23, "minute": 59, "second": 59, "microsecond": 999999},
    ("m", "Start"): {"day": 1},
    ("m", "End"): {"day": 31},
    ("y", "Start"): {"month": 1, "day": 1},
    ("y", "End"): {"day": 31},
}


@dataclass(frozen=True)
class RunQuery:
    """What a runs route's query string selects, and in which order."""

    statuses: frozenset[str]
    ordering: tuple[str, ...]
    by_interval: bool
    low: datetime
    high: datetime

    def matches(self, run: dict[str, Any], now: datetime) -> bool:
        """Whether ``safely_get_queryset`` keeps ``run``."""
        if self.statuses and run_status(run, now) not in self.statuses:
            return False
        if self.by_interval:
            start = run["data_interval_start"]
            return start is not None and self.low <= start and run["data_interval_end"] <= self.high
        return bool(self.low <= run["created_at"] <= self.high)


def ordering_terms(call: Call, fields: tuple[str, ...], default: str) -> tuple[str, ...]:
    """The valid terms of the ``ordering`` parameter, or ``(default,)``."""
    terms = [term.strip() for term in (call.arg("ordering") or "").split(",")]
    return tuple(term for term in terms if term.lstrip("-") in fields) or (default,)


def order(rows: list[dict[str, Any]], terms: tuple[str, ...]) -> list[dict[str, Any]]:
    """``rows`` sorted by the terms (stable: rows equal in every term keep their order)."""
    ordered = list(rows)
    for term in reversed(terms):
        field = term.lstrip("-")
        ordered.sort(key=lambda row: (row[field] is None, row[field] or 0), reverse=term.startswith("-"))
    return ordered


def run_query(call: Call, now: datetime) -> RunQuery:
    """Read (and validate) the query string of a runs route."""
    statuses = call.query.get("status", [])
    for index, status in enumerate(statuses):
        if status not in RUN_STATUSES:
            raise validation_error(
                f'"{status}" is not a valid choice.', code="invalid_choice", attr=f"status__{index}"
            )
    by_interval = call.arg("ordering") in _BY_INTERVAL
    low_name, high_name = ("start", "end") if by_interval else ("after", "before")
    high = call.arg(high_name)
    return RunQuery(
        statuses=frozenset(statuses),
        ordering=ordering_terms(call, RUN_ORDERING_FIELDS, "-created_at"),
        by_interval=by_interval,
        low=relative_date(call.arg(low_name) or "-7d", now),
        high=relative_date(high, now) if high else now,
    )


def relative_date(text: str, now: datetime, zone: tzinfo = timezone.utc) -> datetime:
    """``posthog.utils.relative_date_parse``: an ISO moment, else ``now`` moved by a relative unit."""
    parsed = _iso(text)
    if parsed is not None:
        return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)
    moment = now.astimezone(zone)
    match = _RELATIVE.search(text)
    if match is None:
        return moment
    number = int(match["number"] or 0)
    kind = match["kind"]
    fields = _POSITIONS.get((kind, match["position"] or ""), {})
    months = {"m": number, "y": 12 * number}.get(kind, 0)
    if kind == "q":
        duration = timedelta(weeks=13 * number)
    elif kind in _DURATIONS:
        duration = timedelta(**{_DURATIONS[kind]: number})
    else:
        duration = timedelta()
    return _minus_months(moment, months, fields) - duration


def _minus_months(moment: datetime, months: int, fields: dict[str, int]) -> datetime:
    """``moment - relativedelta(months=..., **fields)``: set fields, step back, clamp the day."""
    index = moment.year * 12 + fields.get("month", moment.month) - 1 - months
    year, month = divmod(index, 12)
    day = min(fields.get("day", moment.day), calendar.monthrange(year, month + 1)[1])
    return moment.replace(
        year=year,
        month=month + 1,
        day=day,
        hour=fields.get("hour", moment.hour),
        minute=fields.get("minute", moment.minute),
        second=fields.get("second", moment.second),
        microsecond=fields.get("microsecond", moment.microsecond),
    )


def _iso(text: str) -> datetime | None:
    """``dateutil.parser.isoparse``, then a date without zero padding (``2021-1-1``); None if neither."""
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return None
