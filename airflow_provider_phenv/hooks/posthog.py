"""
Hooks for PostHog's environments API: the only place that knows URLs, auth, retries and paging.

:class:`PostHogHook` is the synchronous hook used by operators and poke/reschedule sensors.
:class:`PostHogAsyncHook` serves triggers: the same requests, errors and retry policy over an
async HTTP client, reading the connection without blocking the triggerer's event loop.

Each endpoint is one short method: it validates its arguments, describes the request as an
:class:`~airflow_provider_phenv.hooks._base.ApiCall` and sends it with ``_call`` (or ``_paginate``
for a list). What both hooks share lives in :mod:`airflow_provider_phenv.hooks._base`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import AsyncRetrying, Retrying

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
)
from airflow_provider_phenv.hooks import _shapes as shapes
from airflow_provider_phenv.hooks._base import (
    ApiCall,
    ListPager,
    PostHogHookBase,
    RunFilters,
    dashboard_call,
    export_call,
    first_line,
    runs_call,
    shared_ssl_context,
)
from airflow_provider_phenv.hooks._budget import request_budget
from airflow_provider_phenv.hooks._logs import LogFilters, LogsPager, logs_call
from airflow_provider_phenv.hooks._retry import slot_wait_kwargs
from airflow_provider_phenv.hooks._settings import PostHogSettings
from airflow_provider_phenv.hooks._transport import (
    CHUNK_BYTES,
    BodyDecoder,
    Deadline,
    ResponseProblem,
    watched_adapter,
)
from airflow_provider_phenv.payloads import (
    check_batch_export_payload,
    dashboard_payload,
    payload_from_export,
)
from airflow_provider_phenv.run_watch import find_backfill
from airflow_provider_phenv.validation import (
    COLLABORATOR_LEVELS,
    MAX_LOGS_LIMIT,
    check_backfill_range,
    check_bool,
    check_choice,
    check_destination_type,
    check_non_empty_str,
    check_positive_int,
    check_uuid,
)

#: What the operators and sensors need from a personal API key.
REQUIRED_SCOPES = ("batch_export:read", "batch_export:write", "dashboard:read", "dashboard:write")
#: Seconds the connection test waits to connect and for each answer.
TEST_CONNECTION_TIMEOUT = 5.0

if TYPE_CHECKING:
    # requests costs ~30 ms to import; DAG files that only build operators never need it.
    import requests
    from typing_extensions import Unpack

__all__ = [
    "LogFilters",
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
    "RunFilters",
    # Moved to airflow_provider_phenv.payloads; still importable from here for existing callers.
    "check_batch_export_payload",
    "dashboard_payload",
    "payload_from_export",
]


class PostHogHook(PostHogHookBase):
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
        # Redirects are followed by the hook itself (same origin only); reads obey the deadline.
        adapter = watched_adapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
        session.trust_env = self.settings.use_env_proxies
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

    def _call(self, call: ApiCall) -> Any:
        settings = self.settings
        call, url = self._prepare(settings, call)
        for attempt in Retrying(**self._retry_kwargs(settings)):
            with attempt:
                return self._send_once(settings, call, url)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt: the request, any same-origin redirects, and the body, within the deadline."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        path = self._path(settings, url)
        self.log.debug("PostHog request %s %s", call.method, path)
        with Deadline(settings.request_deadline) as deadline:
            try:
                return self._exchange(settings, call, url, deadline)
            except (requests.RequestException, Urllib3Error, OSError) as error:
                deadline.check()
                if deadline.fired:
                    raise self._deadline_error(settings, call, path) from None
                raise self._transport_error(settings, call, path, error) from None

    def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str, deadline: Deadline) -> Any:
        params, hops = call.params, 0
        while True:
            path = self._path(settings, url)
            response = self.session.request(
                call.method,
                url,
                params=params,
                json=call.body,
                timeout=(settings.connect_timeout, settings.timeout),
                allow_redirects=False,
                stream=True,
            )
            try:
                status, headers = response.status_code, response.headers
                if 300 <= status < 400:
                    # The Location carries its own query string.
                    url, params, hops = (
                        self._redirect_target(settings, call, path, url, status, headers, hops),
                        None,
                        hops + 1,
                    )
                    continue
                try:
                    decoder = BodyDecoder(
                        headers.get("content-encoding"),
                        settings.max_body_bytes,
                        headers.get("content-length"),
                    )
                    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                        decoder.feed(chunk)
                        deadline.check()
                    body = decoder.finish()
                except ResponseProblem as problem:
                    raise self._problem(settings, call, path, status, problem) from None
                if deadline.fired:
                    raise self._deadline_error(settings, call, path)
            finally:
                response.close()
            return self._result(settings, call, path, status, headers, body)

    def _transport_error(
        self, settings: PostHogSettings, call: ApiCall, path: str, error: BaseException
    ) -> PostHogAPIError:
        import requests
        from urllib3.exceptions import NewConnectionError

        if isinstance(
            error, (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError)
        ) and not isinstance(error, requests.exceptions.ChunkedEncodingError):
            # Refused by the client before sending. Its text may quote a header (the key): not kept.
            return PostHogAPIError(
                status_code=None,
                method=call.method,
                path=path,
                resource=call.subject,
                detail=f"the request could not be built ({type(error).__name__}); nothing was sent",
            )
        # Only a connection that was never opened proves the request did not reach PostHog: a
        # connect timeout, or urllib3's NewConnectionError (refused, DNS) wrapped in ConnectionError.
        reason = error.args[0] if error.args else None
        refused = isinstance(error, requests.ConnectionError) and isinstance(
            getattr(reason, "reason", reason), NewConnectionError
        )
        sent = not isinstance(error, requests.ConnectTimeout) and not refused
        cause = settings.scrub(f"{type(error).__name__}: {first_line(error)}")
        if sent and not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogTransportError(
            request_sent=sent, method=call.method, path=path, resource=call.subject, detail=cause
        )

    def _paginate(self, call: ApiCall) -> Iterator[dict[str, Any]]:
        """
        Yield every result of a paginated list (limit/offset or cursor), following ``next`` links;
        a link back to a page already read, or more than ``max_pages`` pages, is an error.
        """
        settings = self.settings
        call = replace(call, project_id=self._project(settings, call.project_id))
        pager = ListPager(
            call, settings.max_pages, lambda page: settings.scrub(self._prepare(settings, page)[1])
        )
        while pager.call is not None:
            yield from pager.take(self._call(pager.call))

    # -- batch exports ---------------------------------------------------------------------------

    def get_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one batch export.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(export_call(batch_export_id, project_id=project_id, expect=shapes.BATCH_EXPORT))

    def pause_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Pause a batch export; pausing a paused export changes nothing. Returns ``{"paused": true}``.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        call = export_call(
            batch_export_id, "pause/", method="POST", project_id=project_id, expect=shapes.paused_is(True)
        )
        return self._call(call)

    def unpause_batch_export(
        self, batch_export_id: str, *, backfill: bool = False, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Unpause a batch export. Returns ``{"paused": false}``.

        With ``backfill`` the request is not repeatable: PostHog saves ``paused=False`` before it
        starts the backfill, so a repeat after a lost answer would start none. An ambiguous failure
        then raises :class:`~airflow_provider_phenv.errors.PostHogWriteOutcomeUnknownError`.

        :param batch_export_id: the batch export's UUID.
        :param backfill: also export the data of the time it was paused.
        :param project_id: project/environment id; default from the connection.
        """
        body = {"backfill": check_bool("backfill", backfill)}
        call = export_call(
            batch_export_id,
            "unpause/",
            method="POST",
            body=body,
            repeatable=not body["backfill"],
            project_id=project_id,
            expect=shapes.paused_is(False),
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
        call = ApiCall(
            path="batch_exports/test/",
            params={"destination": destination},
            resource=f"{destination} destination tests",
            project_id=project_id,
            expect=shapes.TEST_STEPS,
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
        body = {**payload, "step": step}
        # PostHog answers 500 for a destination or step it cannot test: retrying cannot help.
        call = export_call(
            batch_export_id,
            "run_test_step/",
            method="POST",
            body=body,
            retry_server_errors=False,
            project_id=project_id,
            expect=shapes.TEST_STEP_RESULT,
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
        call = ApiCall(
            method="POST",
            path="batch_exports/run_test_step_new/",
            body={**payload, "step": step},
            resource=f"test of a new {payload['destination']['type']} batch export",
            project_id=project_id,
            expect=shapes.TEST_STEP_RESULT,
        )
        return self._call(call)

    def get_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        limit: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
        **filters: Unpack[LogFilters],
    ) -> dict[str, Any]:
        """
        Return one page of a batch export's log entries, newest first.

        :param batch_export_id: the batch export's UUID.
        :param limit: at most this many entries (1 to 500).
        :param project_id: project/environment id; default from the connection.
        :param filters: ``after``, ``before``, ``level``, ``search``, ``instance_id``: see
            :class:`~airflow_provider_phenv.hooks._logs.LogFilters`.
        :return: ``{"count", "next", "previous", "results": [entries]}``.
        """
        return self._call(logs_call(batch_export_id, project_id=project_id, limit=limit, **filters))

    def iter_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        page_size: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
        **filters: Unpack[LogFilters],
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every log entry after ``after`` (newest first), reading as many pages as needed.

        Parameters are those of :meth:`get_batch_export_logs`; ``page_size`` is the ``limit`` of
        each request.
        """
        settings = self.settings
        call, url = self._prepare(
            settings, logs_call(batch_export_id, project_id=project_id, limit=page_size, **filters)
        )
        pager = LogsPager(call, max_pages=settings.max_pages, path=self._path(settings, url))
        while pager.call is not None:
            yield from pager.take(self._call(pager.call))

    def get_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one run of a batch export.

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        tail = f"runs/{check_uuid('run_id', run_id)}/"
        return self._call(export_call(batch_export_id, tail, project_id=project_id))

    def list_batch_export_runs(
        self, batch_export_id: str, *, project_id: int | str | None = None, **filters: Unpack[RunFilters]
    ) -> list[dict[str, Any]]:
        """
        Return the runs of a batch export, newest first, across all pages.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        :param filters: ``status``, ``after``, ``before``: see
            :class:`~airflow_provider_phenv.hooks._base.RunFilters`.
        """
        return list(self._paginate(runs_call(batch_export_id, project_id=project_id, **filters)))

    def retry_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Run a run's interval again; PostHog does it as a backfill. Returns ``{"backfill_id"}``.

        Never re-sent: when PostHog's answer is lost, the backfill is looked up instead.

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        tail = f"runs/{check_uuid('run_id', run_id)}/retry/"
        requested_at = datetime.now(timezone.utc)
        try:
            return self._call(
                export_call(batch_export_id, tail, method="POST", repeatable=False, project_id=project_id)
            )
        except PostHogWriteOutcomeUnknownError as error:
            run = self.get_batch_export_run(batch_export_id, run_id, project_id=project_id)
            bounds = (run.get("data_interval_start"), run.get("data_interval_end"))
            return self._backfill_made_since(batch_export_id, bounds, requested_at, project_id, error)

    def cancel_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Cancel a Starting or Running run (PostHog answers 400 for any other status).

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        tail = f"runs/{check_uuid('run_id', run_id)}/cancel/"
        return self._call(export_call(batch_export_id, tail, method="POST", project_id=project_id))

    def create_batch_export_backfill(
        self,
        batch_export_id: str,
        *,
        start_at: Any,
        end_at: Any,
        project_id: int | str | None = None,
        slot_timeout: float = 900.0,
        slot_poll_interval: float = 30.0,
    ) -> dict[str, Any]:
        """
        Start a backfill of ``[start_at, end_at)``. Returns ``{"backfill_id"}``.

        PostHog makes one run per whole export interval. Never re-sent: when PostHog's answer is
        lost, the backfill is looked up instead. When PostHog already runs as many backfills as
        it allows (429 ``too_many_concurrent_backfills``), this waits for a free slot.

        :param batch_export_id: the batch export's UUID.
        :param start_at: first moment to export: a date (daily and weekly exports take only
            dates), an aware datetime, or ISO 8601 text.
        :param end_at: the moment after the last one to export; not in the future.
        :param project_id: project/environment id; default from the connection.
        :param slot_timeout: seconds to wait for a free backfill slot before giving up.
        :param slot_poll_interval: seconds between two tries for a slot.
        """
        start, end = check_backfill_range(start_at, end_at)
        call = export_call(
            batch_export_id,
            "backfills/",
            method="POST",
            body={"start_at": start, "end_at": end},
            repeatable=False,
            project_id=project_id,
        )
        requested_at = datetime.now(timezone.utc)
        for attempt in Retrying(**slot_wait_kwargs(slot_timeout, slot_poll_interval, self.log)):
            with attempt:
                try:
                    return self._call(call)
                except PostHogWriteOutcomeUnknownError as error:
                    return self._backfill_made_since(
                        batch_export_id, (start, end), requested_at, project_id, error
                    )
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def get_batch_export_backfill(
        self, batch_export_id: str, backfill_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one backfill, with its ``status`` and ``progress`` (``total_runs``, ``finished_runs``).

        :param batch_export_id: the batch export's UUID.
        :param backfill_id: the backfill's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/"
        return self._call(export_call(batch_export_id, tail, project_id=project_id))

    def list_batch_export_backfills(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> list[dict[str, Any]]:
        """
        Return the backfills of a batch export across all pages.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        return list(self._paginate(export_call(batch_export_id, "backfills/", project_id=project_id)))

    def cancel_batch_export_backfill(
        self, batch_export_id: str, backfill_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Cancel a running backfill and its active runs.

        :param batch_export_id: the batch export's UUID.
        :param backfill_id: the backfill's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/cancel/"
        return self._call(export_call(batch_export_id, tail, method="POST", project_id=project_id))

    def _backfill_made_since(
        self,
        batch_export_id: str,
        bounds: tuple[Any, Any],
        requested_at: datetime,
        project_id: int | str | None,
        error: PostHogWriteOutcomeUnknownError,
    ) -> dict[str, Any]:
        """
        The backfill of ``bounds`` that a create whose answer was lost made, as ``{"backfill_id"}``.

        Raises ``error`` again when there is none: sending the create again could still make a
        second one if the first commits late.
        """
        backfill = find_backfill(
            self.list_batch_export_backfills(batch_export_id, project_id=project_id), bounds, requested_at
        )
        if backfill is None:
            raise error
        self.log.warning(
            "PostHog's answer was lost; backfill %s of batch export %s for %s - %s exists, so it is used.",
            backfill["id"],
            batch_export_id,
            *bounds,
        )
        return {"backfill_id": backfill["id"]}

    # -- dashboards ------------------------------------------------------------------------------

    def list_dashboards(
        self,
        *,
        search: str | None = None,
        project_id: int | str | None = None,
        page_size: int = 500,
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
        call = ApiCall(path="dashboards/", params=params, resource="dashboards", project_id=project_id)
        return list(self._paginate(call))

    def get_dashboard(
        self, dashboard_id: int | str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one dashboard.

        :param dashboard_id: the dashboard's integer id.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(dashboard_call(dashboard_id, project_id=project_id))

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
        call = ApiCall(
            method="POST",
            path="dashboards/",
            body=body,
            repeatable=False,
            resource=f"dashboard {name!r}",
            project_id=project_id,
            expect=shapes.DASHBOARD,
        )
        return self._call(call)

    def update_dashboard(
        self, dashboard_id: int | str, *, project_id: int | str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """
        Change some fields of a dashboard (PATCH): only the fields given are sent.

        :param dashboard_id: the dashboard's integer id.
        :param project_id: project/environment id; default from the connection.
        :param fields: the fields to change: ``name``, ``description``, ``pinned``, ``tags``,
            ``restriction_level`` (21 or 37), ``filters``... (``{"deleted": True}`` deletes it).
        :return: the whole dashboard as PostHog now has it.
        """
        if not fields:
            raise ValueError("update_dashboard needs at least one field to change.")
        if "use_template" in fields or "use_dashboard" in fields:
            raise ValueError("use_template and use_dashboard only apply when a dashboard is created.")
        name = fields.pop("name", None)
        body = dashboard_payload(name=name if name is not None else "-", **fields)
        if name is None:
            del body["name"]
        return self._call(dashboard_call(dashboard_id, method="PATCH", body=body, project_id=project_id))

    def list_dashboard_collaborators(
        self, dashboard_id: int | str, *, project_id: int | str | None = None
    ) -> list[dict[str, Any]]:
        """
        Return the collaborators of a dashboard (PostHog sends them all at once, unpaginated).

        :param dashboard_id: the dashboard's integer id.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(
            dashboard_call(dashboard_id, "collaborators/", project_id=project_id, expect=shapes.COLLABORATORS)
        )

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
        call = dashboard_call(
            dashboard_id,
            "collaborators/",
            method="POST",
            body=body,
            repeatable=False,
            project_id=project_id,
            expect=shapes.COLLABORATOR,
        )
        return self._call(call)

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
        """
        Check what the operators need; used by Airflow's connection test button and CLI.

        It reads the key's own record (its scopes must cover batch exports and dashboards), then
        makes one project-scoped GET (the connection's ``project_id`` must be set and readable).
        It neither retries nor waits long, so an unreachable host is reported in seconds.

        :return: ``(ok, message)``; the message names every missing piece.
        """
        try:
            settings = self.settings
            # A button press must answer quickly: no retries, and a short wait for connecting.
            self.__dict__["settings"] = replace(
                settings, max_retries=0, timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT)
            )
            return self._test_connection(settings)
        except PostHogTransportError as error:
            return False, (
                f"Could not reach PostHog at {settings.host_label} within {TEST_CONNECTION_TIMEOUT:g} s: "
                f"{error.detail}. Check the connection's host and port, and that this machine can reach it."
            )
        except Exception as error:
            return False, str(error)
        finally:
            self.close()
            self.__dict__.pop("settings", None)

    def _test_connection(self, settings: PostHogSettings) -> tuple[bool, str]:
        where = f"PostHog at {settings.host_label}"
        problems: list[str] = []
        key = self._read_own_key(settings)  # raises on an unreachable host or a rejected key
        scopes = key.get("scopes") if key else None
        if isinstance(scopes, list):
            missing = [scope for scope in REQUIRED_SCOPES if not _grants(scopes, scope)]
            if missing:
                problems.append(
                    f"the personal API key lacks the scope{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)} (it has {', '.join(scopes) or 'none'}): the operators need "
                    f"{', '.join(REQUIRED_SCOPES)}; edit the key in PostHog (Settings > Personal API keys)"
                )
        project = settings.project_id
        if project is None:
            problems.append(
                f"connection {settings.conn_id!r} has no extra 'project_id': set it to the project "
                "(environment) id, the number after /project/ in PostHog's URLs"
            )
        else:
            readable = (
                None if not isinstance(scopes, list) else [s for s in REQUIRED_SCOPES if _grants(scopes, s)]
            )
            # Read something the key may read, so a missing scope is not reported twice.
            if readable is None or "batch_export:read" in readable:
                check = ApiCall(
                    path="batch_exports/", params={"limit": 1}, resource="batch exports", expect=shapes.page()
                )
            elif "dashboard:read" in readable:
                check = ApiCall(
                    path="dashboards/", params={"limit": 1}, resource="dashboards", expect=shapes.page()
                )
            else:
                check = None
            if check is not None:
                try:
                    self._call(replace(check, project_id=project))
                except (PostHogAuthError, PostHogNotFoundError) as error:
                    problems.append(f"project {project} cannot be read: {error}")
        if problems:
            return False, f"{where}: " + "; ".join(problems) + "."
        label = f" with key {key['label']!r}" if key and key.get("label") else ""
        scope_note = "its scopes cover" if key else "its scopes could not be read (older PostHog); it needs"
        return True, (
            f"Connected to {where}{label}: project {project} is readable and {scope_note} "
            f"{', '.join(REQUIRED_SCOPES)}."
        )

    def _read_own_key(self, settings: PostHogSettings) -> dict[str, Any] | None:
        """The key's own record (label, scopes), or ``None`` on a PostHog that cannot show it."""
        url = f"{settings.base_url}/api/personal_api_keys/@current/"
        # Not project-scoped: sent as a "next page" link, which the hook sends as it is.
        call = ApiCall(path="", resource="the personal API key", project_id="@current", next_url=url)
        try:
            return self._call(call)
        except PostHogNotFoundError:
            return None  # an older PostHog without this endpoint
        except PostHogAuthError as error:
            if error.status_code == 403 and "personal api key access" in (error.detail or "").lower():
                return None
            raise


class PostHogAsyncHook(PostHogHookBase):
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
        posthog_conn_id: str = PostHogHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        keepalive: float = 120.0,
        max_body_bytes: int | None = None,
        request_deadline: float | None = None,
        max_pages: int | None = None,
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: as for :class:`PostHogHook`; so are ``max_retries``, ``backoff``,
            ``backoff_max``, ``max_body_bytes``, ``request_deadline`` and ``max_pages``.
        :param keepalive: seconds an idle connection is kept open. Keep it longer than the poll
            interval, or every poll pays a new TCP (and TLS) handshake.
        """
        super().__init__(
            posthog_conn_id,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
            max_body_bytes=max_body_bytes,
            request_deadline=request_deadline,
            max_pages=max_pages,
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
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                verify=shared_ssl_context(),
                limits=httpx.Limits(keepalive_expiry=self._keepalive),
                # Redirects are followed by the hook itself (same origin only).
                follow_redirects=False,
                # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
                trust_env=settings.use_env_proxies,
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
        call, url = self._prepare(settings, call)
        budget = request_budget(
            settings.base_url, settings.api_key, settings.requests_per_minute, settings.requests_per_hour
        )
        # Identical reads in flight at the same moment are sent once; writes never are.
        same = (url, json.dumps(call.params, sort_keys=True, default=str)) if call.method == "GET" else None
        async for attempt in AsyncRetrying(**self._retry_kwargs(settings)):
            with attempt:
                return await budget.send(same, lambda: self._send_once(settings, call, url))
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt, cancelled when the request deadline passes (body and redirects included)."""
        try:
            return await asyncio.wait_for(self._exchange(settings, call, url), settings.request_deadline)
        except asyncio.TimeoutError:
            raise self._deadline_error(settings, call, self._path(settings, url)) from None

    async def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        client = await self._get_client()
        params, hops = call.params, 0
        while True:
            path = self._path(settings, url)
            try:
                async with client.stream(call.method, url, params=params, json=call.body) as response:
                    status, headers = response.status_code, response.headers
                    if 300 <= status < 400:
                        # The Location carries its own query string.
                        url, params, hops = (
                            self._redirect_target(settings, call, path, url, status, headers, hops),
                            None,
                            hops + 1,
                        )
                        continue
                    try:
                        decoder = BodyDecoder(
                            headers.get("content-encoding"),
                            settings.max_body_bytes,
                            headers.get("content-length"),
                        )
                        async for chunk in response.aiter_raw(CHUNK_BYTES):
                            decoder.feed(chunk)
                        body = decoder.finish()
                    except ResponseProblem as problem:
                        raise self._problem(settings, call, path, status, problem) from None
            except httpx.TransportError as error:
                sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                cause = settings.scrub(f"{type(error).__name__}: {first_line(error)}")
                if sent and not call.repeatable:
                    raise self._outcome_unknown(call, path, None, cause) from None
                raise PostHogTransportError(
                    request_sent=sent, method=call.method, path=path, resource=call.subject, detail=cause
                ) from None
            return self._result(settings, call, path, status, headers, body)

    async def _paginate(self, call: ApiCall) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`PostHogHook._paginate`."""
        settings = await self.get_settings()
        call = replace(call, project_id=self._project(settings, call.project_id))
        pager = ListPager(
            call, settings.max_pages, lambda page: settings.scrub(self._prepare(settings, page)[1])
        )
        while pager.call is not None:
            for result in pager.take(await self._call(pager.call)):
                yield result

    async def get_batch_export(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export`."""
        return await self._call(
            export_call(batch_export_id, project_id=project_id, expect=shapes.BATCH_EXPORT)
        )

    async def get_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        limit: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
        **filters: Unpack[LogFilters],
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export_logs`."""
        return await self._call(logs_call(batch_export_id, project_id=project_id, limit=limit, **filters))

    async def iter_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        page_size: int = MAX_LOGS_LIMIT,
        project_id: int | str | None = None,
        **filters: Unpack[LogFilters],
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`PostHogHook.iter_batch_export_logs`."""
        settings = await self.get_settings()
        call, url = self._prepare(
            settings, logs_call(batch_export_id, project_id=project_id, limit=page_size, **filters)
        )
        pager = LogsPager(call, max_pages=settings.max_pages, path=self._path(settings, url))
        while pager.call is not None:
            for entry in pager.take(await self._call(pager.call)):
                yield entry

    async def get_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export_run`."""
        tail = f"runs/{check_uuid('run_id', run_id)}/"
        return await self._call(export_call(batch_export_id, tail, project_id=project_id))

    async def list_batch_export_runs(
        self, batch_export_id: str, *, project_id: int | str | None = None, **filters: Unpack[RunFilters]
    ) -> list[dict[str, Any]]:
        """Async :meth:`PostHogHook.list_batch_export_runs`."""
        return [
            run async for run in self._paginate(runs_call(batch_export_id, project_id=project_id, **filters))
        ]

    async def get_batch_export_backfill(
        self, batch_export_id: str, backfill_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`PostHogHook.get_batch_export_backfill`."""
        tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/"
        return await self._call(export_call(batch_export_id, tail, project_id=project_id))


def _grants(scopes: list[str], required: str) -> bool:
    """PostHog's rule: ``*`` grants every scope, ``<object>:write`` also grants ``<object>:read``."""
    obj, _, action = required.partition(":")
    return "*" in scopes or required in scopes or (action == "read" and f"{obj}:write" in scopes)
