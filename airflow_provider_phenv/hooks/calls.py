"""Request descriptions (:class:`ApiCall`), the shapes their answers must have (functions ``value -> problem
or None``, checked on the fields callers index) and the pagers of listings; no HTTP client, no connection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_phenv.errors import PostHogPaginationError, PostHogUnexpectedResponseError
from airflow_provider_phenv.validation import (
    MAX_LOGS_LIMIT,
    RUN_STATUSES,
    check_choice,
    check_filter_names,
    check_log_levels,
    check_non_empty_str,
    check_positive_int,
    check_uuid,
    format_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)
Shape = Callable[[Any], "str | None"]

# bool before int: a JSON boolean is no integer.
_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}


def describe(value: Any) -> str:
    """A short name for what a JSON value is, for messages (never the value itself)."""
    if value is None:
        return "null"
    for kind, name in _NAMES.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def json_object(**fields: tuple[Any, ...]) -> Shape:
    """An object whose named fields, when present, have one of the given types (of ``_NAMES``, ``None`` for
    null); a leading ``...`` makes a field required: ``json_object(id=(..., int))``."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected a JSON object, got {describe(value)}"
        for name, kinds in fields.items():
            required = bool(kinds) and kinds[0] is ...
            allowed = [_NAMES.get(kind, "null") for kind in kinds if kind is not ...]
            if name not in value:
                if required:
                    return f"expected a JSON object with {name!r}, which is missing"
            elif describe(value[name]) not in allowed:
                return f"expected {name!r} to be {' or '.join(allowed)}, got {describe(value[name])}"
        return None

    return check


def list_of_objects(item: Shape | None = None) -> Shape:
    """A list whose items are objects, each of shape ``item`` (default: any object)."""
    item_shape = item or json_object()

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected a JSON list, got {describe(value)}"
        for index, entry in enumerate(value):
            if problem := item_shape(entry):
                return f"item {index}: {problem}"
        return None

    return check


def _with_list(name: str, item: Shape | None = None, **others: tuple[Any, ...]) -> Shape:
    """An object whose required field ``name`` is a list of objects of shape ``item``."""
    head, items = json_object(**{name: (..., list)}, **others), list_of_objects(item)

    def check(value: Any) -> str | None:
        if problem := head(value):
            return problem
        return f"{name} {problem}" if (problem := items(value[name])) else None

    return check


def page(item: Shape | None = None) -> Shape:
    """A page of a list: ``results`` (objects of shape ``item``, never null) and an optional ``next`` link."""
    return _with_list("results", item, next=(str, None))


def paused_is(expected: bool) -> Shape:
    """PostHog's answer to pause (``expected`` True) or unpause, which must say the state it reached."""

    def check(value: Any) -> str | None:
        if problem := json_object(paused=(..., bool))(value):
            return f"{problem} (no evidence that the export is {'paused' if expected else 'unpaused'})"
        if value["paused"] is not expected:
            return f"expected 'paused': {str(expected).lower()}, got {str(value['paused']).lower()}"
        return None

    return check


def _access_control_row(value: Any) -> str | None:
    # PostHog answers a removed rule (access_level null) with 204 and no body.
    return None if value is None else json_object(access_level=(..., str))(value)


BATCH_EXPORT = json_object(destination=(dict, None))
TEST_STEPS = _with_list("steps")
TEST_STEP_RESULT = json_object(result=(dict, None))
DASHBOARD = json_object(id=(..., int))
BACKFILL = json_object(id=(..., str))
BACKFILL_STARTED = json_object(backfill_id=(..., str))
COLLABORATORS = list_of_objects(json_object(user=(dict, None)))
COLLABORATOR = json_object(user=(..., dict))
ACCESS_CONTROLS = json_object(access_controls=(..., list))
ACCESS_CONTROL_ROW: Shape = _access_control_row
MEMBER = json_object(id=(..., str), user=(..., dict))
OBJECT = json_object()  # what a call naming no other shape expects


@dataclass(frozen=True)
class ApiCall:
    """One request to PostHog, built after every id is validated, so bad input fails before sending.

    :param path: path below ``/api/<prefix>/<project_id>/``, or below ``/api/`` with ``global_path``.
    :param resource: what the call is about, for messages (``batch export <id>``).
    :param method: HTTP method.
    :param params: query parameters; a list value is sent as a repeated parameter.
    :param body: JSON body, or ``None`` for none.
    :param repeatable: whether sending it twice is harmless; creates are not.
    :param project_id: project/environment id; ``None`` means the connection's, resolved by the hook.
    :param next_url: a page's ``next`` link, sent instead of ``path`` and ``params``.
    :param retry_server_errors: whether a 5xx may be worth another try (not where a 500 is final).
    :param global_path: the path is below ``/api/`` itself: no project is resolved or named.
    :param expect: the shape a successful answer must have, else ``PostHogUnexpectedResponseError``.
    """

    path: str
    resource: str
    _: KW_ONLY
    method: str = "GET"
    params: dict[str, Any] | None = None
    body: Any = None
    repeatable: bool = True
    project_id: int | str | None = None
    next_url: str | None = None
    retry_server_errors: bool = True
    global_path: bool = False
    expect: Shape = OBJECT

    @property
    def subject(self) -> str:
        """What the call is about, with its project: ``batch export <id> in project 1``."""
        return self.resource if self.global_path else f"{self.resource} in project {self.project_id}"


