"""
What the sync and the async PostHog hook share: settings, URLs, headers, decoding and errors.

The requests themselves are described in :mod:`airflow_provider_phenv.hooks._calls`; the hooks in
:mod:`airflow_provider_phenv.hooks.posthog` add the transport (``requests`` or ``httpx``) and one
short method per endpoint.
"""

from __future__ import annotations

import functools
import json
import ssl
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseHook

from airflow_provider_phenv import __version__
from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogConnectionConfigError,
    PostHogDeadlineError,
    PostHogRateLimitError,
    PostHogRedirectError,
    PostHogResponseTooLargeError,
    PostHogServerError,
    PostHogUnexpectedResponseError,
    PostHogWriteOutcomeUnknownError,
    error_class_for_status,
    parse_error_body,
)
from airflow_provider_phenv.hooks._calls import ApiCall
from airflow_provider_phenv.hooks._retry import AMBIGUOUS_STATUSES, parse_retry_after, retry_kwargs
from airflow_provider_phenv.hooks._settings import (
    PostHogSettings,
    check_hook_option,
    origin_of,
    settings_from_connection,
    without_userinfo,
)
from airflow_provider_phenv.hooks._transport import ACCEPT_ENCODING, BodyTooLarge, ResponseProblem
from airflow_provider_phenv.validation import check_project_id

USER_AGENT = f"airflow-provider-phenv/{__version__}"
#: Redirects followed within one attempt (307/308 to the same origin only).
MAX_REDIRECTS = 5


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
        if not call.global_path:
            call = replace(call, project_id=self._project(settings, call.project_id))
        if call.next_url is not None:
            return call, self._same_origin_url(settings, call.next_url)
        if call.global_path:
            return call, f"{settings.base_url}/api/{call.path}"
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
        if status == 403 and "restriction" in detail:
            # PostHog's DashboardSerializer.update: only the owner and project admins (docs §7.2).
            return (
                "Only the dashboard's creator and project admins may change its restriction_level: use "
                f"a personal API key of one of them in connection {settings.conn_id!r}, or leave "
                "restriction_level unchanged."
            )
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
