"""
The sync hook's endpoints for batch export runs and backfills (docs/posthog-api.md §6.9, §13.16).

Retrying a run and creating a backfill are not repeatable: after an ambiguous failure the backfill
is looked up instead of sent again, and a 429 ``too_many_concurrent_backfills`` is a wait for a free
slot, not a rate-limit retry.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tenacity import Retrying

from airflow_provider_phenv.errors import (
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks._calls import (
    RunFilters,
    export_call,
    runs_call,
)
from airflow_provider_phenv.hooks._retry import slot_wait_kwargs
from airflow_provider_phenv.run_watch import find_backfill
from airflow_provider_phenv.validation import (
    check_backfill_range,
    check_uuid,
)

if TYPE_CHECKING:
    # requests costs ~30 ms to import; DAG files that only build operators never need it.
    from typing_extensions import Unpack

from airflow_provider_phenv.hooks._sync import SyncClient


class RunsAndBackfills(SyncClient):
    """The runs and backfills endpoints of :class:`~airflow_provider_phenv.hooks.posthog.PostHogHook`."""

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
            :class:`~airflow_provider_phenv.hooks._calls.RunFilters`.
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
