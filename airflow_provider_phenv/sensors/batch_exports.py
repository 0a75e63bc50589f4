"""Sensors that wait on PostHog batch exports, in poke, reschedule or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.field_checks import extend, unless_empty
from airflow_provider_phenv.lineage import PostHogLineageMixin
from airflow_provider_phenv.sensors.base import PostHogWaitSensor
from airflow_provider_phenv.validation import check_uuid, format_timestamp, parse_timestamp
from airflow_provider_phenv.waits import FAILED, SUCCESS, PostHogWaitError
from airflow_provider_phenv.waits.logs import (
    CRITERIA_CHECKS,
    DEFAULT_SETTLE,
    LogOutcome,
    LogWatch,
    WatchState,
    describe_failure,
    outcome_from_event,
)
from airflow_provider_phenv.waits.runs import INTERVAL_SECONDS, RunsOutcome, RunsWait, report_runs

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger


class PostHogBatchExportLogError(PostHogError):
    """The batch export's log holds an entry that fails the sensor; the message quotes it."""


class PostHogBatchExportLogsWatchError(PostHogWaitError):
    """The deferred wait could not read the log (PostHog kept failing) or got an invalid event."""


class PostHogBatchExportRunWaitError(PostHogWaitError):
    """The deferred wait could not read the runs (PostHog kept failing) or got an invalid event."""


def aware_timestamp(name: str, value: Any) -> datetime:
    """A moment with a timezone: a naive one would be read in a guessed timezone, hours off."""
    return parse_timestamp(name, value, naive_ok=False)


