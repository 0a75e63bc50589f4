"""
The sync hook's endpoints for batch export runs and backfills (docs/posthog-api.md §6.9).

Retrying a run and creating a backfill are not repeatable: after an ambiguous failure the backfill
is looked up instead of sent again, and a 429 ``too_many_concurrent_backfills`` is a wait for a free
slot, not a rate-limit retry. PostHog answers a create before its workflow writes the backfill's
row, so a new backfill is 404 (and missing from the list) for a moment: lookups of a backfill
just started wait for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, retry_if_result

from airflow_provider_phenv.errors import (
    PostHogBackfillNotVisibleError,
    PostHogNotFoundError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks import calls
from airflow_provider_phenv.hooks.calls import (
    ApiCall,
    RunFilters,
    export_call,
    run_call,
    runs_call,
)
from airflow_provider_phenv.hooks.retry import row_wait_kwargs, slot_wait_kwargs
from airflow_provider_phenv.hooks.transport import SyncClient
from airflow_provider_phenv.validation import (
    ExportSchedule,
    backfill_moment,
    check_backfill_range,
    check_uuid,
)

if TYPE_CHECKING:
    # Only type checkers read ``Unpack`` (annotations are not evaluated); typing has it from 3.11.
    from typing_extensions import Unpack

#: Seconds a backfill PostHog accepted may stay invisible: its row is written by the backfill
#: workflow's first activity, after the 201 (docs/posthog-api.md §6.9).
BACKFILL_ROW_GRACE = 300.0


def find_backfill(
    backfills: list[dict[str, Any]],
    bounds: tuple[Any, Any] | None,
    since: datetime | None,
    *,
    schedule: ExportSchedule | None = None,
    skew: float = 60.0,
) -> dict[str, Any] | None:
    """
    The newest backfill over exactly ``bounds`` created at or after ``since``, if any.

    :param backfills: the export's backfills as PostHog lists them.
    :param bounds: ``(start_at, end_at)`` as sent or as a run's data interval (dates or
        datetimes); ``None`` for any range.
    :param since: when the request that may have made it was sent; ``None`` for any time.
    :param schedule: the export's schedule: PostHog stores a date bound as that day's start in
        the export's timezone (default: midnight UTC).
    :param skew: seconds of clock difference between this machine and PostHog to allow.
    """
    wanted = None if bounds is None else tuple(backfill_moment(bound, schedule) for bound in bounds)
    earliest = None if since is None else since.timestamp() - skew

    def created(backfill: dict[str, Any]) -> float:
        moment = backfill_moment(backfill.get("created_at"))
        return 0.0 if moment is None else moment.timestamp()

    matches = [
        backfill
        for backfill in backfills
        if (
            wanted is None
            or (backfill_moment(backfill.get("start_at")), backfill_moment(backfill.get("end_at"))) == wanted
        )
        and (earliest is None or created(backfill) >= earliest)
    ]
    return max(matches, key=created, default=None)


class RunsAndBackfills(SyncClient):
    """The runs and backfills endpoints of :class:`~airflow_provider_phenv.hooks.posthog.PostHogHook`."""

    #: Seconds to wait for a backfill PostHog accepted to show (its row comes after the answer).
    backfill_row_grace: float = BACKFILL_ROW_GRACE

    def get_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Return one run of a batch export (of any age: PostHog hides older runs unless asked).

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        return self._call(run_call(batch_export_id, run_id, project_id=project_id))

    def list_batch_export_runs(
        self, batch_export_id: str, *, project_id: int | str | None = None, **filters: Unpack[RunFilters]
    ) -> list[dict[str, Any]]:
        """
        Return the runs of a batch export, newest first, across all pages.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        :param filters: ``status``, ``after``, ``before``: see
            :class:`~airflow_provider_phenv.hooks.calls.RunFilters`.
        """
        return list(self._paginate(runs_call(batch_export_id, project_id=project_id, **filters)))

    def retry_batch_export_run(
        self,
        batch_export_id: str,
        run_id: str,
        *,
        project_id: int | str | None = None,
        row_timeout: float | None = None,
    ) -> dict[str, Any]:
        """
        Run a run's interval again; PostHog does it as a backfill.

        PostHog answers with the backfill's workflow id, not a backfill id: the backfill gets its
        id when its workflow writes its row, a moment later. This waits for that row (over the
        run's data interval) and returns ``{"backfill_id": <backfill UUID>, "workflow_id": <PostHog's
        answer, or None when it was lost>}``. Never re-sent: when PostHog's answer is lost, the
        backfill is looked up instead.

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        :param row_timeout: seconds to wait for the backfill to become visible; default
            :attr:`backfill_row_grace`.
        :raises PostHogBackfillNotVisibleError: PostHog started it, but it did not show in time.
        """
        row_timeout = self.backfill_row_grace if row_timeout is None else row_timeout
        requested_at = datetime.now(timezone.utc)
        call = run_call(
            batch_export_id,
            run_id,
            "retry/",
            method="POST",
            repeatable=False,
            project_id=project_id,
            expect=calls.BACKFILL_STARTED,
        )
        run = None
        try:
            workflow_id = self._call(call).get("backfill_id")
        except PostHogWriteOutcomeUnknownError as error:
            run = self.get_batch_export_run(batch_export_id, run_id, project_id=project_id)
            bounds = (run.get("data_interval_start"), run.get("data_interval_end"))
            made = self._backfill_made_since(batch_export_id, bounds, requested_at, project_id, error)
            return {"backfill_id": made["backfill_id"], "workflow_id": None}
        run = run or self.get_batch_export_run(batch_export_id, run_id, project_id=project_id)
        bounds = (run.get("data_interval_start"), run.get("data_interval_end"))
        backfill = self.find_batch_export_backfill(
            batch_export_id, bounds=bounds, since=requested_at, wait=row_timeout, project_id=project_id
        )
        if backfill is None:
            raise PostHogBackfillNotVisibleError(
                f"PostHog started the retry of run {run_id} of batch export {batch_export_id} "
                f"(workflow {workflow_id}), but no backfill over {bounds[0]} - {bounds[1]} appeared "
                f"within {row_timeout:.0f} s."
            )
        return {"backfill_id": str(backfill["id"]), "workflow_id": workflow_id}

    def cancel_batch_export_run(
        self, batch_export_id: str, run_id: str, *, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """
        Cancel a Starting or Running run (PostHog answers 400 for any other status).

        :param batch_export_id: the batch export's UUID.
        :param run_id: the run's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        call = run_call(batch_export_id, run_id, "cancel/", method="POST", project_id=project_id)
        return self._call(call)

    def create_batch_export_backfill(
        self,
        batch_export_id: str,
        *,
        start_at: Any,
        end_at: Any,
        project_id: int | str | None = None,
        export: Mapping[str, Any] | None = None,
        slot_timeout: float = 900.0,
        slot_poll_interval: float = 30.0,
    ) -> dict[str, Any]:
        """
        Start a backfill of ``[start_at, end_at)``. Returns ``{"backfill_id"}``.

        PostHog makes one run per whole export interval. Daily and weekly exports take dates only,
        read at the start of the export's day in its timezone; a weekly date must fall on the
        export's weekday: both are checked here, so the export is read first unless ``export`` is
        given. Never re-sent: when PostHog's answer is lost, the backfill is looked up instead.
        When PostHog already runs as many backfills as it allows (429
        ``too_many_concurrent_backfills``), this waits for a free slot. The new backfill may be
        404 for a moment: see :meth:`get_batch_export_backfill`'s ``row_timeout``.

        :param batch_export_id: the batch export's UUID.
        :param start_at: first moment to export: a date, an aware datetime (for a daily or weekly
            export: at midnight UTC or at the start of the export's day), or ISO 8601 text.
        :param end_at: the moment after the last one to export; not in the future.
        :param project_id: project/environment id; default from the connection.
        :param export: the export as :meth:`get_batch_export` returns it, if already read.
        :param slot_timeout: seconds to wait for a free backfill slot before giving up.
        :param slot_poll_interval: seconds between two tries for a slot.
        """
        check_backfill_range(start_at, end_at)  # bad input fails before the export is read
        if export is None:
            export = self._call(
                export_call(batch_export_id, project_id=project_id, expect=calls.BATCH_EXPORT)
            )
        schedule = ExportSchedule.of(export)
        start, end = check_backfill_range(start_at, end_at, schedule=schedule)
        call = export_call(
            batch_export_id,
            "backfills/",
            method="POST",
            body={"start_at": start, "end_at": end},
            repeatable=False,
            project_id=project_id,
            expect=calls.BACKFILL_STARTED,
        )
        requested_at = datetime.now(timezone.utc)
        for attempt in Retrying(**slot_wait_kwargs(slot_timeout, slot_poll_interval, self.log)):
            with attempt:
                try:
                    return self._call(call)
                except PostHogWriteOutcomeUnknownError as error:
                    return self._backfill_made_since(
                        batch_export_id, (start, end), requested_at, project_id, error, schedule
                    )
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def get_batch_export_backfill(
        self,
        batch_export_id: str,
        backfill_id: str,
        *,
        project_id: int | str | None = None,
        row_timeout: float = 0.0,
    ) -> dict[str, Any]:
        """
        Return one backfill, with its ``status`` and ``progress`` (``total_runs``, ``finished_runs``).

        :param batch_export_id: the batch export's UUID.
        :param backfill_id: the backfill's UUID.
        :param project_id: project/environment id; default from the connection.
        :param row_timeout: seconds to keep asking while PostHog answers 404, for a backfill it has
            just accepted (its row comes a moment after the 201).
        """
        tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/"
        call = export_call(batch_export_id, tail, project_id=project_id, expect=calls.BACKFILL)
        return self._call_once_visible(call, row_timeout)

    def list_batch_export_backfills(
        self, batch_export_id: str, *, project_id: int | str | None = None
    ) -> list[dict[str, Any]]:
        """
        Return the backfills of a batch export across all pages.

        :param batch_export_id: the batch export's UUID.
        :param project_id: project/environment id; default from the connection.
        """
        call = export_call(batch_export_id, "backfills/", project_id=project_id, expect=calls.BACKFILL)
        return list(self._paginate(call))

    def find_batch_export_backfill(
        self,
        batch_export_id: str,
        *,
        bounds: tuple[Any, Any] | None = None,
        since: datetime | None = None,
        schedule: ExportSchedule | None = None,
        wait: float = 0.0,
        project_id: int | str | None = None,
    ) -> dict[str, Any] | None:
        """
        The newest backfill over ``bounds`` created since ``since``, waiting up to ``wait`` seconds
        for PostHog to show it (a backfill's row comes a moment after the request that started
        it). ``None`` when there is none by then.

        :param batch_export_id: the batch export's UUID.
        :param bounds: ``(start_at, end_at)`` as sent or as a run's data interval; None for any.
        :param since: when the request that started it was sent; None for any time.
        :param schedule: the export's schedule, to read date bounds as PostHog stores them.
        :param wait: seconds to keep looking.
        :param project_id: project/environment id; default from the connection.
        """
        retrying = Retrying(
            **row_wait_kwargs(wait, retry_if_result(lambda found: found is None)),
            retry_error_callback=lambda _state: None,
        )
        return retrying(
            lambda: find_backfill(
                self.list_batch_export_backfills(batch_export_id, project_id=project_id),
                bounds,
                since,
                schedule=schedule,
            )
        )

    def cancel_batch_export_backfill(
        self,
        batch_export_id: str,
        backfill_id: str,
        *,
        project_id: int | str | None = None,
        row_timeout: float = 0.0,
    ) -> dict[str, Any]:
        """
        Cancel a running backfill and its active runs.

        :param batch_export_id: the batch export's UUID.
        :param backfill_id: the backfill's UUID.
        :param project_id: project/environment id; default from the connection.
        :param row_timeout: seconds to keep trying while PostHog answers 404, for a backfill it has
            just accepted (it cannot be cancelled before its row exists).
        """
        tail = f"backfills/{check_uuid('backfill_id', backfill_id)}/cancel/"
        call = export_call(batch_export_id, tail, method="POST", project_id=project_id)
        return self._call_once_visible(call, row_timeout)

    def _call_once_visible(self, call: ApiCall, row_timeout: float) -> dict[str, Any]:
        """Send ``call``, again while PostHog answers 404 for up to ``row_timeout`` seconds."""
        # A backfill PostHog has just accepted is 404 until its workflow writes its row.
        not_yet = retry_if_exception_type(PostHogNotFoundError)
        for attempt in Retrying(**row_wait_kwargs(row_timeout, not_yet)):
            with attempt:
                return self._call(call)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _backfill_made_since(
        self,
        batch_export_id: str,
        bounds: tuple[Any, Any],
        requested_at: datetime,
        project_id: int | str | None,
        error: PostHogWriteOutcomeUnknownError,
        schedule: ExportSchedule | None = None,
    ) -> dict[str, Any]:
        """
        The backfill of ``bounds`` that a create whose answer was lost made, as ``{"backfill_id"}``.

        Raises ``error`` again when none shows within the row grace: sending the create again could
        still make a second one if the first commits late.
        """
        backfill = self.find_batch_export_backfill(
            batch_export_id,
            bounds=bounds,
            since=requested_at,
            schedule=schedule,
            wait=self.backfill_row_grace,
            project_id=project_id,
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
