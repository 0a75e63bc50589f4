"""Trigger that polls a PostHog batch export's log from the triggerer, for the deferrable sensor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.log_watch import WAITING, LogCursor, LogWatch, merge_streams
from airflow_provider_phenv.triggers._params import EVENT_STATUSES, check_hook_params
from airflow_provider_phenv.validation import check_project_id, check_uuid, format_timestamp, parse_timestamp

__all__ = ["EVENT_STATUSES", "PostHogBatchExportLogsTrigger"]

_STATUS_OF_OUTCOME = {"matched": "success", "failed": "failed"}


class PostHogBatchExportLogsTrigger(BaseTrigger):
    """
    Poll a batch export's log until an entry matches or fails, or the deadline passes.

    It sends GET requests only (a restarted triggerer may run it twice), over the async hook with
    the hook's retry policy. It fires exactly one event, ``{"status": ...}`` with a status from
    :data:`EVENT_STATUSES`, plus ``batch_export_id``, ``since`` and ``cursor``; ``entry`` (and
    ``reason`` for failures) on ``success``/``failed``, ``message`` on ``timeout``/``error``.
    All kwargs are plain values; ``serialize()`` reports the cursor reached so far, so a trigger
    rebuilt from it carries on without re-judging entries.

    :param batch_export_id: UUID of the batch export.
    :param since: only entries strictly after this ISO 8601 moment count.
    :param cursor: the sensor's cursor (``LogCursor.to_json()``); default: a fresh one at ``since``.
    :param level: see :class:`~airflow_provider_phenv.log_watch.LogWatch` for the criteria.
    :param posthog_conn_id: Airflow connection id of type ``posthog``.
    :param project_id: PostHog project id; default: the connection's.
    :param poll_interval: seconds between polls.
    :param end_time: UNIX time at which to fire ``timeout``; None to wait forever.
    :param first_poll_at: UNIX time of the first poll; None to poll at once. The sensor sets it one
        interval after its own poll, so a deferral does not read the log twice in a row.
    :param hook_params: keyword arguments for :class:`PostHogAsyncHook` (numbers only).
    """

    def __init__(
        self,
        *,
        batch_export_id: str,
        since: str,
        cursor: dict[str, Any] | None = None,
        level: str | Sequence[str] | None = None,
        message_pattern: str | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        failure_pattern: str | None = None,
        fail_on_levels: str | Sequence[str] | None = ("ERROR",),
        posthog_conn_id: str = PostHogAsyncHook.default_conn_name,
        project_id: int | str | None = None,
        poll_interval: float = 60.0,
        end_time: float | None = None,
        first_poll_at: float | None = None,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.batch_export_id = check_uuid("batch_export_id", batch_export_id)
        since_time = parse_timestamp("since", since)
        self.since = format_timestamp(since_time)
        # Validating here makes a bad kwarg fail when the task defers, not later in the triggerer.
        self.watch = LogWatch.from_params(
            level=level,
            message_pattern=message_pattern,
            search=search,
            instance_id=instance_id,
            failure_pattern=failure_pattern,
            fail_on_levels=fail_on_levels,
        )
        self.cursor = (
            LogCursor.start(since_time) if cursor is None else LogCursor.from_json(cursor)
        ).to_json()
        self.posthog_conn_id = posthog_conn_id
        self.project_id = None if project_id in (None, "") else check_project_id(project_id)
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or poll_interval < 0
        ):
            raise ValueError(f"Invalid poll_interval {poll_interval!r}: expected a non-negative number.")
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.hook_params = check_hook_params(hook_params)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_export_id": self.batch_export_id,
                "since": self.since,
                "cursor": self.cursor,
                **self.watch.to_params(),
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "first_poll_at": self.first_poll_at,
                "hook_params": dict(self.hook_params),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        """Poll until something decides; return the one event payload."""
        since = parse_timestamp("since", self.since)
        cursor = LogCursor.from_json(self.cursor)
        try:
            # Idle connections outlive the poll interval: every poll reuses one connection.
            idle = self.poll_interval + 30
            async with PostHogAsyncHook(self.posthog_conn_id, keepalive=idle, **self.hook_params) as hook:
                await self._sleep_until(self.first_poll_at)
                while True:
                    streams = [await self._fetch(hook, request) for request in self.watch.requests(cursor)]
                    outcome = self.watch.evaluate(merge_streams(streams), cursor, since)
                    cursor = outcome.cursor
                    self.cursor = cursor.to_json()
                    if outcome.new:
                        self.log.info(
                            "Batch export %s: %d new log entries, %s.",
                            self.batch_export_id,
                            outcome.new,
                            outcome.status,
                        )
                    if outcome.status != WAITING:
                        event = self._event(_STATUS_OF_OUTCOME[outcome.status], entry=outcome.entry)
                        if outcome.reason:
                            event["reason"] = outcome.reason
                        return event
                    if self.end_time is not None and time.time() >= self.end_time:
                        return self._event("timeout", message=self._timeout_message())
                    await self._sleep_until(time.time() + self.poll_interval)
        except PostHogError as error:
            # The hook already retried what is worth retrying (429, 5xx, dropped connections).
            self.log.error("Batch export %s: giving up reading the log: %s", self.batch_export_id, error)
            return self._event("error", message=str(error))
        except Exception as error:
            self.log.exception(
                "Batch export %s: unexpected error while polling the log", self.batch_export_id
            )
            return self._event("error", message=f"{type(error).__name__}: {error}")

    async def _sleep_until(self, moment: float | None) -> None:
        """Sleep until ``moment``, but never past the deadline (the last poll happens at it)."""
        if moment is None:
            return
        if self.end_time is not None:
            moment = min(moment, self.end_time)
        await asyncio.sleep(max(0.0, moment - time.time()))

    async def _fetch(self, hook: PostHogAsyncHook, request: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            entry
            async for entry in hook.iter_batch_export_logs(
                self.batch_export_id, project_id=self.project_id, **request
            )
        ]

    def _event(self, status: str, **fields: Any) -> dict[str, Any]:
        return {
            "status": status,
            "batch_export_id": self.batch_export_id,
            "since": self.since,
            "cursor": self.cursor,
            **fields,
        }

    def _timeout_message(self) -> str:
        return (
            f"Sensor has timed out: no log entry of batch export {self.batch_export_id} decided the wait "
            f"before the deadline (cursor at {self.cursor['after']}, {self.cursor['count']} entries judged)."
        )