class _Pager:
    """What both pagers share: the next page's request (None after the last), and their errors.

    :param call: the first page's request.
    :param max_pages: most pages read.
    :param url_of: the URL a call is sent to, to recognise a page and for messages.
    """

    def __init__(self, call: ApiCall, max_pages: int, url_of: Callable[[ApiCall], str]) -> None:
        self.call: ApiCall | None = call
        self.max_pages, self.pages, self._url_of = max_pages, 0, url_of

    def _error(
        self, call: ApiCall, detail: str, kind: type[PostHogUnexpectedResponseError] = PostHogPaginationError
    ) -> PostHogUnexpectedResponseError:
        path = urlsplit(self._url_of(call)).path
        return kind(status_code=None, method=call.method, path=path, resource=call.subject, detail=detail)


class ListPager(_Pager):
    """Follows a list's ``next`` links (``while pager.call: pager.take(send(pager.call))``), each result
    checked by the call's own ``expect``; a link back to a page read, or past ``max_pages``, is an error."""

    def __init__(self, call: ApiCall, max_pages: int, url_of: Callable[[ApiCall], str]) -> None:
        super().__init__(replace(call, expect=page(call.expect)), max_pages, url_of)
        self._seen = {self._key(call)}

    def _key(self, call: ApiCall) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Which page ``call`` names, whatever the parameter order or trailing slash."""
        parts = urlsplit(self._url_of(call))
        query = parse_qsl(parts.query, keep_blank_values=True)
        for name, value in (call.params or {}).items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                query.append((name, str(item)))
        return parts.path.rstrip("/"), tuple(sorted(query))

    def take(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The results of the page ``body`` just read; sets :attr:`call` to the next page or None."""
        assert self.call is not None, "take() called after the last page"
        self.pages += 1
        link = body.get("next")
        self.call = replace(self.call, params=None, next_url=link) if link else None
        if self.call is not None:
            key, stop = self._key(self.call), f"stopped reading the list after {self.pages:,} pages"
            if key in self._seen:
                raise self._error(self.call, f"{stop}: its next link points back at a page already read")
            if self.pages >= self.max_pages:
                raise self._error(self.call, f"{stop}: it has more than max_pages={self.max_pages:,} pages")
            self._seen.add(key)
        return body["results"]


def export_call(batch_export_id: str, tail: str = "", **kwargs: Any) -> ApiCall:
    """A call on one batch export (UUID checked here), or below it (``tail`` such as ``"logs/"``)."""
    export_id = check_uuid("batch_export_id", batch_export_id)
    return ApiCall(f"batch_exports/{export_id}/{tail}", f"batch export {export_id}", **kwargs)


# PostHog looks runs up among those created in the last 7 days unless ``after`` reaches further,
# by id too (``safely_get_queryset``, docs/posthog-api.md §6.9): any run is created after this.
_ANY_RUN_AFTER = "2000-01-01T00:00:00Z"


def run_call(batch_export_id: str, run_id: str, action: str = "", **kwargs: Any) -> ApiCall:
    """A call on one run of a batch export (``action`` such as ``"retry/"``), reaching runs of any age."""
    tail = f"runs/{check_uuid('run_id', run_id)}/{action}"
    return export_call(batch_export_id, tail, params={"after": _ANY_RUN_AFTER}, **kwargs)


def _bounds(filters: Any, naive_ok: bool) -> dict[str, str]:
    """The ``after`` and ``before`` filters given, as PostHog's timestamps."""
    return {
        bound: format_timestamp(parse_timestamp(bound, filters[bound], naive_ok=naive_ok))
        for bound in ("after", "before")
        if filters.get(bound) is not None
    }


class RunFilters(TypedDict, total=False):
    """The filters of a batch export runs list, passed as keyword arguments; each is optional.

    :param status: only runs in this status, or any of several, from
        :data:`~airflow_provider_phenv.validation.RUN_STATUSES` (``Failed``, ``Running``...).
    :param after: only runs created at or after this aware moment (PostHog's default: 7 days ago).
    :param before: only runs created at or before this aware moment.
    """

    status: str | Sequence[str] | None
    after: datetime | str | None
    before: datetime | str | None


