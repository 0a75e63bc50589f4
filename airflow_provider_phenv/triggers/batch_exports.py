"""Triggers that wait on PostHog batch exports in the triggerer, GET only (docs/waiting-and-operators.md)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.hooks.transport import within
from airflow_provider_phenv.validation import (
    check_bool,
    check_non_empty_str,
    check_project_id,
    check_seconds,
    check_uuid,
    format_timestamp,
    parse_timestamp,
)
from airflow_provider_phenv.waits import (
    ACTIVE_STATUSES,
    ERROR,
    EVENT_STATUSES,
    LATEST_RUNS,
    TIMEOUT,
    WAITING,
    check_hook_params,
    run_event,
)
from airflow_provider_phenv.waits.logs import LogCursor, LogWatch
from airflow_provider_phenv.waits.project_poll import ProjectPoll
from airflow_provider_phenv.waits.runs import SETTLE, RunEventWatch, check_statuses, runs_wait

__all__ = [
    "EVENT_STATUSES",
    "PostHogBatchExportLogsTrigger",
    "PostHogBatchExportRunEventTrigger",
    "PostHogBatchExportRunTrigger",
]


def _classpath(trigger: BaseTrigger) -> str:
    return f"{type(trigger).__module__}.{type(trigger).__qualname__}"


@dataclass(eq=False, repr=False, kw_only=True)
class PostHogPollTrigger(BaseTrigger):
    """Poll PostHog until :meth:`poll` returns an event, or the deadline passes (the polling base).

    :param posthog_conn_id: Airflow connection id of type ``posthog``.
    :param project_id: PostHog project id; default: the connection's.
    :param poll_interval: seconds between polls.
    :param end_time: UNIX time at which to fire ``timeout``; None to wait forever.
    :param first_poll_at: UNIX time of the first poll; None to poll at once.
    :param hook_params: keyword arguments for :class:`PostHogAsyncHook` (numbers only).
    """

    posthog_conn_id: str = PostHogAsyncHook.default_conn_name
    project_id: int | str | None = None
    poll_interval: float = 60.0
    end_time: float | None = None
    first_poll_at: float | None = None
    hook_params: dict[str, Any] = field(default_factory=dict)
    #: Seconds a poll may run past ``end_time`` before the trigger reports its timeout anyway.
    poll_grace: ClassVar[float] = 5.0

    def __post_init__(self) -> None:
        super().__init__()
        self.project_id = None if self.project_id in (None, "") else check_project_id(self.project_id)
        self.poll_interval = check_seconds("poll_interval", self.poll_interval, zero_ok=True)
        self.end_time = None if self.end_time is None else float(self.end_time)
        self.first_poll_at = None if self.first_poll_at is None else float(self.first_poll_at)
        self.hook_params = check_hook_params(self.hook_params)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return _classpath(self), asdict(self)

    def about(self) -> str:
        """What the wait is about, for log lines (``batch export <id>``)."""
        raise NotImplementedError

    async def poll(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        """Read PostHog once; return the event to fire (see :meth:`event`), or None to wait on."""
        raise NotImplementedError

    def event_state(self) -> dict[str, Any]:
        """What every event carries besides its status, e.g. the cursor reached."""
        return {}

    def timeout_message(self) -> str:
        return f"Sensor has timed out: nothing decided the wait on {self.about()} before the deadline."

    def next_poll_at(self) -> float | None:
        """When to poll next (UNIX time); None for at once, when :meth:`poll` itself waits."""
        return time.time() + self.poll_interval

    def event(self, status: str, **fields: Any) -> dict[str, Any]:
        """An event payload: the status, the subclass's state, then ``fields``."""
        return {"status": status, **self.event_state(), **fields}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        try:
            # Idle connections outlive the poll interval: every poll reuses one connection.
            idle = self.poll_interval + 30
            async with PostHogAsyncHook(self.posthog_conn_id, keepalive=idle, **self.hook_params) as hook:
                await self._sleep_until(self.first_poll_at)
                while True:
                    event = await self._poll_until_deadline(hook)
                    if event is not None:
                        return event
                    if self.end_time is not None and time.time() >= self.end_time:
                        return self.event(TIMEOUT, message=self.timeout_message())
                    await self._sleep_until(self.next_poll_at())
        except PostHogError as error:
            # The hook already retried what is worth retrying (429, 5xx, dropped connections).
            self.log.error("Giving up waiting on %s: %s", self.about(), error)
            return self.event(ERROR, message=str(error), final=isinstance(error, AirflowFailException))
        except Exception as error:
            self.log.exception("Unexpected error while waiting on %s", self.about())
            return self.event(ERROR, message=f"{type(error).__name__}: {error}")

    async def _poll_until_deadline(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        # A slow or endless listing cannot outlast end_time (plus poll_grace for the last poll).
        if self.end_time is None:
            return await self.poll(hook)
        try:
            remaining = max(self.end_time - time.time(), 0.0) + self.poll_grace
            return await within(remaining, self.poll(hook))
        except asyncio.TimeoutError:
            return self.event(TIMEOUT, message=self.timeout_message())

    async def _sleep_until(self, moment: float | None) -> None:
        # Never past the deadline: the last poll happens at it.
        if moment is not None:
            deadline = math.inf if self.end_time is None else self.end_time
            await asyncio.sleep(max(0.0, min(moment, deadline) - time.time()))


@dataclass(eq=False, repr=False, kw_only=True)
class PostHogBatchExportLogsTrigger(PostHogPollTrigger):
    """Poll a batch export's log until an entry matches or fails, or the deadline passes; one event.

    :param batch_export_id: UUID of the batch export.
    :param since: only entries strictly after this ISO 8601 moment count.
    :param criteria: what matches and what fails, as ``LogWatch.to_params()`` gives it.
    :param cursor: the sensor's cursor (``LogCursor.to_json()``); default: a fresh one at ``since``.
    :param kwargs: the polling options of :class:`PostHogPollTrigger`.
    """

    batch_export_id: str
    since: str
    criteria: dict[str, Any] | None = None
    cursor: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.batch_export_id = check_uuid("batch_export_id", self.batch_export_id)
        self._since = parse_timestamp("since", self.since)
        self.since = format_timestamp(self._since)
        # Checked here, so that a bad kwarg fails when the task defers, not later in the triggerer.
        self.watch = LogWatch.from_params(**(self.criteria or {}))
        self.criteria = self.watch.to_params()
        cursor = LogCursor.start(self._since) if self.cursor is None else LogCursor.from_json(self.cursor)
        self.cursor = cursor.to_json()

    def about(self) -> str:
        return f"the log of batch export {self.batch_export_id}"

    def event_state(self) -> dict[str, Any]:
        return {"batch_export_id": self.batch_export_id, "since": self.since, "cursor": self.cursor}

    async def poll(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        outcome = await self.watch.poll_async(
            hook, self.batch_export_id, self.project_id, LogCursor.from_json(self.cursor), self._since
        )
        self.cursor = outcome.cursor.to_json()
        if outcome.new:
            self.log.info(
                "Batch export %s: %d new log entries, %s.", self.batch_export_id, outcome.new, outcome.status
            )
        return None if outcome.status == WAITING else self.event(outcome.status, **outcome.to_event())

    def timeout_message(self) -> str:
        assert self.cursor is not None  # set by __post_init__
        return (
            f"Sensor has timed out: no log entry of batch export {self.batch_export_id} decided the wait "
            f"before the deadline (cursor at {self.cursor['after']}, {self.cursor['count']} entries judged)."
        )


class PostHogBatchExportRunTrigger(PostHogPollTrigger):
    """Poll a batch export's runs until a backfill ends or ``[since, until)`` is exported; one event.

    :param cancel_on_kill: cancel the backfill when a user ends the deferred task.
    :param kwargs: the polling options of :class:`PostHogPollTrigger`; the wait's go to ``runs_wait``.
    """

    def __init__(self, *, cancel_on_kill: bool = False, **kwargs: Any) -> None:
        polling = {option.name for option in fields(PostHogPollTrigger)}
        super().__init__(**{name: value for name, value in kwargs.items() if name in polling})
        self.cancel_on_kill = check_bool("cancel_on_kill", cancel_on_kill)
        self.wait = runs_wait(**{name: value for name, value in kwargs.items() if name not in polling})
        self._progress = ""
        self._project: ProjectPoll | None = None
        self._not_before = 0.0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The polling options, then the wait's (checked) and this trigger's own.
        classpath, kwargs = super().serialize()
        return classpath, {**kwargs, **self.wait.to_params(), "cancel_on_kill": self.cancel_on_kill}

    def about(self) -> str:
        what = f"backfill {self.wait.backfill_id}" if self.wait.backfill_id else "the runs"
        return f"{what} of batch export {self.wait.batch_export_id}"

    def event_state(self) -> dict[str, Any]:
        return {"batch_export_id": self.wait.batch_export_id, "backfill_id": self.wait.backfill_id}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Every run trigger of this triggerer on the project shares one read of its exports list; at
        # the start, the last one will do (so triggers started together make one read).
        self._not_before = time.time() - self.poll_interval
        poll = ProjectPoll.member(self.posthog_conn_id, self.project_id, self.poll_interval, self.hook_params)
        async with poll as self._project:
            async for event in super().run():
                yield event

    def next_poll_at(self) -> float | None:
        # A shared poll waits in listing() for the project's next read.
        return None if self._project is not None else super().next_poll_at()

    async def poll(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        listing = None
        if self._project is not None:
            listing = await self._project.listing(self._not_before)
            # The next read no later than the deadline, where the last poll happens (and newer than
            # this one, even at a zero interval).
            self._not_before = min(listing.started + max(self.poll_interval, 1e-3), self.end_time or math.inf)
        outcome = await self.wait.poll_async(hook, self.project_id, listing)
        if outcome.message != self._progress:
            self._progress = outcome.message
            self.log.info("%s", outcome.message)
        return None if outcome.status == WAITING else self.event(outcome.status, **outcome.to_event())

    async def on_kill(self) -> None:
        """Cancel the backfill: a user ended the deferred task."""
        export_id, backfill_id = self.wait.batch_export_id, self.wait.backfill_id
        if backfill_id is None or not self.cancel_on_kill:
            return
        self.log.warning("The task was ended by a user: cancelling %s.", self.about())
        # A backfill PostHog does not show yet cannot be cancelled: ask for 20 s, within Airflow's bound.
        try:
            async with PostHogAsyncHook(self.posthog_conn_id, **self.hook_params) as hook:
                await hook.cancel_batch_export_backfill(
                    export_id, backfill_id, project_id=self.project_id, row_timeout=20.0
                )
        except PostHogError as error:
            # A backfill that ended meanwhile cannot be cancelled.
            self.log.warning("Could not cancel backfill %s: %s", backfill_id, error)


@dataclass(eq=False, repr=False)
class PostHogBatchExportRunEventTrigger(BaseEventTrigger):
    """Fire one event per batch export run that newly reaches one of ``statuses``: for ``AssetWatcher``.

    Each payload is ``{"batch_export_id", "run_id", "status", "data_interval_start",
    "data_interval_end", "records_completed", "latest_error"}``; no run fires twice. Airflow's side of
    it: docs/airflow-internals.md, "Event triggers"; the shared poll: docs/waits.md.

    :param batch_export_id: UUID of the batch export.
    :param statuses: run statuses that fire (default ``("Completed",)``), e.g. ``("Failed", "TimedOut")``.
    :param poll_interval: seconds between polls (default 60).
    :param posthog_conn_id: Airflow connection id of type ``posthog``.
    :param project_id: PostHog project id; default: the connection's.
    :param shared_poll: share one read of the project's exports list with the triggerer's other waits.
    """

    batch_export_id: str
    statuses: str | Sequence[str] = ("Completed",)
    poll_interval: float = 60
    posthog_conn_id: str = PostHogAsyncHook.default_conn_name
    project_id: int | str | None = None
    shared_poll: bool = True

    def __post_init__(self) -> None:
        super().__init__()
        self.batch_export_id = check_uuid("batch_export_id", self.batch_export_id)
        self.statuses = check_statuses(self.statuses)
        self.poll_interval = check_seconds("poll_interval", self.poll_interval)
        self.posthog_conn_id = check_non_empty_str("posthog_conn_id", self.posthog_conn_id)
        self.project_id = None if self.project_id in (None, "") else check_project_id(self.project_id)
        self.shared_poll = check_bool("shared_poll", self.shared_poll)
        self._watch: RunEventWatch | None = None
        self._paused: bool | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The same at every parse: Airflow matches watchers by a hash of classpath and kwargs.
        return _classpath(self), asdict(self)

    def state_key(self) -> str:
        """The asset state store key of this watch (one asset may have several watchers)."""
        return f"phenv.run_events.{self.batch_export_id}.{'+'.join(sorted(self.statuses))}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = self._watch = await self._load()
        # The hook connects on its first request: in a shared poll, only when the list is not enough.
        hook = PostHogAsyncHook(self.posthog_conn_id, keepalive=self.poll_interval + 30)
        member = ProjectPoll.member(self.posthog_conn_id, self.project_id, self.poll_interval, {})
        async with hook, member if self.shared_poll else contextlib.nullcontext() as poll:
            not_before = time.time()
            while True:
                try:
                    if poll is not None:
                        listing = await poll.listing(not_before)
                        not_before = listing.started + self.poll_interval
                        export = listing.exports.get(self.batch_export_id)
                    else:
                        export = await hook.get_batch_export(self.batch_export_id, project_id=self.project_id)
                    self._note_pause(export)
                    fired = await self._poll(hook, watch, (export or {}).get("latest_runs"))
                except PostHogError as error:
                    # The hook already retried; the watch goes on at the next poll.
                    self.log.warning(
                        "Batch export %s: PostHog could not be read: %s", self.batch_export_id, error
                    )
                    fired = []
                for run in fired:
                    self.log.info(
                        "Batch export %s: run %s is %s.", self.batch_export_id, run["id"], run["status"]
                    )
                    yield TriggerEvent(run_event(self.batch_export_id, run))
                if poll is None:
                    await asyncio.sleep(self.poll_interval)

    async def _poll(
        self, hook: PostHogAsyncHook, watch: RunEventWatch, latest: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        """One poll: start the watch or judge new runs."""
        now = datetime.now(timezone.utc)
        if not watch.started:
            watch.start(now, await self._starting_runs(hook, now, latest))
            self.log.info(
                "Watching batch export %s for runs reaching %s; %d runs still active.",
                self.batch_export_id,
                "/".join(self.statuses),
                len(watch.tracked),
            )
            await self._save(watch)
            return []
        if latest is not None and watch.covers(latest):
            runs = latest
        else:
            runs = await self._runs(hook, after=watch.lower_bound())
        before = watch.to_json()
        fired = watch.judge(runs, now)
        if watch.to_json() != before:
            # Saved first: a crash after this can lose an event, never repeat one.
            await self._save(watch)
        return fired

    async def _starting_runs(
        self, hook: PostHogAsyncHook, now: datetime, latest: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        """The runs active now and those created in the last minutes (what ``RunEventWatch.start`` needs)."""
        if latest is not None and len(latest) < LATEST_RUNS:
            return latest  # every run of the export
        active = await self._runs(hook, status=[status.value for status in ACTIVE_STATUSES])
        if latest is not None and any(
            parse_timestamp("created_at", run["created_at"]) < now - SETTLE for run in latest
        ):
            return [*active, *latest]
        return [*active, *await self._runs(hook, after=now - SETTLE)]

    def _note_pause(self, export: dict[str, Any] | None) -> None:
        # The watch goes on either way.
        if export is None or bool(export.get("paused")) == self._paused:
            return
        paused = bool(export.get("paused"))
        if paused:
            self.log.warning(
                "Batch export %s is paused (last_paused_at %s; PostHog pauses an export by itself after "
                "repeated failures): no runs will come until it is unpaused. Still watching.",
                self.batch_export_id,
                export.get("last_paused_at"),
            )
        elif self._paused is not None:
            self.log.info("Batch export %s is unpaused again.", self.batch_export_id)
        self._paused = paused

    async def _runs(self, hook: PostHogAsyncHook, **filters: Any) -> list[dict[str, Any]]:
        return await hook.list_batch_export_runs(self.batch_export_id, project_id=self.project_id, **filters)

    def _state_accessors(self) -> list[Any]:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        # One accessor per watched asset, by name and by URI; anything else with aget/aset as it is.
        found = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
        return found or [store]

    async def _load(self) -> RunEventWatch:
        for accessor in self._state_accessors():
            try:
                value = await accessor.aget(self.state_key())
            except Exception as error:
                self.log.warning("Could not read the asset state store: %s", error)
                continue
            watch = RunEventWatch.from_json(self.statuses, value)
            if watch.started:
                self.log.info(
                    "Batch export %s: carrying on from the asset state store (watching since %s).",
                    self.batch_export_id,
                    watch.since,
                )
                return watch
        return RunEventWatch(frozenset(self.statuses))

    async def _save(self, watch: RunEventWatch) -> None:
        state = watch.to_json()
        for accessor in self._state_accessors():
            try:
                await accessor.aset(self.state_key(), state)
            except Exception as error:
                self.log.warning("Could not write the asset state store: %s", error)
