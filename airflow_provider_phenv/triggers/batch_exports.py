"""Triggers that wait on PostHog batch exports from the triggerer, for the deferrable sensors."""

from __future__ import annotations

from typing import Any

from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.log_watch import LogCursor, LogWatch, merge_streams, outcome_event
from airflow_provider_phenv.run_watch import runs_wait
from airflow_provider_phenv.triggers.base import PostHogPollTrigger
from airflow_provider_phenv.validation import check_uuid, format_timestamp, parse_timestamp
from airflow_provider_phenv.waits import EVENT_STATUSES, WAITING

__all__ = ["EVENT_STATUSES", "PostHogBatchExportLogsTrigger", "PostHogBatchExportRunTrigger"]


class PostHogBatchExportLogsTrigger(PostHogPollTrigger):
    """
    Poll a batch export's log until an entry matches or fails, or the deadline passes.

    It fires exactly one event, ``{"status": ...}`` with a status from
    :data:`~airflow_provider_phenv.waits.EVENT_STATUSES`, plus ``batch_export_id``, ``since`` and
    ``cursor``; ``entry`` (and ``reason`` for failures) on ``success``/``failed``, ``message`` on
    ``timeout``/``error``. All kwargs are plain values; ``serialize()`` reports the cursor reached
    so far, so a trigger rebuilt from it carries on without re-judging entries.

    :param batch_export_id: UUID of the batch export.
    :param since: only entries strictly after this ISO 8601 moment count.
    :param criteria: what matches and what fails, as ``LogWatch.to_params()`` gives it.
    :param cursor: the sensor's cursor (``LogCursor.to_json()``); default: a fresh one at ``since``.
    :param kwargs: the polling options of :class:`~airflow_provider_phenv.triggers.base.PostHogPollTrigger`.
    """

    def __init__(
        self,
        *,
        batch_export_id: str,
        since: str,
        criteria: dict[str, Any] | None = None,
        cursor: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = check_uuid("batch_export_id", batch_export_id)
        since_time = parse_timestamp("since", since)
        self.since = format_timestamp(since_time)
        # Validating here makes a bad kwarg fail when the task defers, not later in the triggerer.
        self.watch = LogWatch.from_params(**(criteria or {}))
        self.cursor = (
            LogCursor.start(since_time) if cursor is None else LogCursor.from_json(cursor)
        ).to_json()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_export_id": self.batch_export_id,
                "since": self.since,
                "criteria": self.watch.to_params(),
                "cursor": self.cursor,
                **self.common_kwargs(),
            },
        )

    def about(self) -> str:
        return f"the log of batch export {self.batch_export_id}"

    def event_state(self) -> dict[str, Any]:
        return {"batch_export_id": self.batch_export_id, "since": self.since, "cursor": self.cursor}

    async def poll(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        cursor = LogCursor.from_json(self.cursor)
        streams = [await self._fetch(hook, request) for request in self.watch.requests(cursor)]
        outcome = self.watch.evaluate(merge_streams(streams), cursor, parse_timestamp("since", self.since))
        self.cursor = outcome.cursor.to_json()
        if outcome.new:
            self.log.info(
                "Batch export %s: %d new log entries, %s.", self.batch_export_id, outcome.new, outcome.status
            )
        if outcome.status == WAITING:
            return None
        return self.event(outcome.status, **outcome_event(outcome))

    async def _fetch(self, hook: PostHogAsyncHook, request: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            entry
            async for entry in hook.iter_batch_export_logs(
                self.batch_export_id, project_id=self.project_id, **request
            )
        ]

    def timeout_message(self) -> str:
        return (
            f"Sensor has timed out: no log entry of batch export {self.batch_export_id} decided the wait "
            f"before the deadline (cursor at {self.cursor['after']}, {self.cursor['count']} entries judged)."
        )


class PostHogBatchExportRunTrigger(PostHogPollTrigger):
    """
    Poll a batch export's runs until a backfill ends or a range is exported, or the deadline passes.

    The deferred side of :class:`~airflow_provider_phenv.sensors.batch_exports.PostHogBatchExportRunSensor`
    (``since`` and ``until``) and of the backfill waits (``backfill_id``). It reads only (a trigger
    may run twice after a triggerer restart); cancelling a backfill on timeout is the resuming
    task's job. It fires one event: ``status`` from :data:`~airflow_provider_phenv.waits.EVENT_STATUSES`,
    ``batch_export_id``, ``backfill_id``, and ``value`` and ``message`` (the task's result, or
    PostHog's errors) on ``success``/``failed``, ``message`` on ``timeout``/``error``.

    :param batch_export_id: UUID of the batch export.
    :param backfill_id: wait for this backfill to end.
    :param since: wait until ``[since, until)`` is exported (ISO 8601).
    :param until: see ``since``.
    :param kwargs: the polling options of :class:`~airflow_provider_phenv.triggers.base.PostHogPollTrigger`.
    """

    def __init__(
        self,
        *,
        batch_export_id: str,
        backfill_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait = runs_wait(batch_export_id, backfill_id=backfill_id, since=since, until=until)
        self._progress = ""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        wait = self.wait
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_export_id": wait.batch_export_id,
                "backfill_id": wait.backfill_id,
                "since": None if wait.since is None else format_timestamp(wait.since),
                "until": None if wait.until is None else format_timestamp(wait.until),
                **self.common_kwargs(),
            },
        )

    def about(self) -> str:
        what = f"backfill {self.wait.backfill_id}" if self.wait.backfill_id else "the runs"
        return f"{what} of batch export {self.wait.batch_export_id}"

    def event_state(self) -> dict[str, Any]:
        return {"batch_export_id": self.wait.batch_export_id, "backfill_id": self.wait.backfill_id}

    async def poll(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        outcome = await self.wait.poll_async(hook, self.project_id)
        if outcome.message != self._progress:
            self._progress = outcome.message
            self.log.info("%s", outcome.message)
        if outcome.status == WAITING:
            return None
        return self.event(outcome.status, **outcome.to_event())
