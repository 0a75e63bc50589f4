"""
What the sync and the async PostHog hook share: request descriptions, URLs, headers and errors.

A request is an :class:`ApiCall`, described without any HTTP client and without settings: its
project is resolved from the connection only when a hook sends it, so one small builder serves both
hooks. The hooks in :mod:`airflow_provider_phenv.hooks.posthog` add the transport (``requests`` or
``httpx``) and one short method per endpoint.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseHook

from airflow_provider_phenv import __version__
from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogConnectionConfigError,
    PostHogDeadlineError,
    PostHogPaginationError,
    PostHogRateLimitError,
    PostHogRedirectError,
    PostHogResponseTooLargeError,
    PostHogServerError,
    PostHogUnexpectedResponseError,
    PostHogWriteOutcomeUnknownError,
    error_class_for_status,
    parse_error_body,
)
from airflow_provider_phenv.hooks._retry import AMBIGUOUS_STATUSES, parse_retry_after, retry_kwargs
from airflow_provider_phenv.hooks._settings import (
    PostHogSettings,
    check_hook_option,
    origin_of,
    settings_from_connection,
    without_userinfo,
)
from airflow_provider_phenv.hooks._shapes import Shape, json_object, page
from airflow_provider_phenv.hooks._transport import ACCEPT_ENCODING, BodyTooLarge, ResponseProblem
from airflow_provider_phenv.validation import (
    RUN_STATUSES,
    check_choice,
    check_filter_names,
    check_positive_int,
    check_project_id,
    check_uuid,
    format_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; typing_extensions comes with Airflow and is needed only by mypy.
    from typing_extensions import Unpack

USER_AGENT = f"airflow-provider-phenv/{__version__}"
#: Redirects followed within one attempt (307/308 to the same origin only).
MAX_REDIRECTS = 5
#: What a call expects when it names nothing else: a JSON object.
OBJECT = json_object()


@dataclass(frozen=True, kw_only=True)
class ApiCall:
    """
    One request to PostHog, described independently of the HTTP client that sends it.

    Build it after validating every id, so bad input fails before anything is sent.

    :param path: path below ``/api/<prefix>/<project_id>/``.
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
    expect: Shape = OBJECT

    @property
    def subject(self) -> str:
        """What the call is about, with its project: ``batch export <id> in project 1``."""
        return f"{self.resource} in project {self.project_id}"

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
    is checked to be ``{"results": [objects], "next": ...}`` by the call's ``expect``.

    :param call: the first page's request.
    :param max_pages: most pages read.
    :param url_of: the URL a call is sent to (the hook's ``_prepare``), to recognise a page.
    """

    def __init__(self, call: ApiCall, max_pages: int, url_of: Callable[[ApiCall], str]) -> None:
        self.call: ApiCall | None = replace(call, expect=page())
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


class PostHogHookBase(BaseHook):
    """What the sync and async hooks share: connection settings, URLs and response handling."""

    conn_name_attr = "posthog_conn_id"
    default_conn_name = "posthog_default"
    conn_type = "posthog"
    hook_name = "PostHog"

    def __init__(
        self,
        posthog_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        max_body_bytes: int | None = None,
        request_deadline: float | None = None,
        max_pages: int | None = None,
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: seconds to wait for PostHog to answer a request (default: the connection's
            extra ``timeout``, else 30). Connecting waits at most 10 seconds.
        :param max_retries: retries after a failed attempt (default: the connection's extra
            ``max_retries``, else 5).
        :param backoff: first wait in seconds between retries when PostHog sent no ``Retry-After``.
        :param backoff_max: longest wait in seconds between retries.
        :param max_body_bytes: largest response body read, decoded (default: the connection's extra
            ``max_body_bytes``, else 32 MiB).
        :param request_deadline: seconds one HTTP attempt may take in all, body included (default:
            the connection's extra ``request_deadline``, else twice the timeout).
        :param max_pages: most pages read for one listing (default: the connection's extra
            ``max_pages``, else 10,000).
        """
        super().__init__()
        options = {
            "timeout": timeout,
            "max_retries": max_retries,
            "backoff": backoff,
            "backoff_max": backoff_max,
            "max_body_bytes": max_body_bytes,
            "request_deadline": request_deadline,
            "max_pages": max_pages,
        }
        checked = {name: check_hook_option(name, value) for name, value in options.items()}
        self.posthog_conn_id = posthog_conn_id
        self._timeout = checked["timeout"]
        self._max_retries = checked["max_retries"]
        self._backoff = checked["backoff"]
        self._backoff_max = checked["backoff_max"]
        self._limits = {name: checked[name] for name in ("max_body_bytes", "request_deadline", "max_pages")}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """
        The connection form's relabelled and hidden fields, for Airflow < 3.2 with the FAB provider.

        Airflow 3.2+ reads the same metadata from ``get_provider_info()`` and never calls this.
        """
        from airflow_provider_phenv import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(posthog_conn_id={self.posthog_conn_id!r})"

    def _settings_from(self, conn: Any, extra: dict[str, Any]) -> PostHogSettings:
        return settings_from_connection(
            conn, extra, timeout=self._timeout, max_retries=self._max_retries, **self._limits
        )

    def _retry_kwargs(self, settings: PostHogSettings) -> dict[str, Any]:
        return retry_kwargs(
            max_retries=settings.max_retries,
            backoff=self._backoff,
            backoff_max=self._backoff_max,
            logger=self.log,
        )

    @staticmethod
    def _project(settings: PostHogSettings, project_id: int | str | None) -> str:
        if project_id not in (None, ""):
            return check_project_id(project_id)
        if settings.project_id is None:
            raise PostHogConnectionConfigError(
                f"No project_id given, and connection {settings.conn_id!r} has no extra 'project_id'."
            )
        return settings.project_id

    def _prepare(self, settings: PostHogSettings, call: ApiCall) -> tuple[ApiCall, str]:
        """
        The call with its project resolved (still before any request), and the URL to send it to.

        Resolving here rather than in each endpoint is what lets one call description serve both
        hooks, although only the async hook has to await its settings.
        """
        call = replace(call, project_id=self._project(settings, call.project_id))
        if call.next_url is not None:
            return call, self._same_origin_url(settings, call.next_url)
        return call, f"{settings.base_url}/api/{settings.api_prefix}/{call.project_id}/{call.path}"

    @staticmethod
    def _same_origin_url(settings: PostHogSettings, url: str) -> str:
        """
        A pagination ``next`` link, re-pointed at the configured host.

        PostHog builds ``next`` from the Host header it saw; behind a proxy that may be an internal
        name. Keeping the configured scheme and host also means the key never goes anywhere else.
        """
        base = urlsplit(settings.base_url)
        link = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))

    def _error(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int,
        headers: Any,
        body: bytes,
    ) -> PostHogAPIError:
        envelope = parse_error_body(body, headers.get("content-type"))
        # Whatever answered may echo the request (the key included): never let it into a message.
        envelope = {key: None if value is None else settings.scrub(value) for key, value in envelope.items()}
        if not envelope.get("detail"):
            envelope["detail"] = "empty response body"
        kwargs: dict[str, Any] = {
            "status_code": status,
            "method": call.method,
            "path": path,
            "resource": call.subject,
            "hint": self._hint(settings, call, status, envelope),
            **envelope,
        }
        error_class = error_class_for_status(status)
        if error_class is PostHogServerError and not call.retry_server_errors:
            error_class = PostHogAPIError  # not a PostHogServerError: never retried
        if error_class is PostHogRateLimitError:
            kwargs["retry_after"] = parse_retry_after(headers.get("retry-after"))
        error = error_class(**kwargs)
        if not call.repeatable and status in AMBIGUOUS_STATUSES:
            return self._outcome_unknown(call, path, status, str(error))
        return error

    @staticmethod
    def _hint(settings: PostHogSettings, call: ApiCall, status: int, envelope: dict[str, Any]) -> str | None:
        detail = (envelope.get("detail") or "").lower()
        user = call.body.get("user_uuid") if isinstance(call.body, dict) else None
        if status == 401:
            return (
                f"{settings.host_label} rejected the personal API key of connection {settings.conn_id!r}: "
                "check the key, and that the host is your PostHog region (https://us.posthog.com or "
                "https://eu.posthog.com) or your self-hosted URL."
            )
        if status == 403 and "'internal'" in detail:
            # Older builds gave the destination test endpoints an INTERNAL scope no key can hold.
            return (
                "This PostHog build does not let personal API keys run destination tests (they need "
                "its INTERNAL scope, which no key can have); upgrade PostHog or skip the test "
                "(leave PostHogTestBatchExportOperator out of the DAG)."
            )
        if status == 403 and "does not support personal api key access" in detail:
            if call.path.endswith("logs/"):
                return (
                    "This PostHog build does not let personal API keys read batch export logs (its "
                    "logs endpoint had no key scope); upgrade PostHog, or wait on the export's runs "
                    "instead of its logs."
                )
            return "This PostHog build does not accept personal API keys on this endpoint; upgrade PostHog."
        if status == 403 and "scope" in detail:
            return "Add that scope to the personal API key in PostHog (Settings > Personal API keys)."
        if status == 403 and "project" in detail:
            return (
                f"Check project_id {call.project_id} and that the key of connection "
                f"{settings.conn_id!r} may use that project."
            )
        if status == 400 and "lowest restriction level" in detail:
            return (
                "Collaborators need restriction_level=37 on the dashboard and PostHog's paid "
                "access-control feature in the organization (without it every dashboard acts as 21)."
            )
        if status == 400 and "no access to the project" in detail:
            return (
                f"User {user} is not a member of project {call.project_id}: invite them in PostHog "
                "(Settings > Members), or check the UUID."
            )
        if status == 400 and "user does not exist" in detail:
            return f"No active PostHog user has UUID {user}: check it in PostHog (Settings > Members)."
        if status == 404:
            return _not_found_hint(settings, call, detail)
        return None

    @staticmethod
    def _outcome_unknown(
        call: ApiCall, path: str, status: int | None, cause: str
    ) -> PostHogWriteOutcomeUnknownError:
        return PostHogWriteOutcomeUnknownError(
            status_code=status,
            method=call.method,
            path=path,
            resource=call.subject,
            detail=f"the request may or may not have been carried out ({cause})",
            hint="It was not sent again, to avoid a duplicate; look up whether it exists before retrying.",
        )

    @staticmethod
    def _path(settings: PostHogSettings, url: str) -> str:
        """The path of a URL for messages: no host, no query, never the key."""
        return settings.scrub(urlsplit(url).path)

    def _unexpected(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int | None,
        detail: str,
        error_class: type[PostHogUnexpectedResponseError] = PostHogUnexpectedResponseError,
        **kwargs: Any,
    ) -> PostHogAPIError:
        """
        An answer that cannot be trusted. For a call that is not safe to repeat (a create) the
        server may have carried it out all the same, so the outcome is unknown and callers look up.
        """
        error = error_class(
            status_code=status,
            method=call.method,
            path=path,
            resource=call.subject,
            detail=settings.scrub(detail),
            **kwargs,
        )
        if not call.repeatable:
            return self._outcome_unknown(call, path, status, str(error))
        return error

    def _problem(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int | None,
        problem: ResponseProblem,
    ) -> PostHogAPIError:
        """A body that could not be read within the limits."""
        if isinstance(problem, BodyTooLarge):
            return self._unexpected(settings, call, path, status, str(problem), PostHogResponseTooLargeError)
        return self._unexpected(settings, call, path, status, str(problem))

    def _deadline_error(self, settings: PostHogSettings, call: ApiCall, path: str) -> PostHogAPIError:
        cause = (
            f"no complete answer within request_deadline={settings.request_deadline:g} s "
            f"(connect, redirects, headers and body together)"
        )
        if not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogDeadlineError(
            request_sent=True, method=call.method, path=path, resource=call.subject, detail=cause
        )

    def _redirect_target(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        url: str,
        status: int,
        headers: Any,
        hops: int,
    ) -> str:
        """
        Where a 3xx answer leads, if it is followed: 307 or 308 (method and body kept) to the
        configured origin, at most :data:`MAX_REDIRECTS` times per attempt. Anything else is an
        error naming the status and the target, never a success: the key goes nowhere else, and
        a 301/302/303 would turn a POST into a GET.
        """
        if status == 304:
            raise self._unexpected(
                settings,
                call,
                path,
                status,
                "HTTP 304 Not Modified answers a conditional request, and none was sent",
            )
        location = headers.get("location")
        target = urljoin(url, location.strip()) if location else None
        shown = settings.scrub(without_userinfo(target))[:200] if target else "no Location header"
        why = None
        if status not in (307, 308):
            why = f"HTTP {status} redirects are not followed (only 307/308 to {settings.host_label})"
        elif target is None:
            why = "the redirect has no Location header"
        elif origin_of(target) != settings.origin:
            why = f"the redirect leaves {settings.host_label}, and the API key is sent nowhere else"
        elif hops >= MAX_REDIRECTS:
            why = f"more than {MAX_REDIRECTS} redirects"
        if why is None:
            assert target is not None
            return target
        return self._raise_redirect(settings, call, path, status, shown, why)

    def _raise_redirect(
        self, settings: PostHogSettings, call: ApiCall, path: str, status: int, shown: str, why: str
    ) -> Any:
        raise self._unexpected(
            settings,
            call,
            path,
            status,
            f"redirect to {shown} not followed: {why}",
            PostHogRedirectError,
            location=shown,
        )

    def _result(
        self, settings: PostHogSettings, call: ApiCall, path: str, status: int, headers: Any, body: bytes
    ) -> Any:
        """The parsed answer of a final (non-redirect) response, or its error."""
        if status >= 400:
            raise self._error(settings, call, path, status, headers, body)
        if not 200 <= status < 300:
            raise self._unexpected(settings, call, path, status, f"unexpected HTTP status {status}")
        return self._decode(settings, call, path, status, body)

    def _decode(self, settings: PostHogSettings, call: ApiCall, path: str, status: int, body: bytes) -> Any:
        """The JSON of a 2xx body, checked against the call's expected shape."""
        if not body.strip():
            value: Any = None
            problem: str | None = (call.expect(value) or "").replace("got null", "got an empty body")
        else:
            try:
                value = json.loads(body)
            except (ValueError, RecursionError) as error:
                detail = parse_error_body(body, None).get("detail") or "response is not JSON"
                if isinstance(error, RecursionError):
                    detail = "the JSON is nested too deeply to read"
                elif not detail.startswith("non-JSON"):
                    detail = f"response is not JSON: {detail}"
                raise self._unexpected(settings, call, path, status, detail) from None
            problem = call.expect(value)
        if problem:
            raise self._unexpected(settings, call, path, status, f"unexpected answer: {problem}")
        return value

    @staticmethod
    def _headers(settings: PostHogSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": USER_AGENT,
        }


def _not_found_hint(settings: PostHogSettings, call: ApiCall, detail: str) -> str:
    """What was not found, and where to look it up."""
    project = call.project_id
    owner = f"and that project_id {project} is the project that owns it"
    if "project not found" in detail:
        return (
            f"Project {project} does not exist on {settings.host_label}: check the connection's "
            "project_id (the number after /project/ in PostHog's URLs) and that the host is the "
            "region (US or EU) that holds it."
        )
    if call.resource.startswith("batch export "):
        return (
            f"PostHog has no {call.resource} in project {project}: check the id in PostHog under "
            f"Data pipelines > Destinations (it is in the export's URL), {owner}."
        )
    if call.resource.startswith("dashboard "):
        return (
            f"PostHog has no {call.resource} in project {project}: check the id in PostHog under "
            f"Dashboards (the number in the dashboard's URL), {owner}."
        )
    return f"PostHog has no {call.resource} in project {project}: check the id, {owner}."


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS context of every async hook in this process."""
    # httpx loads the CA bundle for every client it builds (about 20 ms of CPU and 0.8 MB each, even
    # for http:// URLs); a triggerer running a thousand triggers must pay that once, not per trigger.
    return httpx.create_ssl_context()


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for a one-line error detail."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
