"""The PostHog hooks, one method per endpoint: each validates its arguments, describes the request as an
:class:`~airflow_provider_phenv.hooks.calls.ApiCall` and sends it (:mod:`.transport`). :class:`PostHogHook`
serves operators and poke/reschedule sensors, :class:`PostHogAsyncHook` triggers; the reads both need are
written once, in :class:`PostHogReads`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tenacity import Retrying, retry_if_exception_type, retry_if_result

from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogAuthError,
    PostHogBackfillNotVisibleError,
    PostHogBadRequestError,
    PostHogConnectionConfigError,
    PostHogError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks import calls
from airflow_provider_phenv.hooks.calls import (
    ApiCall,
    LogFilters,
    LogsPager,
    RunFilters,
    dashboard_call,
    export_call,
    logs_call,
    run_call,
    runs_call,
)
from airflow_provider_phenv.hooks.settings import row_wait_kwargs, slot_wait_kwargs
from airflow_provider_phenv.hooks.transport import AsyncClient, SyncClient
from airflow_provider_phenv.validation import (
    COLLABORATOR_LEVELS,
    DASHBOARD_ACCESS_LEVELS,
    MAX_LOGS_LIMIT,
    ExportSchedule,
    backfill_moment,
    check_backfill_range,
    check_batch_export_payload,
    check_bool,
    check_choice,
    check_destination_type,
    check_non_empty_str,
    check_positive_int,
    check_uuid,
    dashboard_payload,
    payload_from_export,
)

if TYPE_CHECKING:
    # Only type checkers read ``Unpack`` (annotations are not evaluated); typing has it from 3.11.
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
]


JSON = dict[str, Any]
ProjectId = int | str | None
# What a read returns: one JSON object, a list of them, an iterator of them (sync or async).
One = TypeVar("One")
Many = TypeVar("Many")
Each = TypeVar("Each")

#: Seconds a backfill PostHog accepted may stay invisible: its row is written by the backfill
#: workflow's first activity, after the 201 (docs/posthog-api.md §6.9).
BACKFILL_ROW_GRACE = 300.0
# Seconds of clock difference between this machine and PostHog that find_backfill allows.
_CLOCK_SKEW = 60.0


def find_backfill(
    backfills: list[JSON],
    bounds: tuple[Any, Any] | None,
    since: datetime | None,
    *,
    schedule: ExportSchedule | None = None,
) -> JSON | None:
    """The newest backfill over exactly ``bounds`` created at or after ``since``, if any.

    :param backfills: the export's backfills as PostHog lists them.
    :param bounds: ``(start_at, end_at)`` as sent or as a run's data interval; ``None`` for any.
    :param since: when the request that may have made it was sent; ``None`` for any time.
    :param schedule: the export's schedule, to read date bounds as PostHog stores them.
    """
    wanted = None if bounds is None else tuple(backfill_moment(bound, schedule) for bound in bounds)
    earliest = None if since is None else since.timestamp() - _CLOCK_SKEW

    def created(backfill: JSON) -> float:
        moment = backfill_moment(backfill.get("created_at"))
        return 0.0 if moment is None else moment.timestamp()

    def matches(backfill: JSON) -> bool:
        over = tuple(backfill_moment(backfill.get(bound)) for bound in ("start_at", "end_at"))
        return (wanted is None or over == wanted) and (earliest is None or created(backfill) >= earliest)

    return max(filter(matches, backfills), key=created, default=None)


class PostHogReads(Generic[One, Many, Each]):
    """The reads both hooks serve, written once: on :class:`PostHogHook` they return parsed JSON, on
    :class:`PostHogAsyncHook` awaitables of it (an async iterator from :meth:`iter_batch_export_logs`).

    Shared parameters: ``project_id``, the project (environment) id, default the connection's;
    ``batch_export_id``, ``run_id``, ``backfill_id``: UUIDs; ``dashboard_id``: the dashboard's integer id.
    """

    # Provided by SyncClient or AsyncClient (see :mod:`.transport`).
    _call: Callable[[ApiCall], One]
    _collect: Callable[[ApiCall], Many]
    _paginate: Callable[..., Each]
    _retrying: Callable[..., Any]  # tenacity's Retrying or AsyncRetrying

    def _call_once_visible(self, call: ApiCall, row_timeout: float) -> One:
        # A backfill PostHog has just accepted is 404 until its row is written: asked again meanwhile.
        not_visible = retry_if_exception_type(PostHogNotFoundError)
        return self._retrying(**row_wait_kwargs(row_timeout, not_visible))(self._call, call)

    def get_batch_export(self, batch_export_id: str, *, project_id: ProjectId = None) -> One:
        """Return one batch export."""
        return self._call(export_call(batch_export_id, project_id=project_id, expect=calls.BATCH_EXPORT))

    def list_batch_exports(self, *, project_id: ProjectId = None, page_size: int = 100) -> Many:
        """Return every batch export of the project (each with its ``latest_runs``), across all pages.

        :param page_size: exports per page (``limit``); PostHog sets no maximum.
        """
        limit = check_positive_int("page_size", page_size)
        call = ApiCall("batch_exports/", "batch exports", params={"limit": limit}, project_id=project_id)
        return self._collect(call)

    def get_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        limit: int = MAX_LOGS_LIMIT,
        project_id: ProjectId = None,
        **filters: Unpack[LogFilters],
    ) -> One:
        """Return one page of a batch export's log entries, newest first: ``{"count", "next", "results"...}``.

        :param limit: at most this many entries (1 to 500).
        :param filters: ``after``, ``before``, ``level``, ``search``, ``instance_id`` (:class:`LogFilters`).
        """
        return self._call(logs_call(batch_export_id, project_id=project_id, limit=limit, **filters))

    def iter_batch_export_logs(
        self,
        batch_export_id: str,
        *,
        page_size: int = MAX_LOGS_LIMIT,
        project_id: ProjectId = None,
        **filters: Unpack[LogFilters],
    ) -> Each:
        """Yield every log entry after ``after`` (newest first), reading as many pages as needed.

        :param page_size: the ``limit`` of each request.
        :param filters: as for :meth:`get_batch_export_logs`.
        """
        call = logs_call(batch_export_id, project_id=project_id, limit=page_size, **filters)
        return self._paginate(call, LogsPager)

    def get_batch_export_run(self, batch_export_id: str, run_id: str, *, project_id: ProjectId = None) -> One:
        """Return one run of a batch export (of any age: PostHog hides older runs unless asked)."""
        return self._call(run_call(batch_export_id, run_id, project_id=project_id))

    def list_batch_export_runs(
        self, batch_export_id: str, *, project_id: ProjectId = None, **filters: Unpack[RunFilters]
    ) -> Many:
        """Return the runs of a batch export, newest first, across all pages.

        :param filters: ``status``, ``after``, ``before`` (:class:`RunFilters`).
        """
        return self._collect(runs_call(batch_export_id, project_id=project_id, **filters))

    def get_batch_export_backfill(
        self, batch_export_id: str, backfill_id: str, *, project_id: ProjectId = None, row_timeout: float = 0
    ) -> One:
        """Return one backfill, with its ``status`` and ``progress`` (``total_runs``, ``finished_runs``).

        :param row_timeout: seconds to keep asking while PostHog answers 404 (a new backfill shows late).
        """
        call = _backfill_call(batch_export_id, backfill_id, "", project_id=project_id, expect=calls.BACKFILL)
        return self._call_once_visible(call, row_timeout)

    def cancel_batch_export_backfill(
        self, batch_export_id: str, backfill_id: str, *, project_id: ProjectId = None, row_timeout: float = 0
    ) -> One:
        """Cancel a running backfill and its active runs.

        :param row_timeout: as for :meth:`get_batch_export_backfill` (no cancel before the row exists).
        """
        call = _backfill_call(batch_export_id, backfill_id, "cancel/", method="POST", project_id=project_id)
        return self._call_once_visible(call, row_timeout)


def _backfill_call(batch_export_id: str, backfill_id: str, action: str, **kwargs: Any) -> ApiCall:
    tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/{action}"
    return export_call(batch_export_id, tail, **kwargs)


def _backfill_start(call: ApiCall) -> ApiCall:
    # Either endpoint that starts a backfill: never re-sent, since a repeat would start a second one.
    return replace(call, method="POST", repeatable=False, expect=calls.BACKFILL_STARTED)


class PostHogHook(SyncClient, PostHogReads[JSON, list[JSON], Iterator[JSON]]):
    """PostHog's project API over one keep-alive HTTP session. Every method validates its arguments before
    sending anything and returns parsed JSON; a failure raises :class:`PostHogAPIError` (or a subclass)
    after retries of throttling, 5xx and dropped connections, honouring ``Retry-After``. Its parameters are
    those of :class:`~.transport.PostHogHookBase`; its methods' shared ones, those of :class:`PostHogReads`.
    """

    backfill_row_grace: float = BACKFILL_ROW_GRACE

    # -- batch exports ------------------------------------------------------------------------------

    def pause_batch_export(self, batch_export_id: str, *, project_id: ProjectId = None) -> JSON:
        """Pause a batch export (pausing a paused export changes nothing). Returns ``{"paused": true}``."""
        call = export_call(batch_export_id, "pause/", project_id=project_id, expect=calls.paused_is(True))
        return self._call(replace(call, method="POST"))

    def unpause_batch_export(
        self, batch_export_id: str, *, backfill: bool = False, project_id: ProjectId = None
    ) -> JSON:
        """Unpause a batch export; returns ``{"paused": false}``. With ``backfill`` never re-sent (a repeat
        would start no backfill): an ambiguous failure raises :class:`PostHogWriteOutcomeUnknownError`.

        :param backfill: also export the data of the time it was paused.
        """
        backfill = check_bool("backfill", backfill)
        call = export_call(batch_export_id, "unpause/", project_id=project_id, expect=calls.paused_is(False))
        return self._call(replace(call, method="POST", body={"backfill": backfill}, repeatable=not backfill))

    def get_batch_export_test_steps(self, destination_type: str, *, project_id: ProjectId = None) -> JSON:
        """Return the test steps PostHog runs for a destination type: ``{"steps": [{name, description}]}``.

        :param destination_type: e.g. ``AwsS3``, ``BigQuery``, ``Snowflake``.
        """
        destination = check_destination_type(destination_type)
        call = ApiCall(
            "batch_exports/test/",
            f"{destination} destination tests",
            params={"destination": destination},
            project_id=project_id,
            expect=calls.TEST_STEPS,
        )
        return self._call(call)

    def run_batch_export_test_step(
        self, batch_export_id: str, step: int, payload: JSON | None = None, *, project_id: ProjectId = None
    ) -> JSON:
        """Run one test step against an existing export's destination: ``{"name", "description", "result"}``.

        :param step: index of the step, from :meth:`get_batch_export_test_steps`.
        :param payload: export fields to test with (PostHog validates them all); default: the export's own.
        """
        step = check_choice("step", step, range(100))
        if payload is None:
            payload = payload_from_export(self.get_batch_export(batch_export_id, project_id=project_id))
        # PostHog answers 500 for a destination or step it cannot test: retrying cannot help.
        call = export_call(
            batch_export_id, "run_test_step/", retry_server_errors=False, project_id=project_id
        )
        return self._test_step(call, payload, step)

    def run_batch_export_test_step_new(
        self, payload: JSON, step: int, *, project_id: ProjectId = None
    ) -> JSON:
        """Run one test step for an export that does not exist yet.

        :param payload: the create payload: ``name``, ``interval``, ``destination``.
        :param step: index of the step.
        """
        check_batch_export_payload(payload)
        step = check_choice("step", step, range(100))
        resource = f"test of a new {payload['destination']['type']} batch export"
        call = ApiCall("batch_exports/run_test_step_new/", resource, project_id=project_id)
        return self._test_step(call, payload, step)

    def _test_step(self, call: ApiCall, payload: JSON, step: int) -> JSON:
        # Either test endpoint: the payload and the step index POSTed, answered by the step's result.
        body = {**payload, "step": step}
        return self._call(replace(call, method="POST", body=body, expect=calls.TEST_STEP_RESULT))

    # -- runs and backfills (docs/posthog-api.md §6.9) ---------------------------------------------

    def retry_batch_export_run(
        self,
        batch_export_id: str,
        run_id: str,
        *,
        project_id: ProjectId = None,
        row_timeout: float | None = None,
    ) -> JSON:
        """Run a run's interval again as a backfill and wait for its row: ``{"backfill_id", "workflow_id"}``
        (``workflow_id`` None when the answer was lost: the backfill is then looked up, never re-sent).

        :param row_timeout: seconds to wait for the backfill to show; default :attr:`backfill_row_grace`.
        :raises PostHogBackfillNotVisibleError: PostHog started it, but it did not show in time.
        """
        row_timeout = self.backfill_row_grace if row_timeout is None else row_timeout
        requested_at = datetime.now(timezone.utc)
        call = _backfill_start(run_call(batch_export_id, run_id, "retry/", project_id=project_id))

        def interval() -> tuple[Any, Any]:
            run = self.get_batch_export_run(batch_export_id, run_id, project_id=project_id)
            return run.get("data_interval_start"), run.get("data_interval_end")

        find: JSON = {"since": requested_at, "project_id": project_id}
        try:
            workflow_id = self._call(call).get("backfill_id")
        except PostHogWriteOutcomeUnknownError as error:
            made = self._lost_backfill(error, batch_export_id, bounds=interval(), **find)
            return {"backfill_id": made["backfill_id"], "workflow_id": None}
        bounds = interval()
        backfill = self.find_batch_export_backfill(batch_export_id, bounds=bounds, wait=row_timeout, **find)
        if backfill is None:
            raise PostHogBackfillNotVisibleError(
                f"PostHog started the retry of run {run_id} of batch export {batch_export_id} "
                f"(workflow {workflow_id}), but no backfill over {bounds[0]} - {bounds[1]} appeared "
                f"within {row_timeout:.0f} s."
            )
        return {"backfill_id": str(backfill["id"]), "workflow_id": workflow_id}

    def cancel_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: ProjectId = None
    ) -> JSON:
        """Cancel a Starting or Running run (PostHog answers 400 for any other status)."""
        return self._call(run_call(batch_export_id, run_id, "cancel/", method="POST", project_id=project_id))

    def create_batch_export_backfill(
        self,
        batch_export_id: str,
        *,
        start_at: Any,
        end_at: Any,
        project_id: ProjectId = None,
        export: Mapping[str, Any] | None = None,
        slot_timeout: float = 900.0,
        slot_poll_interval: float = 30.0,
    ) -> JSON:
        """Start a backfill of ``[start_at, end_at)``, checked against the export's schedule; returns
        ``{"backfill_id"}``. A lost answer is looked up, never re-sent; with no free backfill slot, it waits.

        :param start_at: first moment to export: a date, an aware datetime or ISO 8601 text.
        :param end_at: the moment after the last one to export; not in the future.
        :param export: the export as :meth:`get_batch_export` returns it, if already read.
        :param slot_timeout: seconds to wait for a free backfill slot before giving up.
        :param slot_poll_interval: seconds between two tries for a slot.
        """
        check_backfill_range(start_at, end_at)  # bad input fails before the export is read
        if export is None:
            export = self.get_batch_export(batch_export_id, project_id=project_id)
        schedule = ExportSchedule.of(export)
        start, end = check_backfill_range(start_at, end_at, schedule=schedule)
        body = {"start_at": start, "end_at": end}
        call = _backfill_start(export_call(batch_export_id, "backfills/", body=body, project_id=project_id))
        find: JSON = {"bounds": (start, end), "since": datetime.now(timezone.utc), "schedule": schedule}

        def create() -> JSON:
            try:
                return self._call(call)
            except PostHogWriteOutcomeUnknownError as error:
                return self._lost_backfill(error, batch_export_id, project_id=project_id, **find)

        return Retrying(**slot_wait_kwargs(slot_timeout, slot_poll_interval, self.log))(create)

    def list_batch_export_backfills(
        self, batch_export_id: str, *, project_id: ProjectId = None
    ) -> list[JSON]:
        """Return the backfills of a batch export across all pages."""
        call = export_call(batch_export_id, "backfills/", project_id=project_id, expect=calls.BACKFILL)
        return self._collect(call)

    def find_batch_export_backfill(
        self,
        batch_export_id: str,
        *,
        bounds: tuple[Any, Any] | None = None,
        since: datetime | None = None,
        schedule: ExportSchedule | None = None,
        wait: float = 0.0,
        project_id: ProjectId = None,
    ) -> JSON | None:
        """:func:`find_backfill` on the export's backfills (``bounds``, ``since`` and ``schedule`` as there),
        waiting up to ``wait`` seconds for PostHog to show it; ``None`` when there is none by then.

        :param wait: seconds to keep looking.
        """

        def look() -> JSON | None:
            backfills = self.list_batch_export_backfills(batch_export_id, project_id=project_id)
            return find_backfill(backfills, bounds, since, schedule=schedule)

        until_found = row_wait_kwargs(wait, retry_if_result(lambda found: found is None))
        return Retrying(**until_found, retry_error_callback=lambda _state: None)(look)

    def _lost_backfill(self, error: PostHogWriteOutcomeUnknownError, export_id: str, **find: Any) -> JSON:
        # The backfill a create whose answer was lost made (``find``: as for find_batch_export_backfill).
        # None within the grace: ``error`` again (a second create makes another if the first commits late).
        backfill = self.find_batch_export_backfill(export_id, wait=self.backfill_row_grace, **find)
        if backfill is None:
            raise error
        message = "PostHog's answer was lost; backfill %s of batch export %s for %s - %s exists: using it."
        self.log.warning(message, backfill["id"], export_id, *find["bounds"])
        return {"backfill_id": backfill["id"]}

    # -- dashboards -------------------------------------------------------------------------------------

    def list_dashboards(
        self, *, search: str | None = None, project_id: ProjectId = None, page_size: int = 500, **filters: Any
    ) -> list[JSON]:
        """Return every dashboard of the project (pinned first, then by name), across all pages.

        :param search: at most 200 characters; older PostHog builds ignore it (docs/posthog-api.md §7.1).
        :param page_size: dashboards per request.
        :param filters: other PostHog list filters, e.g. ``tags`` or ``creation_mode``.
        """
        params: dict[str, Any] = {"limit": check_positive_int("page_size", page_size), **filters}
        if search is not None:
            params["search"] = check_non_empty_str("search", search, max_length=200)
        call = ApiCall(
            "dashboards/", "dashboards", params=params, project_id=project_id, expect=calls.DASHBOARD
        )
        return self._collect(call)

    def get_dashboard(self, dashboard_id: int | str, *, project_id: ProjectId = None) -> dict[str, Any]:
        """Return one dashboard."""
        return self._call(dashboard_call(dashboard_id, project_id=project_id, expect=calls.DASHBOARD))

    def create_dashboard(self, *, project_id: ProjectId = None, **fields: Any) -> JSON:
        """Create a dashboard; never re-sent, so an ambiguous failure raises PostHogWriteOutcomeUnknownError.

        :param fields: ``validation.DASHBOARD_FIELDS`` (``name`` required) and any other PostHog accepts.
        """
        body = dashboard_payload(**fields)
        call = ApiCall(
            method="POST",
            path="dashboards/",
            body=body,
            repeatable=False,
            resource=f"dashboard {body['name']!r}",
            project_id=project_id,
            expect=calls.DASHBOARD,
        )
        return self._call(call)

    def update_dashboard(
        self, dashboard_id: int | str, *, project_id: ProjectId = None, **fields: Any
    ) -> JSON:
        """Change some fields of a dashboard (PATCH) and return the whole dashboard as it now is.

        :param fields: the fields to change (``{"deleted": True}`` deletes it).
        """
        if not fields:
            raise ValueError("update_dashboard needs at least one field to change.")
        body = dashboard_payload(create=False, **fields)
        patch = dashboard_call(
            dashboard_id, method="PATCH", body=body, project_id=project_id, expect=calls.DASHBOARD
        )
        return self._call(patch)

    def list_dashboard_collaborators(
        self, dashboard_id: int | str, *, project_id: ProjectId = None
    ) -> list[JSON]:
        """Return the collaborators of a dashboard (PostHog sends them all at once, unpaginated)."""
        return self._call(
            dashboard_call(dashboard_id, "collaborators/", project_id=project_id, expect=calls.COLLABORATORS)
        )

    def add_dashboard_collaborator(
        self, dashboard_id: int | str, user_uuid: str, level: int = 37, *, project_id: ProjectId = None
    ) -> JSON:
        """Give a user edit access to a restricted dashboard.

        :param user_uuid: the user's UUID.
        :param level: 37 (can edit); PostHog accepts no other level for now.
        """
        user, level = check_uuid("user_uuid", user_uuid), check_choice("level", level, COLLABORATOR_LEVELS)
        call = dashboard_call(
            dashboard_id,
            "collaborators/",
            method="POST",
            body={"user_uuid": user, "level": level},
            repeatable=False,
            project_id=project_id,
            expect=calls.COLLABORATOR,
        )
        return self._call(call)

    def list_dashboard_access_controls(
        self, dashboard_id: int | str, *, project_id: ProjectId = None
    ) -> JSON:
        """Return a dashboard's access controls: ``{"access_controls": [...], "default_access_level", ...}``
        (empty without the access-control feature). Needs the key scope ``access_control:read``.
        """
        return self._call(
            dashboard_call(
                dashboard_id, "access_controls/", project_id=project_id, expect=calls.ACCESS_CONTROLS
            )
        )

    def set_dashboard_access_control(
        self,
        dashboard_id: int | str,
        *,
        access_level: str | None,
        organization_member: str | None = None,
        role: str | None = None,
        project_id: ProjectId = None,
    ) -> JSON | None:
        """Set a member's, a role's or (neither) the default access rule of a dashboard (a repeatable PUT);
        returns the rule stored, ``None`` if removed. Needs ``access_control:write``, the creator or an admin.

        :param access_level: ``"none"``, ``"viewer"``, ``"editor"``, ``"manager"``; ``None`` removes the rule.
        :param organization_member: the member's membership id (from :meth:`list_organization_members`).
        :param role: a role's UUID, instead of a member.
        """
        if organization_member is not None and role is not None:
            raise ValueError("An access rule names a member or a role, not both.")
        body: JSON = {"access_level": None}
        if access_level is not None:
            body["access_level"] = check_choice("access_level", access_level, DASHBOARD_ACCESS_LEVELS)
        for field, value in (("organization_member", organization_member), ("role", role)):
            if value is not None:
                body[field] = check_uuid(field, value)
        expect = calls.ACCESS_CONTROL_ROW
        put = dashboard_call(
            dashboard_id, "access_controls/", method="PUT", body=body, project_id=project_id, expect=expect
        )
        return self._call(put)

    # -- projects and organizations ---------------------------------------------------------------------

    def get_project(self, *, project_id: ProjectId = None) -> JSON:
        """Return the project (environment) record, with its ``organization`` id."""
        return self._call(ApiCall("", "the project", project_id=project_id))

    def get_organization(self, *, organization_id: str | None = None, project_id: ProjectId = None) -> JSON:
        """Return an organization, with its ``available_product_features``.

        :param organization_id: the organization's UUID (or ``@current``); default: the project's.
        """
        organization = self._organization_id(organization_id, project_id)
        call = ApiCall(f"organizations/{organization}/", f"organization {organization}", global_path=True)
        return self._call(call)

    def list_organization_members(
        self, *, organization_id: str | None = None, project_id: ProjectId = None
    ) -> list[JSON]:
        """Return every member of an organization, across all pages: ``{"id" (the membership id), "user":
        {"uuid", "email", ...}, "level"}``.

        :param organization_id: as for :meth:`get_organization`.
        """
        organization = self._organization_id(organization_id, project_id)
        path, resource = f"organizations/{organization}/members/", f"members of organization {organization}"
        call = ApiCall(path, resource, params={"limit": 100}, global_path=True, expect=calls.MEMBER)
        return self._collect(call)

    def _organization_id(self, organization_id: str | None, project_id: ProjectId) -> str:
        if organization_id == "@current":
            return organization_id
        if organization_id is not None:
            return check_uuid("organization_id", organization_id)
        organization = self.get_project(project_id=project_id).get("organization")
        if isinstance(organization, dict):  # older builds nest the organization record
            organization = organization.get("id")
        return check_uuid("the project's organization", organization)

    def ui_url(self, project_id: ProjectId, path: str) -> str | None:
        """Link to a page of PostHog's web app on the connection's host, e.g. ``dashboard/12``.

        :param project_id: project id; ``None`` means the connection's; no link for ``@current``.
        :param path: page path below ``/project/<id>/``.
        """
        project = self._project(self.settings, project_id)
        return f"{self.settings.base_url}/project/{project}/{path}" if project.isdigit() else None

    # -- connection check (Airflow's Test button, ``airflow connections test``) -------------------------

    def key_scopes(self) -> list[str] | None:
        """The scopes of the connection's personal API key, or ``None`` where PostHog cannot show them."""
        return _scopes(self._own_key())

    def _own_key(self) -> JSON | None:
        # The key's own record (label, scopes); None on a PostHog that cannot show it.
        call = ApiCall("personal_api_keys/@current/", "the personal API key", global_path=True)
        try:
            return self._call(call)
        except PostHogNotFoundError:
            return None  # an older PostHog without this endpoint
        except PostHogAuthError as error:
            if error.status_code == 403 and "personal api key access" in (error.detail or "").lower():
                return None
            raise

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: the key's scopes, then one project-scoped GET, without retries.

        :return: ``(ok, message)``; the message names every missing piece.
        """
        try:
            settings = self.settings
            # A button press must answer quickly: a hook of its own, without retries or long waits.
            timeout = min(settings.timeout, TEST_CONNECTION_TIMEOUT)
            with type(self)(self.posthog_conn_id, max_retries=0, timeout=timeout) as probe:
                return probe._check()
        except PostHogTransportError as error:
            return False, (
                f"Could not reach PostHog at {settings.host_label} within {TEST_CONNECTION_TIMEOUT:g} s: "
                f"{error.detail}. Check the connection's host and port, and that this machine can reach it."
            )
        except Exception as error:
            return False, str(error)

    def _check(self) -> tuple[bool, str]:
        settings, project, problems = self.settings, self.settings.project_id, []
        key = self._own_key()  # raises on an unreachable host or a rejected key
        scopes = _scopes(key)
        if missing := lacking_scopes(scopes, REQUIRED_SCOPES):
            problems.append(
                f"the personal API key lacks the scope{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (it has {', '.join(scopes or []) or 'none'}): the operators need "
                f"{', '.join(REQUIRED_SCOPES)}; edit the key in PostHog (Settings > Personal API keys)"
            )
        # Read something the key may read, so a missing scope is not reported twice.
        readable = [listing for scope, listing in _LISTINGS.items() if not lacking_scopes(scopes, [scope])]
        if project is None:
            problems.append(
                f"connection {settings.conn_id!r} has no extra 'project_id': set it to the project "
                "(environment) id, the number after /project/ in PostHog's URLs"
            )
        elif readable:
            call = ApiCall(*readable[0], params={"limit": 1}, project_id=project, expect=calls.page())
            try:
                self._call(call)
            except (PostHogAuthError, PostHogNotFoundError) as error:
                problems.append(f"project {project} cannot be read: {error}")
        where = f"PostHog at {settings.host_label}"
        if problems:
            return False, f"{where}: {'; '.join(problems)}."
        label = f" with key {key['label']!r}" if key and key.get("label") else ""
        scope_note = "its scopes cover" if key else "its scopes could not be read (older PostHog); it needs"
        lacking = lacking_scopes(scopes, ACCESS_SCOPES)
        note = f" Only {ACCESS_TASKS} also need {', '.join(lacking)}, which it lacks." if lacking else ""
        return True, (
            f"Connected to {where}{label}: project {project} is readable and {scope_note} "
            f"{', '.join(REQUIRED_SCOPES)}.{note}"
        )


class PostHogAsyncHook(
    AsyncClient, PostHogReads[Awaitable[JSON], Awaitable[list[JSON]], AsyncIterator[JSON]]
):
    """The reads of :class:`PostHogHook` for triggers, over ``httpx.AsyncClient``; the connection is read
    without blocking the event loop. Use it as an async context manager so its connections are closed.
    Its parameters are those of :class:`~.transport.AsyncClient`.
    """


#: What the operators and sensors need from a personal API key.
REQUIRED_SCOPES = ("batch_export:read", "batch_export:write", "dashboard:read", "dashboard:write")
#: What dashboard tasks that give access need besides; other tasks never need them.
ACCESS_SCOPES = ("access_control:write", "organization:read", "organization_member:read")
ACCESS_TASKS = "dashboard tasks that set editors, viewers or default_access"
#: Seconds the connection test waits to connect and for each answer.
TEST_CONNECTION_TIMEOUT = 5.0
# The listing the connection test reads with each scope, in order of preference.
_LISTINGS = {
    "batch_export:read": ("batch_exports/", "batch exports"),
    "dashboard:read": ("dashboards/", "dashboards"),
}


def _scopes(key: JSON | None) -> list[str] | None:
    scopes = key.get("scopes") if key else None
    return scopes if isinstance(scopes, list) else None


def lacking_scopes(scopes: list[str] | None, wanted: Iterable[str]) -> list[str]:
    """The ``wanted`` scopes that ``scopes`` do not grant; none when the scopes cannot be read (None)."""
    return [] if scopes is None else [scope for scope in wanted if not grants_scope(scopes, scope)]


def grants_scope(scopes: list[str], required: str) -> bool:
    """PostHog's rule: ``*`` grants every scope, ``<object>:write`` also grants ``<object>:read``."""
    obj, _, action = required.partition(":")
    return "*" in scopes or required in scopes or (action == "read" and f"{obj}:write" in scopes)