def runs_call(
    batch_export_id: str, *, project_id: int | str | None = None, **filters: Unpack[RunFilters]
) -> ApiCall:
    """The first page of a batch export's runs, newest first (100 a page), filtered by :class:`RunFilters`."""
    check_filter_names("run", filters, RunFilters.__annotations__)
    params: dict[str, Any] = _bounds(filters, naive_ok=False)
    status = filters.get("status")
    if status is not None:
        # An empty list is checked as one value, so it is refused rather than meaning "any status";
        # a list becomes repeated ``status=`` parameters, which PostHog reads as "any of these".
        statuses = status if isinstance(status, (list, tuple, set, frozenset)) and status else [status]
        params["status"] = [check_choice("status", item, RUN_STATUSES) for item in statuses]
    return export_call(batch_export_id, "runs/", params=params, project_id=project_id)


def dashboard_call(dashboard_id: int | str, tail: str = "", **kwargs: Any) -> ApiCall:
    """A call on one dashboard (id checked here), or below it (``tail`` such as ``"collaborators/"``)."""
    dashboard = check_positive_int("dashboard_id", dashboard_id)
    return ApiCall(f"dashboards/{dashboard}/{tail}", f"dashboard {dashboard}", **kwargs)


class LogFilters(TypedDict, total=False):
    """The filters of a batch export logs query, passed as keyword arguments; each is optional.

    :param after: only entries strictly after this moment (a datetime or an ISO 8601 string).
    :param before: only entries strictly before this moment.
    :param level: one level (``ERROR``), a comma list, or several (``["ERROR", "WARNING"]``).
    :param search: case-insensitive substring of the message.
    :param instance_id: only entries of this Temporal workflow run (not a run id: docs/posthog-api.md §6.3).
    """

    after: datetime | str | None
    before: datetime | str | None
    level: str | list[str] | tuple[str, ...] | None
    search: str | None
    instance_id: str | None


def level_param(levels: tuple[str, ...]) -> str | list[str]:
    """The ``level`` query value that every PostHog build reads as ``levels`` (docs/posthog-api.md §6.3)."""
    # level=INFO&level=ERROR&level=INFO,ERROR: newer builds read the last value split on commas, older
    # ones every value (the comma list matching nothing). One level is sent once, read alike by both.
    return levels[0] if len(levels) == 1 else [*levels, ",".join(levels)]


def logs_call(
    batch_export_id: str,
    *,
    project_id: int | str | None = None,
    limit: int = MAX_LOGS_LIMIT,
    **filters: Unpack[LogFilters],
) -> ApiCall:
    """One page (``limit`` entries, 1 to 500) of a batch export's logs, newest first, filtered by
    :class:`LogFilters` (an unknown filter raises ``TypeError``)."""
    check_filter_names("log", filters, LogFilters.__annotations__)
    params: dict[str, Any] = {"limit": check_choice("limit", limit, range(1, MAX_LOGS_LIMIT + 1))}
    params.update(_bounds(filters, naive_ok=True))
    level = filters.get("level")
    if level is not None:
        params["level"] = level_param(check_log_levels("level", level))
    for name in ("search", "instance_id"):
        text = filters.get(name)
        if text is not None:
            params[name] = check_non_empty_str(name, text)
    return export_call(batch_export_id, "logs/", params=params, project_id=project_id, expect=page())


def entry_time(entry: dict[str, Any]) -> datetime:
    """The timestamp of a log entry as an aware datetime."""
    return parse_timestamp("log entry timestamp", entry["timestamp"])


class LogsPager(_Pager):
    """Walks the pages of one :func:`logs_call` back in time, used as :class:`ListPager` is; each page's
    ``before`` must be earlier than the last (a server ignoring it would be read for ever)."""

    def take(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """The entries of the ``page`` just read to hand out (newest first); sets up the next request."""
        assert self.call is not None and self.call.params is not None, "take() called after the last page"
        self.pages, params = self.pages + 1, self.call.params
        entries = page.get("results") or []
        times = []
        for index, entry in enumerate(entries):
            try:
                times.append(entry_time(entry))
            except (KeyError, TypeError, ValueError) as error:
                kind = type(error).__name__
                why = f"unexpected answer: results item {index} has no valid timestamp ({kind})"
                raise self._error(self.call, why, PostHogUnexpectedResponseError) from None
        limit, previous = params["limit"], params.get("before")
        if len(entries) < limit:
            self.call = None
            return entries
        oldest = min(times)
        newer = [entry for entry, moment in zip(entries, times, strict=True) if moment > oldest]
        if not newer:
            # A whole page shares one microsecond: the rest of that moment cannot be reached
            # through this API, so hand the page out and move on rather than loop forever.
            log.warning("More than %d log entries share timestamp %s; some may be skipped.", limit, oldest)
        before = oldest + timedelta(microseconds=1) if newer else oldest
        stop = f"stopped reading after {self.pages:,} pages"
        if previous is not None and before >= parse_timestamp("before", previous):
            raise self._error(
                self.call,
                f"{stop}: the server ignored before={previous} (the page repeats entries at or after it)",
            )
        if self.pages >= self.max_pages:
            raise self._error(self.call, f"{stop}: more than max_pages={self.max_pages:,}")
        self.call = replace(self.call, params={**params, "before": format_timestamp(before)})
        return newer or entries