class PostHogBatchExportLogsSensor(PostHogWaitSensor):
    """
    Wait until a PostHog batch export's log holds a matching entry; fail at once on a failing one.

    Entries are judged oldest first and the first deciding entry wins. Each poll reads only the
    entries newer than the last one judged, so a poll with no news is one small request.

    :param batch_export_id: UUID of the batch export. (templated)
    :param level: level(s) a matching entry has, e.g. ``"INFO"`` or ``["INFO", "WARNING"]``. (templated)
    :param message_pattern: regular expression searched (``re.search``) in the message. (templated)
    :param search: case-insensitive substring the message must contain; sent to PostHog to shrink
        answers (unless it could hide a failing entry). (templated)
    :param instance_id: only entries of this Temporal workflow run count, for matching and failing;
        PostHog's ``instance_id``, not a run id from ``runs/`` (docs/posthog-api.md §6.3). (templated)
    :param since: only entries strictly after this moment count (datetime or ISO 8601). Default:
        when the task first started, kept across reschedules, deferral and (Airflow >= 3.3) retries.
        (templated)
    :param failure_pattern: regular expression; an entry whose message contains it fails the task.
        (templated)
    :param fail_on_levels: levels whose entries fail the task; ``()`` for none. (templated)
    :param settle: how long (seconds or a ``timedelta``) PostHog may take to reveal an entry after
        newer ones. PostHog's log pipeline does not keep timestamp order, so every poll reads this
        window behind the clock again and judges each entry once, whenever it shows up; an entry
        revealed later than this is missed. Default 5 minutes. (templated)
    :param kwargs: ``posthog_conn_id``, ``project_id``, ``deferrable``, ``poll_interval`` and
        ``hook_params`` as for :class:`~airflow_provider_phenv.sensors.base.PostHogWaitSensor`,
        and every ``BaseSensorOperator`` argument.
    :return: ``{"batch_export_id", "entry": {timestamp, level, message, instance_id}, "cursor"}``.
    """

    template_fields: Sequence[str] = (
        "batch_export_id",
        *CRITERIA_CHECKS,
        "since",
        *PostHogWaitSensor.template_fields,
    )
    field_checks = extend(
        PostHogWaitSensor.field_checks,
        batch_export_id=check_uuid,
        since=unless_empty(parse_timestamp),
        **CRITERIA_CHECKS,
    )
    wait_error = PostHogBatchExportLogsWatchError

    def __init__(
        self,
        *,
        batch_export_id: str,
        level: str | Sequence[str] | None = None,
        message_pattern: str | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        since: datetime | str | None = None,
        failure_pattern: str | None = None,
        fail_on_levels: str | Sequence[str] | None = ("ERROR",),
        settle: timedelta | float = DEFAULT_SETTLE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.level = level
        self.message_pattern = message_pattern
        self.search = search
        self.instance_id = instance_id
        self.since = since
        self.failure_pattern = failure_pattern
        self.fail_on_levels = fail_on_levels
        self.settle = settle
        self._state: WatchState | None = None
        # Literal values are checked now so a typo fails when the DAG is parsed; templated ones are
        # checked after rendering, still before any request. No I/O here.
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        values["watch"] = LogWatch.from_checked(values)

    def about(self) -> str:
        return f"the log of batch export {self.inputs['batch_export_id']}"

    def start_wait(self) -> None:
        self._state = None
        self._outcome: LogOutcome | None = None

    def _fingerprint(self) -> str:
        """Digest of the criteria and scope, to tell whether a saved cursor still applies."""
        return self.inputs["watch"].fingerprint(self.inputs["batch_export_id"], self.inputs["project_id"])

    # -- state: since and cursor -----------------------------------------------------------------

    def _watch_state(self, context: Context) -> WatchState:
        if self._state is None:
            self._state = WatchState.load(
                context,
                explicit_since=self.inputs["since"],
                fingerprint=self._fingerprint(),
                default_since=lambda: self._default_since(context),
                log=self.log,
            )
        return self._state

    def _default_since(self, context: Context) -> datetime:
        """When this task first started (used when no ``since`` is given and none was saved)."""
        return self.task_started_at(context)

    # -- one poll in the worker ------------------------------------------------------------------

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not self.inputs:
            self.begin()
        export_id, watch = self.inputs["batch_export_id"], self.inputs["watch"]
        state = self._watch_state(context)
        self.log.info(
            "Reading the log of batch export %s after %s.", export_id, format_timestamp(state.cursor.after)
        )
        outcome = watch.poll(self.hook, export_id, self.inputs["project_id"], state.cursor, state.since)
        state.cursor = outcome.cursor
        # The settled mark moves with the clock on every poll; the store is written only for news
        # (or the first time). A saved older mark is still consistent: the entries it re-reads are
        # all in its digests, since nothing was judged after it was saved.
        if outcome.new or state.saved is None:
            state.save(context, log=self.log)
        self.log.info("Batch export %s: %d new log entries, %s.", export_id, outcome.new, outcome.status)
        return self._conclude(outcome)

    def _conclude(self, outcome: LogOutcome) -> bool | PokeReturnValue:
        """Turn an outcome into the sensor's result: same XCom and same error text in every mode."""
        export_id = self.inputs["batch_export_id"]
        if outcome.status == FAILED:
            assert outcome.entry is not None  # a decision always names its entry
            raise PostHogBatchExportLogError(describe_failure(export_id, outcome.entry, outcome.reason))
        if outcome.status == SUCCESS:
            self.log.info("Batch export %s log entry matched: %s", export_id, outcome.entry)
            value = {"batch_export_id": export_id, "entry": outcome.entry, "cursor": outcome.cursor.to_json()}
            return PokeReturnValue(True, value)
        return False

    # -- deferrable ------------------------------------------------------------------------------

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        state = self._watch_state(context)
        state.save(context, log=self.log)
        self.log.info("Log cursor of %s: %s.", self.about(), state.cursor.to_json())
        # Imported here: Airflow's trigger machinery is only needed by a task that defers.
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger

        return PostHogBatchExportLogsTrigger(
            batch_export_id=self.inputs["batch_export_id"],
            since=format_timestamp(state.since),
            criteria=self.inputs["watch"].to_params(),
            cursor=state.cursor.to_json(),
            **poll,
        )

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> None:
        try:
            since, self._outcome = outcome_from_event(event)
        except ValueError as error:
            raise PostHogBatchExportLogsWatchError(
                f"Malformed {event['status']!r} trigger event for batch export "
                f"{self.inputs['batch_export_id']}: {error}"
            ) from None
        self._state = WatchState(since=since, cursor=self._outcome.cursor, fingerprint=self._fingerprint())
        self._state.save(context, log=self.log)

    def conclude_event(self, context: Context, event: dict[str, Any]) -> Any:
        assert self._outcome is not None  # resume_from_event ran first
        concluded = self._conclude(self._outcome)
        assert isinstance(concluded, PokeReturnValue)  # SUCCESS, as FAILED raised
        return concluded.xcom_value


class PostHogBatchExportRunError(PostHogError):
    """A run that PostHog will not complete covers data the sensor waits for; the message quotes it."""


class PostHogBatchExportRunSensor(PostHogLineageMixin, PostHogWaitSensor):
    """
    Wait until PostHog has exported a batch export's data up to ``until``.

    It succeeds when completed runs cover every moment of ``[since, until)`` — a failed interval
    that PostHog retried successfully counts — and fails at once, quoting PostHog's
    ``latest_error``, when a run over that range ended Failed, FailedBilling, Cancelled, Terminated
    or TimedOut and no completed or still-active run covers it. Each poll is one small request:
    the runs created since ``since``.

    :param batch_export_id: UUID of the batch export. (templated)
    :param until: the moment the data must be exported up to, e.g. ``"{{ data_interval_end }}"``;
        a datetime or ISO 8601 text with a timezone. (templated)
    :param since: start of the range; default: one export interval before ``until`` (one request
        to read the export's interval). (templated)
    :param kwargs: ``posthog_conn_id``, ``project_id``, ``deferrable``, ``poll_interval`` and
        ``hook_params`` as for :class:`~airflow_provider_phenv.sensors.base.PostHogWaitSensor`,
        and every ``BaseSensorOperator`` argument.
    :return: ``{"batch_export_id", "runs": [{"id", "status", "data_interval_start",
        "data_interval_end", "records_completed"}], "records_completed"}``.
    """

    template_fields: Sequence[str] = ("batch_export_id", "until", "since", *PostHogWaitSensor.template_fields)
    field_checks = extend(
        PostHogWaitSensor.field_checks,
        batch_export_id=check_uuid,
        until=aware_timestamp,
        since=unless_empty(aware_timestamp),
    )
    wait_error = PostHogBatchExportRunWaitError

    def __init__(
        self,
        *,
        batch_export_id: str,
        until: datetime | str,
        since: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.until = until
        self.since = since
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        since, until = values.get("since"), values.get("until")
        if since is not None and until is not None and since >= until:
            raise ValueError(f"Invalid since {self.since!r}: it must be before until {self.until!r}.")

    def about(self) -> str:
        return f"the runs of batch export {self.inputs['batch_export_id']}"

    def start_wait(self) -> None:
        self._wait: RunsWait | None = None
        self._export: dict[str, Any] | None = None
        self._outcome: RunsOutcome | None = None
        self._progress = ""

    def _runs_wait(self, context: Context) -> RunsWait:
        """The range to wait for; the default ``since`` costs one read of the export's interval."""
        if self._wait is None:
            export_id, until, since = (
                self.inputs["batch_export_id"],
                self.inputs["until"],
                self.inputs["since"],
            )
            if since is None:
                export = self._export = self.hook.get_batch_export(
                    export_id, project_id=self.inputs["project_id"]
                )
                seconds = INTERVAL_SECONDS.get(str(export.get("interval")), 3600)
                since = until - timedelta(seconds=seconds)
                self.log.info(
                    "Batch export %s runs every %s: waiting for %s onwards.",
                    export_id,
                    export.get("interval"),
                    since,
                )
            # A pause of the export after the task started fails the wait (see RunsWait).
            started = self.task_started_at(context)
            self._wait = RunsWait(export_id, since=since, until=until, started_at=started)
        return self._wait

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not self.inputs:
            self.begin()
        return self._conclude(context, self._runs_wait(context).poll(self.hook, self.inputs["project_id"]))

    def _conclude(self, context: Context, outcome: RunsOutcome) -> bool | PokeReturnValue:
        """Turn an outcome into the sensor's result: same XCom and same error text in every mode."""
        if outcome.message != self._progress:
            self._progress = outcome.message
            self.log.info("%s", outcome.message)
        if outcome.status == FAILED:
            raise PostHogBatchExportRunError(outcome.message)
        if outcome.status == SUCCESS:
            inputs = self.inputs
            export_id, project_id = inputs["batch_export_id"], inputs["project_id"]
            report_runs(self, context, self.hook, export_id, project_id, outcome.runs, export=self._export)
            return PokeReturnValue(True, outcome.value)
        return False

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger

        wait = self._runs_wait(context)
        assert wait.since is not None and wait.until is not None and wait.started_at is not None
        return PostHogBatchExportRunTrigger(
            batch_export_id=wait.batch_export_id,
            since=format_timestamp(wait.since),
            until=format_timestamp(wait.until),
            started_at=format_timestamp(wait.started_at),
            **poll,
        )

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> None:
        if event["status"] in (SUCCESS, FAILED):
            try:
                self._outcome = RunsOutcome.from_event(event)
            except ValueError as error:
                raise PostHogBatchExportRunWaitError(
                    f"Malformed {event['status']!r} trigger event for {self.about()}: {error}"
                ) from None

    def conclude_event(self, context: Context, event: dict[str, Any]) -> Any:
        assert self._outcome is not None  # resume_from_event ran first
        concluded = self._conclude(context, self._outcome)
        assert isinstance(concluded, PokeReturnValue)  # SUCCESS, as FAILED raised
        return concluded.xcom_value
