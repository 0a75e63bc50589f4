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
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_phenv.errors import PostHogPaginationError, PostHogUnexpectedResponseError
from airflow_provider_phenv.hooks._calls import ApiCall, export_call
from airflow_provider_phenv.hooks._settings import DEFAULT_MAX_PAGES
from airflow_provider_phenv.hooks._shapes import page
from airflow_provider_phenv.validation import (
    MAX_LOGS_LIMIT,
    check_choice,
    check_filter_names,
    check_log_levels,
    check_non_empty_str,
    format_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; typing_extensions comes with Airflow and is needed only by mypy.
    from typing_extensions import Unpack

log = logging.getLogger(__name__)
_ONE_MICROSECOND = timedelta(microseconds=1)


class LogFilters(TypedDict, total=False):
    """
    The filters of a batch export logs query, passed as keyword arguments; each is optional.

    :param after: only entries strictly after this moment (a datetime or an ISO 8601 string).
    :param before: only entries strictly before this moment.
    :param level: one level (``ERROR``), a comma list, or several (``["ERROR", "WARNING"]``).
    :param search: case-insensitive substring of the message.
    :param instance_id: only entries of this Temporal workflow run (PostHog's ``instance_id``; not
        a run id from ``runs/``, docs/posthog-api.md §6.3).
    """

    after: datetime | str | None
    before: datetime | str | None
    level: str | list[str] | tuple[str, ...] | None
    search: str | None
    instance_id: str | None


def logs_query(*, limit: int = MAX_LOGS_LIMIT, **filters: Unpack[LogFilters]) -> dict[str, Any]:
    """
    Validate log filters and turn them into PostHog's query parameters.

    :param limit: entries per page (1 to 500).
    :param filters: see :class:`LogFilters`; ``None`` means no such filter.
    :raises TypeError: for a filter name that is not one of :class:`LogFilters`, as a misspelt
        keyword argument would.
    """
    check_filter_names("log", filters, LogFilters.__annotations__)
    params: dict[str, Any] = {"limit": check_choice("limit", limit, range(1, MAX_LOGS_LIMIT + 1))}
    for bound in ("after", "before"):
        moment = filters.get(bound)
        if moment is not None:
            params[bound] = format_timestamp(parse_timestamp(bound, moment))
    level = filters.get("level")
    if level is not None:
        params["level"] = level_param(check_log_levels("level", level))
    for name in ("search", "instance_id"):
        text = filters.get(name)
        if text is not None:
            params[name] = check_non_empty_str(name, text)
    return params


def level_param(levels: tuple[str, ...]) -> str | list[str]:
    """
    The ``level`` query value that every PostHog build reads as ``levels``.

    Newer builds split one value on commas; older ones read ``level`` as a list field, where
    ``INFO,ERROR`` is one level matching nothing (docs/posthog-api.md §6.3). Several levels
    are therefore sent as ``level=INFO&level=ERROR&level=INFO,ERROR``: Django hands a plain field
    the last value (the comma list), a list field all of them (the single levels match, the comma
    list matches nothing). One level is sent once, which both read alike.
    """
    if len(levels) == 1:
        return levels[0]
    return [*levels, ",".join(levels)]


def logs_call(
    batch_export_id: str,
    *,
    project_id: int | str | None = None,
    limit: int = MAX_LOGS_LIMIT,
    **filters: Unpack[LogFilters],
) -> ApiCall:
    """
    The request for one page of a batch export's logs, newest first.

    :param batch_export_id: the export's UUID.
    :param project_id: project/environment id; ``None`` means the connection's.
    :param limit: entries per page (1 to 500).
    :param filters: see :class:`LogFilters`.
    """
    return export_call(
        batch_export_id,
        "logs/",
        params=logs_query(limit=limit, **filters),
        project_id=project_id,
        expect=page(),
    )


def entry_time(entry: dict[str, Any]) -> datetime:
    """The timestamp of a log entry as an aware datetime."""
    return parse_timestamp("log entry timestamp", entry["timestamp"])


class LogsPager:
    """
    Walks the pages of one logs query backwards in time.

    Use it as: ``while pager.call is not None: entries = pager.take(send(pager.call))``.

    A server that ignores ``before=`` (and so repeats a full page) would be read for ever: each
    page's ``before`` must be earlier than the last one, and at most ``max_pages`` pages are read;
    otherwise :class:`~airflow_provider_phenv.errors.PostHogPaginationError` names the request.

    :param call: the first page's request, from :func:`logs_call`.
    :param max_pages: most pages read.
    :param path: the URL path of the request, for messages (default: the call's own path).
    """

    def __init__(self, call: ApiCall, max_pages: int = DEFAULT_MAX_PAGES, path: str | None = None) -> None:
        self.call: ApiCall | None = call
        self.max_pages = max_pages
        self.pages = 0
        self.path = path or call.path

    def take(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the entries of ``page`` to hand out (newest first) and set up the next request."""
        assert self.call is not None and self.call.params is not None, "take() called after the last page"
        self.pages += 1
        entries = page.get("results") or []
        times = [self._time(index, entry) for index, entry in enumerate(entries)]
        limit = self.call.params["limit"]
        if len(entries) < limit:
            self.call = None
            return entries
        oldest = min(times)
        newer = [entry for entry, moment in zip(entries, times, strict=True) if moment > oldest]
        if not newer:
            # A whole page shares one microsecond: the rest of that moment cannot be reached
            # through this API, so hand the page out and move on rather than loop forever.
            log.warning("More than %d log entries share timestamp %s; some may be skipped.", limit, oldest)
            self._read_before(oldest)
            return entries
        self._read_before(oldest + _ONE_MICROSECOND)
        return newer

    def _time(self, index: int, entry: Any) -> datetime:
        try:
            return entry_time(entry)
        except (KeyError, TypeError, ValueError) as error:
            raise self._error(
                PostHogUnexpectedResponseError,
                f"unexpected answer: results item {index} has no valid timestamp ({type(error).__name__})",
            ) from None

    def _read_before(self, moment: datetime) -> None:
        assert self.call is not None and self.call.params is not None
        previous = self.call.params.get("before")
        if previous is not None and moment >= parse_timestamp("before", previous):
            raise self._error(
                PostHogPaginationError,
                f"stopped reading after {self.pages:,} pages: the server ignored before={previous} "
                "(the page repeats entries at or after it)",
            )
        if self.pages >= self.max_pages:
            raise self._error(
                PostHogPaginationError,
                f"stopped reading after {self.pages:,} pages: more than max_pages={self.max_pages:,}",
            )
        self.call = replace(self.call, params={**self.call.params, "before": format_timestamp(moment)})

    def _error(
        self, kind: type[PostHogUnexpectedResponseError], detail: str
    ) -> PostHogUnexpectedResponseError:
        assert self.call is not None
        return kind(
            status_code=None,
            method=self.call.method,
            path=self.path,
            resource=self.call.subject,
            detail=detail,
        )
