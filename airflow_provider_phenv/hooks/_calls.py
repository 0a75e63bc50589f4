"""
Request descriptions: what to ask PostHog, independent of any HTTP client or settings.

A request is an :class:`ApiCall`. Its project is resolved from the connection only when a hook
sends it, so one small builder (``export_call``, ``runs_call``, ``dashboard_call``...) serves both
hooks. :class:`ListPager` follows a listing's ``next`` links within the page limit, refusing a link
back to a page already read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_phenv.errors import PostHogPaginationError
from airflow_provider_phenv.hooks._shapes import Shape, json_object, page
from airflow_provider_phenv.validation import (
    RUN_STATUSES,
    check_choice,
    check_filter_names,
    check_positive_int,
    check_uuid,
    format_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; typing_extensions comes with Airflow and is needed only by mypy.
    from typing_extensions import Unpack


#: What a call expects when it names nothing else: a JSON object.
OBJECT = json_object()


@dataclass(frozen=True, kw_only=True)
class ApiCall:
    """
    One request to PostHog, described independently of the HTTP client that sends it.

    Build it after validating every id, so bad input fails before anything is sent.

    :param path: path below ``/api/<prefix>/<project_id>/``, or below ``/api/`` with ``global_path``.
    :param resource: what the call is about, for error messages (``batch export <id>``); the
        project is added by :attr:`subject`.
    :param method: HTTP method.
    :param params: query parameters; a list value is sent as a repeated parameter.
    :param body: JSON body, or ``None`` for none.
    :param repeatable: whether sending it twice is harmless; creates are not.
    :param project_id: project/environment id; ``None`` means the connection's, resolved by the hook.
    :param next_url: a page's ``next`` link, sent instead of ``path`` and ``params``.
    :param retry_server_errors: whether a 5xx may be worth another try; not for endpoints whose
        500 is deterministic (a destination test PostHog cannot run).
    :param global_path: the path is below ``/api/`` itself (organizations, personal API keys):
        no project is resolved or named.
    :param expect: the shape a successful answer must have (see :mod:`.hooks._shapes`); an
        answer of another shape raises :class:`~airflow_provider_phenv.errors.PostHogUnexpectedResponseError`.
    """

    path: str
    resource: str
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

    def next_page(self, page: dict[str, Any]) -> ApiCall | None:
        """The call for the page after ``page`` of a paginated list, or ``None`` after the last one."""
        link = page.get("next")
        # The link already carries every query parameter of the first request.
        return replace(self, params=None, next_url=link) if link else None


def page_key(url: str, params: dict[str, Any] | None) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Which page a URL and its parameters name, whatever the parameter order or trailing slash."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in (params or {}).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            query.append((name, str(item)))
    return parts.path.rstrip("/"), tuple(sorted(query))


class ListPager:
    """
    Follows the ``next`` links of a paginated list, and refuses a list that never ends: a link back
    to a page already read, or more than ``max_pages`` pages.

    Use it as: ``while pager.call is not None: results = pager.take(send(pager.call))``; each page
    is checked to be ``{"results": [objects], "next": ...}``; a call that names its own ``expect``
    has each result checked by it.

    :param call: the first page's request.
    :param max_pages: most pages read.
    :param url_of: the URL a call is sent to (the hook's ``_prepare``), to recognise a page.
    """

    def __init__(self, call: ApiCall, max_pages: int, url_of: Callable[[ApiCall], str]) -> None:
        self.call: ApiCall | None = replace(call, expect=page(None if call.expect is OBJECT else call.expect))
        self.max_pages = max_pages
        self.pages = 0
        self._url_of = url_of
        self._seen = {self._key(self.call)}

    def _key(self, call: ApiCall) -> tuple[str, tuple[tuple[str, str], ...]]:
        return page_key(self._url_of(call), call.params)

    def take(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The results of ``body``, the page just read; sets :attr:`call` to the next page or None."""
        assert self.call is not None, "take() called after the last page"
        self.pages += 1
        link = body.get("next")
        if not link:
            self.call = None
            return body["results"]
        following = replace(self.call, params=None, next_url=link)
        key = self._key(following)
        if key in self._seen:
            raise self._error(following, "its next link points back at a page already read")
        if self.pages >= self.max_pages:
            raise self._error(following, f"it has more than max_pages={self.max_pages:,} pages")
        self._seen.add(key)
        self.call = following
        return body["results"]

    def _error(self, following: ApiCall, why: str) -> PostHogPaginationError:
        return PostHogPaginationError(
            status_code=None,
            method=following.method,
            path=urlsplit(self._url_of(following)).path,
            resource=following.subject,
            detail=f"stopped reading the list after {self.pages:,} pages: {why}",
        )


def export_call(batch_export_id: str, tail: str = "", **kwargs: Any) -> ApiCall:
    """
    A call on one batch export, or below it (``tail`` such as ``"logs/"``).

    :param batch_export_id: the export's UUID, checked here.
    :param kwargs: the other :class:`ApiCall` fields.
    """
    export_id = check_uuid("batch_export_id", batch_export_id)
    return ApiCall(path=f"batch_exports/{export_id}/{tail}", resource=f"batch export {export_id}", **kwargs)


# PostHog looks runs up among those created in the last 7 days unless ``after`` reaches further,
# by id too (``safely_get_queryset``, docs/posthog-api.md §6.9): any run is created after this.
_ANY_RUN_AFTER = "2000-01-01T00:00:00Z"


def run_call(batch_export_id: str, run_id: str, action: str = "", **kwargs: Any) -> ApiCall:
    """
    A call on one run of a batch export (``action`` such as ``"retry/"``), reaching runs of any age.

    :param batch_export_id: the export's UUID, checked here.
    :param run_id: the run's UUID, checked here.
    :param kwargs: the other :class:`ApiCall` fields.
    """
    tail = f"runs/{check_uuid('run_id', run_id)}/{action}"
    return export_call(batch_export_id, tail, params={"after": _ANY_RUN_AFTER}, **kwargs)


def exports_list_call(*, project_id: int | str | None = None, page_size: int = 100) -> ApiCall:
    """
    The first page of the project's batch exports (limit/offset pages; PostHog sets no maximum).

    :param project_id: project/environment id; ``None`` means the connection's.
    :param page_size: exports per page.
    """
    limit = check_positive_int("page_size", page_size)
    return ApiCall(
        path="batch_exports/", resource="batch exports", params={"limit": limit}, project_id=project_id
    )


class RunFilters(TypedDict, total=False):
    """
    The filters of a batch export runs list, passed as keyword arguments; each is optional.

    :param status: only runs in this status, or in any of several, from
        :data:`~airflow_provider_phenv.validation.RUN_STATUSES` (``Failed``, ``Running``...).
    :param after: only runs created at or after this moment; it must carry a timezone. PostHog's
        default is 7 days ago.
    :param before: only runs created at or before this moment; it must carry a timezone.
    """

    status: str | Sequence[str] | None
    after: datetime | str | None
    before: datetime | str | None


def runs_call(
    batch_export_id: str, *, project_id: int | str | None = None, **filters: Unpack[RunFilters]
) -> ApiCall:
    """
    The first page of a batch export's runs, newest first (PostHog pages hold 100 runs).

    :param batch_export_id: the export's UUID.
    :param project_id: project/environment id; ``None`` means the connection's.
    :param filters: see :class:`RunFilters`.
    """
    check_filter_names("run", filters, RunFilters.__annotations__)
    params: dict[str, Any] = {}
    status = filters.get("status")
    if status is not None:
        # An empty list is checked as one value, so it is refused rather than meaning "any status".
        several = isinstance(status, (list, tuple, set, frozenset)) and len(status) > 0
        statuses = status if several else [status]
        # A list becomes repeated ``status=`` parameters, which PostHog reads as "any of these".
        params["status"] = [check_choice("status", item, RUN_STATUSES) for item in statuses]
    for bound in ("after", "before"):
        moment = filters.get(bound)
        if moment is not None:
            params[bound] = format_timestamp(parse_timestamp(bound, moment, naive_ok=False))
    return export_call(batch_export_id, "runs/", params=params, project_id=project_id)


def dashboard_call(dashboard_id: int | str, tail: str = "", **kwargs: Any) -> ApiCall:
    """
    A call on one dashboard, or below it (``tail`` such as ``"collaborators/"``).

    :param dashboard_id: the dashboard's integer id, checked here.
    :param kwargs: the other :class:`ApiCall` fields.
    """
    dashboard = check_positive_int("dashboard_id", dashboard_id)
    return ApiCall(path=f"dashboards/{dashboard}/{tail}", resource=f"dashboard {dashboard}", **kwargs)
