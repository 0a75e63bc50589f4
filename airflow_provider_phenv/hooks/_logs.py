"""
Paging through batch export logs, shared by the sync and the async hook.

PostHog returns log entries newest first and caps a page at ``limit`` (at most 500); its ``next``
link is always null because the same ``limit`` feeds the database query. The way to read further
back is to ask again with ``before=<oldest timestamp seen>``. ``before`` is exclusive, so entries
that share the oldest timestamp of a full page could fall between two pages: the pager drops that
timestamp from the full page and asks for ``before = oldest + 1 µs`` instead, which returns every
entry of that moment on the next page. No entry is skipped and none is read twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_phenv.validation import (
    MAX_LOGS_LIMIT,
    check_choice,
    check_log_levels,
    check_non_empty_str,
    format_timestamp,
    parse_timestamp,
)

log = logging.getLogger(__name__)
_ONE_MICROSECOND = timedelta(microseconds=1)


def logs_query(
    *,
    after: datetime | str | None = None,
    before: datetime | str | None = None,
    level: str | list[str] | tuple[str, ...] | None = None,
    search: str | None = None,
    instance_id: str | None = None,
    limit: int = MAX_LOGS_LIMIT,
) -> dict[str, Any]:
    """Validate log filters and turn them into PostHog's query parameters."""
    params: dict[str, Any] = {"limit": check_choice("limit", limit, range(1, MAX_LOGS_LIMIT + 1))}
    if after is not None:
        params["after"] = format_timestamp(parse_timestamp("after", after))
    if before is not None:
        params["before"] = format_timestamp(parse_timestamp("before", before))
    if level is not None:
        params["level"] = ",".join(check_log_levels("level", level))
    if search is not None:
        params["search"] = check_non_empty_str("search", search)
    if instance_id is not None:
        params["instance_id"] = check_non_empty_str("instance_id", instance_id)
    return params


def entry_time(entry: dict[str, Any]) -> datetime:
    """The timestamp of a log entry as an aware datetime."""
    return parse_timestamp("log entry timestamp", entry["timestamp"])


class LogsPager:
    """
    Walks the pages of one logs query backwards in time.

    Use it as: ``while pager.params is not None: entries = pager.take(fetch(pager.params))``.

    :param params: the first page's query parameters, from :func:`logs_query`.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params: dict[str, Any] | None = dict(params)

    def take(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the entries of ``page`` to hand out (newest first) and set up the next request."""
        assert self.params is not None, "take() called after the last page"
        entries = page.get("results") or []
        limit = self.params["limit"]
        if len(entries) < limit:
            self.params = None
            return entries
        oldest = entry_time(entries[-1])
        newer = [entry for entry in entries if entry_time(entry) > oldest]
        if not newer:
            # A whole page shares one microsecond: the rest of that moment cannot be reached
            # through this API, so hand the page out and move on rather than loop forever.
            log.warning("More than %d log entries share timestamp %s; some may be skipped.", limit, oldest)
            self.params = {**self.params, "before": format_timestamp(oldest)}
            return entries
        self.params = {**self.params, "before": format_timestamp(oldest + _ONE_MICROSECOND)}
        return newer
