"""
Hooks for PostHog's environments API: the only place that knows URLs, auth, retries and paging.

:class:`PostHogHook` is the synchronous hook used by operators and poke/reschedule sensors.
:class:`PostHogAsyncHook` serves triggers: the same requests, errors and retry policy over an
async HTTP client, reading the connection without blocking the triggerer's event loop.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseHook
from tenacity import AsyncRetrying, Retrying

from airflow_provider_phenv import __version__
from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogAuthError,
    PostHogBadRequestError,
    PostHogConnectionConfigError,
    PostHogError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogWriteOutcomeUnknownError,
    error_class_for_status,
    parse_error_body,
)
from airflow_provider_phenv.hooks._logs import LogsPager, logs_query
from airflow_provider_phenv.hooks._retry import AMBIGUOUS_STATUSES, parse_retry_after, retry_kwargs
from airflow_provider_phenv.hooks._settings import PostHogSettings, settings_from_connection
from airflow_provider_phenv.validation import (
    COLLABORATOR_LEVELS,
    MAX_LOGS_LIMIT,
    RESTRICTION_LEVELS,
    check_bool,
    check_choice,
    check_destination_type,
    check_non_empty_str,
    check_positive_int,
    check_project_id,
    check_uuid,
)

if TYPE_CHECKING:
    # requests costs ~30 ms to import; DAG files that only build operators never need it.
    import requests

__all__ = [
    "PostHogAPIError",
    "PostHogAsyncHook",
    "PostHogAuthError",
    "PostHogBadRequestError",
    "PostHogConnectionConfigError",
    "PostHogError",
    "PostHogHook",
    "PostHogNotFoundError",
    "PostHogRateLimitError",
    "PostHogServerError",
    "PostHogTransportError",
    "PostHogWriteOutcomeUnknownError",
]

USER_AGENT = f"airflow-provider-phenv/{__version__}"
DASHBOARDS_PAGE_SIZE = 500
_NO_BODY = object()


@dataclass(frozen=True)
class ApiCall:
    """
    One request to PostHog, described independently of the HTTP client that sends it.

    :param method: HTTP method.
    :param path: path below ``/api/<prefix>/<project_id>/``, or absolute (starting with ``/``).
    :param resource: what the call is about, for error messages (``batch export <id>``).
    :param repeatable: whether sending it twice is harmless; creates are not.
    """

    method: str
    path: str
    resource: str
    params: dict[str, Any] | None = None
    body: Any = _NO_BODY
    repeatable: bool = True
    project_id: str | None = field(default=None)


class _PostHogHookBase(BaseHook):
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
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: seconds to wait for PostHog to answer a request (default: the connection's
            extra ``timeout``, else 30). Connecting waits at most 10 seconds.
        :param max_retries: retries after a failed attempt (default: the connection's extra
            ``max_retries``, else 5).
        :param backoff: first wait in seconds between retries when PostHog sent no ``Retry-After``.
        :param backoff_max: longest wait in seconds between retries.
        """
        super().__init__()
        if max_retries is not None and (isinstance(max_retries, bool) or int(max_retries) < 0):
            raise ValueError(f"Invalid max_retries {max_retries!r}: expected a non-negative integer.")
        if timeout is not None and float(timeout) <= 0:
            raise ValueError(f"Invalid timeout {timeout!r}: expected a positive number of seconds.")
        self.posthog_conn_id = posthog_conn_id
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._backoff_max = backoff_max

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
        return settings_from_connection(conn, extra, timeout=self._timeout, max_retries=self._max_retries)

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

    @staticmethod
    def _url(settings: PostHogSettings, call: ApiCall) -> str:
        if call.path.startswith("/"):
            return settings.base_url + call.path
        return f"{settings.base_url}/api/{settings.api_prefix}/{call.project_id}/{call.path}"

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
        if not envelope.get("detail"):
            envelope["detail"] = "empty response body"
        kwargs: dict[str, Any] = {
            "status_code": status,
            "method": call.method,
            "path": path,
            "resource": call.resource,
            "hint": self._hint(settings, call, status, envelope),
            **envelope,
        }
        error_class = error_class_for_status(status)
        if error_class is PostHogRateLimitError:
            kwargs["retry_after"] = parse_retry_after(headers.get("retry-after"))
        error = error_class(**kwargs)
        if not call.repeatable and status in AMBIGUOUS_STATUSES:
            return self._outcome_unknown(call, path, status, str(error))
        return error

    @staticmethod
    def _hint(settings: PostHogSettings, call: ApiCall, status: int, envelope: dict[str, Any]) -> str | None:
        detail = (envelope.get("detail") or "").lower()
        if status == 401:
            return (
                f"{settings.host_label} rejected the personal API key of connection {settings.conn_id!r}: "
                "check the key, and that the host is your PostHog region (https://us.posthog.com or "
                "https://eu.posthog.com) or your self-hosted URL."
            )
        if status == 403 and "scope" in detail:
            return "Add that scope to the personal API key in PostHog (Settings > Personal API keys)."
        if status == 403 and "project" in detail:
            return (
                f"Check project_id {call.project_id} and that the key of connection "
                f"{settings.conn_id!r} may use that project."
            )
        return None

    @staticmethod
    def _outcome_unknown(
        call: ApiCall, path: str, status: int | None, cause: str
    ) -> PostHogWriteOutcomeUnknownError:
        return PostHogWriteOutcomeUnknownError(
            status_code=status,
            method=call.method,
            path=path,
            resource=call.resource,
            detail=f"the request may or may not have been carried out ({cause})",
            hint="It was not sent again, to avoid a duplicate; look up whether it exists before retrying.",
        )

    @staticmethod
    def _decode(call: ApiCall, path: str, status: int, body: bytes) -> Any:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise PostHogAPIError(
                status_code=status,
                method=call.method,
                path=path,
                resource=call.resource,
                detail=parse_error_body(body, None).get("detail", "response is not JSON"),
            ) from None

    @staticmethod
    def _headers(settings: PostHogSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    # -- request descriptions shared by both hooks -------------------------------------------------

    @staticmethod
    def _batch_export_call(
        settings: PostHogSettings,
        project_id: int | str | None,
        batch_export_id: str,
        tail: str = "",
        **kwargs: Any,
    ) -> ApiCall:
        export_id = check_uuid("batch_export_id", batch_export_id)
        project = _PostHogHookBase._project(settings, project_id)
        kwargs.setdefault("method", "GET")
        return ApiCall(
            path=f"batch_exports/{export_id}/{tail}",
            resource=f"batch export {export_id} in project {project}",
            project_id=project,
            **kwargs,
        )

    def _logs_call(
        self,
        settings: PostHogSettings,
        batch_export_id: str,
        project_id: int | str | None,
        params: dict[str, Any],
    ) -> ApiCall:
        return self._batch_export_call(settings, project_id, batch_export_id, "logs/", params=params)


class PostHogHook(_PostHogHookBase):
    """
    Talks to PostHog's environments API over one keep-alive HTTP session.

    Every method validates its arguments before sending anything and returns parsed JSON. Failed
    requests raise :class:`~airflow_provider_phenv.errors.PostHogAPIError` (or a subclass);
    throttling, server errors and dropped connections are retried with backoff, honouring
    PostHog's ``Retry-After``.

    :param posthog_conn_id: Airflow connection id of type ``posthog``.
    :param timeout: seconds to wait for an answer (default: connection extra ``timeout``, else 30).
    :param max_retries: retries after a failed attempt (default: connection extra, else 5).
    """

    @cached_property
    def settings(self) -> PostHogSettings:
        """The connection, read once per hook."""
        conn = self.get_connection(self.posthog_conn_id)
        return self._settings_from(conn, conn.extra_dejson)

    @cached_property
    def session(self) -> requests.Session:
        """One session per hook, so all requests of a task reuse one TCP connection."""
        import requests

        session = requests.Session()
        session.headers.update(self._headers(self.settings))
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def __enter__(self) -> PostHogHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def _call(self, call: ApiCall, url: str | None = None) -> Any:
        settings = self.settings
        url = url or self._url(settings, call)
        for attempt in Retrying(**self._retry_kwargs(settings)):
            with attempt:
                return self._send_once(settings, call, url)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        import requests

        path = urlsplit(url).path
        self.log.debug("PostHog request %s %s", call.method, path)
        try:
            response = self.session.request(
                call.method,
                url,
                params=call.params,
                json=None if call.body is _NO_BODY else call.body,
                timeout=(min(10.0, settings.timeout), settings.timeout),
            )
        except requests.RequestException as error:
            raise self._transport_error(call, path, error) from None
        if response.status_code >= 400:
            raise self._error(settings, call, path, response.status_code, response.headers, response.content)
        return self._decode(call, path, response.status_code, response.content)

    def _transport_error(self, call: ApiCall, path: str, error: requests.RequestException) -> PostHogAPIError:
        import requests
        from urllib3.exceptions import NewConnectionError

        # Only a connection that was never opened proves the request did not reach PostHog: a
        # connect timeout, or urllib3's NewConnectionError (refused, DNS) wrapped in ConnectionError.
        reason = error.args[0] if error.args else None
        refused = isinstance(error, requests.ConnectionError) and isinstance(
            getattr(reason, "reason", reason), NewConnectionError
        )
        sent = not isinstance(error, requests.ConnectTimeout) and not refused
        cause = f"{type(error).__name__}: {_first_line(error)}"
        if sent and not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogTransportError(
            request_sent=sent, method=call.method, path=path, resource=call.resource, detail=cause
        )

    def _paginate(self, call: ApiCall) -> Iterator[dict[str, Any]]:
        """Yield every result of a limit/offset list, following PostHog's ``next`` links."""
        url: str | None = None
        while True:
            page = self._call(call, url)
            yield from page.get("results", [])
            if not page.get("next"):
                return
            url = self._same_origin_url(self.settings, page["next"])
            call = ApiCall(
                method=call.method, path=call.path, resource=call.resource, project_id=call.project_id
            )

    # -- batch exports ---------------------------------------------------------------------------

    def get_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one batch export.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(self._batch_export_call(self.settings, project_id, batch_export_id))

    def pause_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Pause a batch export; pausing a paused export changes nothing. Returns ``{"paused": true}``.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        call = self._batch_export_call(self.settings, project_id, batch_export_id, "pause/", method="POST")
        return self._call(call)

    def unpause_batch_export(
        self, batch_export_id: str, *, backfill: bool = False, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Unpause a batch export. Returns ``{"paused": false}``.

        :param batch_export_id: the batch export's UUID.
        :param backfill: also export the data of the time it was paused.
        :param project_id: project/environment id; default from the connection.
        """
        body = {"backfill": check_bool("backfill", backfill)}
        call = self._batch_export_call(
            self.settings, project_id, batch_export_id, "unpause/", method="POST", body=body
        )
        return self._call(call)

    def get_batch_export_test_steps(
        self, destination_type: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return the test steps PostHog runs for a destination type: ``{"steps": [{name, description}]}``.

        :param destination_type: e.g. ``AwsS3``, ``BigQuery``, ``Snowflake``.
        :param project_id: project/environment id; default from the connection.
        """
        destination = check_destination_type(destination_type, testable=True)
        project = self._project(self.settings, project_id)
        call = ApiCall(
            method="GET",
            path="batch_exports/test/",
            params={"destination": destination},
            resource=f"{destination} destination tests in project {project}",
            project_id=project,
        )
        return self._call(call)

    def run_batch_export_test_step(
        self,
        batch_export_id: str,
        step: int,
        payload: dict[str, Any] | None = None,
        *,
        project_id: int | str | None = None,
    ) -> dict[str, Any]:
        """
        Run one test step against an existing export's destination.

        PostHog validates the whole export payload, so without ``payload`` the export's own
        name, interval and destination are read first and sent.

        :param batch_export_id: the batch export's UUID.
        :param step: index of the step, from :meth:`get_batch_export_test_steps`.
        :param payload: export fields to test with (name, interval, destination...).
        :param project_id: project/environment id; default from the connection.
        :return: ``{"name", "description", "result": {"status", "message"}}``.
        """
        step = check_choice("step", step, range(100))
        if payload is None:
            payload = payload_from_export(self.get_batch_export(batch_export_id, project_id=project_id))
        call = self._batch_export_call(
            self.settings,
            project_id,
            batch_export_id,
            "run_test_step/",
            method="POST",
            body={**payload, "step": step},
        )
        return self._call(call)

    def run_batch_export_test_step_new(
        self, payload: dict[str, Any], step: int, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Run one test step for an export that does not exist yet.

        :param payload: the create payload: ``name``, ``interval``, ``destination`` (type, config,
            integration).
        :param step: index of the step.
        :param project_id: project/environment id; default from the connection.
        """
        check_batch_export_payload(payload)
        step = check_choice("step", step, range(100))
        project = self._project(self.settings, project_id)
        call = ApiCall(
            method="POST",
            path="batch_exports/run_test_step_new/",
            body={**payload, "step": step},
            resource=f"test of a new {payload['destination']['type']} batch export in project {project}",
            project_id=project,
        )
        return self._call(call)

    def get_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
        level: str | list[str] | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        limit: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
    ) -> dict[str, Any]:
        """
        Return one page of a batch export's log entries, newest first.

        :param batch_export_id: the batch export's UUID.
        :param after: only entries strictly after this moment.
        :param before: only entries strictly before this moment.
        :param level: one level (``ERROR``) or several (``["ERROR", "WARNING"]``).
        :param search: case-insensitive substring of the message.
        :param instance_id: only entries of this run.
        :param limit: at most this many entries (1 to 500).
        :param project_id: project/environment id; default from the connection.
        :return: ``{"count", "next", "previous", "results": [entries]}``.
        """
        params = logs_query(
            after=after, before=before, level=level, search=search, instance_id=instance_id, limit=limit
        )
        return self._call(self._logs_call(self.settings, batch_export_id, project_id, params))

    def iter_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
        level: str | list[str] | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        page_size: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every log entry after ``after`` (newest first), reading as many pages as needed.

        Parameters are those of :meth:`get_batch_export_logs`; ``page_size`` is the ``limit`` of
        each request.
        """
        params = logs_query(
            after=after, before=before, level=level, search=search, instance_id=instance_id, limit=page_size
        )
        settings = self.settings
        pager = LogsPager(params)
        while pager.params is not None:
            yield from pager.take(
                self._call(self._logs_call(settings, batch_export_id, project_id, pager.params))
            )

    # -- dashboards ------------------------------------------------------------------------------

    def list_dashboards(
        self,
        *,
        search: str | None = None,
        project_id: int | str | None = None,
        page_size: int = DASHBOARDS_PAGE_SIZE,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """
        Return every dashboard of the project (pinned first, then by name), across all pages.

        :param search: PostHog's dashboard search (name and description).
        :param project_id: project/environment id; default from the connection.
        :param page_size: dashboards per request.
        :param filters: other PostHog list filters, e.g. ``tags`` or ``creation_mode``.
        """
        params: dict[str, Any] = {"limit": check_positive_int("page_size", page_size), **filters}
        if search is not None:
            params["search"] = check_non_empty_str("search", search, max_length=200)
        project = self._project(self.settings, project_id)
        call = ApiCall(
            method="GET",
            path="dashboards/",
            params=params,
            resource=f"dashboards of project {project}",
            project_id=project,
        )
        return list(self._paginate(call))

    def get_dashboard(
        self, dashboard_id: int | str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one dashboard.

        :param dashboard_id: the dashboard's integer id.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(self._dashboard_call(project_id, dashboard_id))

    def create_dashboard(
        self,
        *,
        name: str,
        description: str | None = None,
        pinned: bool | None = None,
        tags: list[str] | None = None,
        restriction_level: int | None = None,
        use_template: str | None = None,
        use_dashboard: int | None = None,
        project_id: int | str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """
        Create a dashboard. Never re-sent after an ambiguous failure: a lost response raises
        :class:`~airflow_provider_phenv.errors.PostHogWriteOutcomeUnknownError`.

        :param name: the dashboard's name.
        :param description: its description.
        :param pinned: pin it in the dashboards list.
        :param tags: tags (a paid PostHog feature).
        :param restriction_level: 21 (everyone in the project can edit) or 37 (only collaborators).
        :param use_template: create from this template key.
        :param use_dashboard: duplicate this dashboard id.
        :param project_id: project/environment id; default from the connection.
        :param fields: other dashboard fields PostHog accepts (``filters``, ``variables``...).
        """
        body = dashboard_payload(
            name=name,
            description=description,
            pinned=pinned,
            tags=tags,
            restriction_level=restriction_level,
            use_template=use_template,
            use_dashboard=use_dashboard,
            **fields,
        )
        project = self._project(self.settings, project_id)
        call = ApiCall(
            method="POST",
            path="dashboards/",
            body=body,
            repeatable=False,
            resource=f"dashboard {name!r} in project {project}",
            project_id=project,
        )
        return self._call(call)

    def list_dashboard_collaborators(
        self, dashboard_id: int | str, *, project_id: int | str | None = None
    ) -> list[dict[str, Any]]:
        """
        Return the collaborators of a dashboard (PostHog sends them all at once, unpaginated).

        :param dashboard_id: the dashboard's integer id.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(self._dashboard_call(project_id, dashboard_id, "collaborators/"))

    def add_dashboard_collaborator(
        self,
        dashboard_id: int | str,
        user_uuid: str,
        level: int = 37,
        *,
        project_id: int | str | None = None,
    ) -> dict[str, Any]:
        """
        Give a user edit access to a restricted dashboard.

        :param dashboard_id: the dashboard's integer id.
        :param user_uuid: the user's UUID.
        :param level: 37 (can edit); PostHog accepts no other level for now.
        :param project_id: project/environment id; default from the connection.
        """
        body = {
            "user_uuid": check_uuid("user_uuid", user_uuid),
            "level": check_choice("level", level, COLLABORATOR_LEVELS),
        }
        call = self._dashboard_call(
            project_id, dashboard_id, "collaborators/", method="POST", body=body, repeatable=False
        )
        return self._call(call)

    def _dashboard_call(
        self, project_id: int | str | None, dashboard_id: int | str, tail: str = "", **kwargs: Any
    ) -> ApiCall:
        dashboard = check_positive_int("dashboard_id", dashboard_id)
        project = self._project(self.settings, project_id)
        kwargs.setdefault("method", "GET")
        return ApiCall(
            path=f"dashboards/{dashboard}/{tail}",
            resource=f"dashboard {dashboard} in project {project}",
            project_id=project,
            **kwargs,
        )

    def ui_url(self, project_id: int | str | None, path: str) -> str | None:
        """
        Link to a page of PostHog's web app on the connection's host, e.g. ``dashboard/12``.

        :param project_id: project id; ``None`` means the connection's. No link for ``@current``,
            which the web app does not understand.
        :param path: page path below ``/project/<id>/``.
        """
        project = self._project(self.settings, project_id)
        if not project.isdigit():
            return None
        return f"{self.settings.base_url}/project/{project}/{path}"

    # -- connection check ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated request; used by Airflow's connection test button."""
        try:
            settings = self.settings
            project = settings.project_id or "@current"
            call = ApiCall(
                method="GET",
                path="batch_exports/",
                params={"limit": 1},
                resource=f"batch exports of project {project}",
                project_id=project,
            )
            self._call(call)
        except Exception as error:
            return False, str(error)
        finally:
            self.close()
        return True, f"Connected to PostHog at {settings.host_label} (project {project})."


class PostHogAsyncHook(_PostHogHookBase):
    """
    The read side of :class:`PostHogHook` for triggers, over ``httpx.AsyncClient``.

    It only sends GETs: a trigger can be restarted and run twice, so it must never write. The
    connection is read with Airflow's async connection API, never blocking the event loop. Use it
    as an async context manager so its connections are closed.
    """

    _settings: PostHogSettings | None = None
    _client: httpx.AsyncClient | None = None

    def __init__(
        self,
        posthog_conn_id: str = _PostHogHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        keepalive: float = 120.0,
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: as for :class:`PostHogHook`; so are ``max_retries``, ``backoff`` and
            ``backoff_max``.
        :param keepalive: seconds an idle connection is kept open. Keep it longer than the poll
            interval, or every poll pays a new TCP (and TLS) handshake.
        """
        super().__init__(
            posthog_conn_id,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
        )
        self._keepalive = keepalive

    async def get_settings(self) -> PostHogSettings:
        """Read the connection once, without blocking the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.posthog_conn_id, hook=type(self))
            self._settings = self._settings_from(conn, await get_async_extra_dejson(conn))
        return self._settings

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = await self.get_settings()
            self._client = httpx.AsyncClient(
                headers=self._headers(settings),
                timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
                verify=_shared_ssl_context(),
                limits=httpx.Limits(keepalive_expiry=self._keepalive),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> PostHogAsyncHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, call: ApiCall) -> Any:
        settings = await self.get_settings()
        url = self._url(settings, call)
        async for attempt in AsyncRetrying(**self._retry_kwargs(settings)):
            with attempt:
                return await self._send_once(settings, call, url)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        client = await self._get_client()
        path = urlsplit(url).path
        try:
            response = await client.request(call.method, url, params=call.params)
        except httpx.TransportError as error:
            raise PostHogTransportError(
                request_sent=not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)),
                method=call.method,
                path=path,
                resource=call.resource,
                detail=f"{type(error).__name__}: {_first_line(error)}",
            ) from None
        if response.status_code >= 400:
            raise self._error(settings, call, path, response.status_code, response.headers, response.content)
        return self._decode(call, path, response.status_code, response.content)

    async def get_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export`."""
        return await self._call(
            self._batch_export_call(await self.get_settings(), project_id, batch_export_id)
        )

    async def get_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
        level: str | list[str] | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        limit: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export_logs`."""
        params = logs_query(
            after=after, before=before, level=level, search=search, instance_id=instance_id, limit=limit
        )
        return await self._call(
            self._logs_call(await self.get_settings(), batch_export_id, project_id, params)
        )

    async def iter_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
        level: str | list[str] | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        page_size: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`PostHogHook.iter_batch_export_logs`."""
        params = logs_query(
            after=after, before=before, level=level, search=search, instance_id=instance_id, limit=page_size
        )
        settings = await self.get_settings()
        pager = LogsPager(params)
        while pager.params is not None:
            page = await self._call(self._logs_call(settings, batch_export_id, project_id, pager.params))
            for entry in pager.take(page):
                yield entry


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    # httpx loads the CA bundle for every client it builds (about 20 ms of CPU and 0.8 MB each, even
    # for http:// URLs); a triggerer running a thousand triggers must pay that once, not per trigger.
    return httpx.create_ssl_context()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def payload_from_export(export: dict[str, Any]) -> dict[str, Any]:
    """The fields of an existing export that PostHog's ``run_test_step`` validates."""
    destination = export.get("destination") or {}
    payload_destination = {
        key: destination[key] for key in ("type", "config", "integration") if key in destination
    }
    payload = {key: export[key] for key in ("name", "interval", "model") if export.get(key) is not None}
    return {**payload, "destination": payload_destination}


def check_batch_export_payload(payload: Any) -> dict[str, Any]:
    """Check a batch export create payload before testing it: name, interval, destination type."""
    if not isinstance(payload, dict):
        raise ValueError(
            f"Invalid batch_export payload {payload!r}: expected a dict with name, interval, destination."
        )
    check_non_empty_str("batch_export name", payload.get("name"))
    check_choice(
        "interval", payload.get("interval"), ("hour", "day", "week", "every 5 minutes", "every 15 minutes")
    )
    destination = payload.get("destination")
    if not isinstance(destination, dict):
        raise ValueError(
            f"Invalid batch_export destination {destination!r}: expected a dict with type and config."
        )
    check_destination_type(destination.get("type"), testable=True)
    return payload


def dashboard_payload(
    *,
    name: str,
    description: str | None = None,
    pinned: bool | None = None,
    tags: list[str] | None = None,
    restriction_level: int | None = None,
    use_template: str | None = None,
    use_dashboard: int | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Validate dashboard fields and build the body of a create request."""
    body: dict[str, Any] = {"name": check_non_empty_str("dashboard name", name, max_length=400)}
    if description is not None:
        if not isinstance(description, str):
            raise ValueError(f"Invalid description {description!r}: expected a string.")
        body["description"] = description
    if pinned is not None:
        body["pinned"] = check_bool("pinned", pinned)
    if tags is not None:
        if not isinstance(tags, (list, tuple)) or not all(
            isinstance(tag, str) and tag.strip() for tag in tags
        ):
            raise ValueError(f"Invalid tags {tags!r}: expected a list of non-empty strings.")
        body["tags"] = list(tags)
    if restriction_level is not None:
        body["restriction_level"] = check_choice("restriction_level", restriction_level, RESTRICTION_LEVELS)
    if use_template is not None and use_dashboard is not None:
        raise ValueError("use_template and use_dashboard cannot be used together: pick one.")
    if use_template is not None:
        body["use_template"] = check_non_empty_str("use_template", use_template)
    if use_dashboard is not None:
        body["use_dashboard"] = check_positive_int("use_dashboard", use_dashboard)
    if "filters" in fields and fields["filters"] and not isinstance(fields["filters"], dict):
        raise ValueError(f"Invalid filters {fields['filters']!r}: expected a dict.")
    return {**body, **fields}
