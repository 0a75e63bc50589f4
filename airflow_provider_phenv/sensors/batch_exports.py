"""Sensors that wait on PostHog batch exports, one outcome in every mode (docs/waiting-and-operators.md)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

# common-compat resolves these to the Task SDK or to the older core modules, whichever this
# Airflow has (3.1 keeps the exceptions and conf in core).
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    conf,
)
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.bases.operator import BaseOperator

try:
    from airflow.sdk.exceptions import TaskDeferralTimeout  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.exceptions import TaskDeferralTimeout  # type: ignore[attr-defined,no-redef]

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.lineage import PostHogLineageMixin
from airflow_provider_phenv.validation import (
    CheckedFields,
    check_uuid,
    extend,
    format_timestamp,
    parse_timestamp,
    unless_empty,
)
from airflow_provider_phenv.waits import (
    ERROR,
    FAILED,
    SUCCESS,
    TIMEOUT,
    PostHogWaitError,
    check_event,
    check_hook_params,
    defer_to_trigger,
    raise_wait_error,
    read_state,
    write_state,
)
from airflow_provider_phenv.waits.logs import (
    CRITERIA_CHECKS,
    DEFAULT_LATE_ENTRIES_WINDOW,
    STATE_KEY,
    LogCursor,
    LogOutcome,
    LogWatch,
    describe_failure,
    outcome_from_event,
)
from airflow_provider_phenv.waits.runs import INTERVAL_SECONDS, RunsOutcome, RunsWait, report_runs

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

# Errors that decide a poke in poke mode; soft_fail turns only these into skips.
_DECIDED = (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException)


class PostHogWaitSensor(CheckedFields, BaseSensorOperator):
    """Base of the PostHog sensors: one outcome in poke, reschedule and deferrable mode.

    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :param deferrable: wait in the triggerer; default: the ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between polls; alias of ``poke_interval``.
    :param hook_params: hook options (``timeout``, ``max_retries``, ...); numbers only, for the triggerer.
    """

    template_fields: Sequence[str] = ("posthog_conn_id", "project_id")
    ui_color = "#f9bd38"
    #: Raised when a deferred wait resumes with an error or an invalid event.
    wait_error: ClassVar[type[PostHogWaitError]] = PostHogWaitError
    #: What of the batch export the wait reads, for messages.
    subject: ClassVar[str]

    def __init__(
        self,
        *,
        posthog_conn_id: str = PostHogHook.default_conn_name,
        project_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: timedelta | float | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            if "poke_interval" in kwargs:
                raise ValueError("Pass poll_interval or poke_interval, not both: they are the same setting.")
            kwargs["poke_interval"] = poll_interval
        super().__init__(**kwargs)
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.deferrable = deferrable
        self.hook_params = check_hook_params(hook_params)
        self.inputs: dict[str, Any] = {}

    def about(self) -> str:
        """What the wait is about, for messages (``the log of batch export <id>``)."""
        return f"{self.subject} of batch export {self.inputs['batch_export_id']}"

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        """The trigger that carries the wait on; ``poll``: the polling options every trigger takes."""
        raise NotImplementedError

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> Any:
        """Take over the state an event carries (any status); the outcome of a decided one, for
        :meth:`conclude`. Raise ``ValueError`` if invalid.
        """
        raise NotImplementedError

    def conclude(self, context: Context, outcome: Any) -> bool | PokeReturnValue:
        """The sensor's result or error for an outcome, the same in every mode."""
        raise NotImplementedError

    def task_started_at(self, context: Context) -> datetime:
        """When this task first started: its first reschedule in reschedule mode, else its start."""
        ti, started = context.get("ti"), None
        if self.reschedule and ti is not None and hasattr(ti, "get_first_reschedule_date"):
            started = ti.get_first_reschedule_date(context)
        started = started or getattr(ti, "start_date", None)
        return parse_timestamp("start_date", started) if started else datetime.now(timezone.utc)

    def begin(self) -> None:
        """Check the rendered inputs (before any request); a subclass also forgets an earlier wait's state."""
        self.inputs = self.checked_fields()

    @cached_property
    def hook(self) -> PostHogHook:
        # Created on first use, so that __init__ (DAG parsing) does no I/O.
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

    def execute(self, context: Context) -> Any:
        self.begin()
        try:
            return self._poke_then_defer(context) if self.deferrable else self._poke_mode(context)
        finally:
            if "hook" in self.__dict__:
                self.hook.close()

    def _poke_mode(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSkipException as skip:
            # soft_fail skips only on timeouts, as in deferrable mode: a refused request still fails.
            refused = skip.__cause__
            if isinstance(refused, PostHogError) and self.soft_fail and not self.never_fail:
                raise refused from None
            raise

    def _poke_then_defer(self, context: Context) -> Any:
        started, done = time.monotonic(), None
        try:  # one poke with the error handling of poke mode (soft_fail, never_fail, silent_fail)
            done = self.poke(context)
        except Exception as error:
            if not self.silent_fail or isinstance(error, (*_DECIDED, AirflowSkipException)):
                self._raise_as_poke_mode(error)
            self.log.error("Sensor poke failed: %s", error, exc_info=True)
        if isinstance(done, PokeReturnValue):
            self.log.info("Success criteria met. Exiting.")
            return done.xcom_value
        elapsed = time.monotonic() - started
        if elapsed > self.timeout:
            timed_out = AirflowSkipException if self.soft_fail else AirflowSensorTimeout
            raise timed_out(self._timeout_message(elapsed))
        self.defer_wait(context, deadline=time.time() + self.timeout - elapsed)

    def defer_wait(self, context: Context, *, deadline: float) -> NoReturn:
        """Hand the wait to the trigger until ``deadline`` (UNIX time)."""
        remaining = max(0.0, deadline - time.time())
        self.log.info("Deferring the wait on %s (%.0f s left).", self.about(), remaining)
        defer_to_trigger(
            self,
            lambda poll: self.make_trigger(context, poll),
            project_id=self.inputs["project_id"],
            poll_interval=self.poke_interval,
            deadline=deadline,
            resume_kwargs={"deadline": deadline},
        )

    def execute_complete(self, context: Context, event: Any = None, deadline: float | None = None) -> Any:
        """Resume after the trigger fired: the same XCom or the same error as poke mode."""
        self.begin()
        event = check_event(event, self.about(), self.wait_error)
        try:
            outcome = self.resume_from_event(context, event)
        except ValueError as error:
            malformed = f"Malformed {event['status']!r} trigger event for {self.about()}: {error}"
            raise self.wait_error(malformed) from None
        status = event["status"]
        if status == TIMEOUT:
            raise AirflowSensorTimeout(event.get("message") or "Sensor has timed out.")
        if status == ERROR:
            message = f"Could not read {self.about()}: {event.get('message')}"
            if not self.silent_fail or event.get("final"):
                raise_wait_error(event, message, self.wait_error)
            # silent_fail keeps poking after an error in poke mode; keep waiting here too.
            self.log.error("%s (silent_fail: waiting on)", message)
            if deadline is not None and time.time() >= deadline:
                raise AirflowSensorTimeout(self._timeout_message(self.timeout))
            self.defer_wait(context, deadline=time.time() + self.timeout if deadline is None else deadline)
        self.log.info("The deferred wait on %s ended with %s.", self.about(), status)
        concluded = self.conclude(context, outcome)
        assert isinstance(concluded, PokeReturnValue)  # SUCCESS, as FAILED raised
        return concluded.xcom_value

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Map errors after a deferral exactly as poke mode does (the base skips on any error)."""
        try:
            try:
                return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
            except TaskDeferralTimeout as error:
                raise AirflowSensorTimeout(*error.args) from error
        except Exception as error:
            self._raise_as_poke_mode(error)

    def _raise_as_poke_mode(self, error: Exception) -> NoReturn:
        """Raise ``error``, or the skip poke mode raises instead of it (soft_fail, never_fail)."""
        decided = isinstance(error, _DECIDED) and not isinstance(error, PostHogError)
        if not isinstance(error, AirflowSkipException) and (self.never_fail or (decided and self.soft_fail)):
            flags = "soft_fail or never_fail is" if decided else "never_fail is"
            raise AirflowSkipException(f"Skipping due to {flags} set to True.") from error
        raise error

    def _timeout_message(self, duration: float) -> str:
        return (
            f"Sensor has timed out; run duration of {duration} seconds exceeds "
            f"the specified timeout of {self.timeout}."
        )


class PostHogBatchExportLogError(PostHogError):
    """The batch export's log holds an entry that fails the sensor; the message quotes it."""


class PostHogBatchExportLogsWatchError(PostHogWaitError):
    """The deferred wait could not read the log (PostHog kept failing) or got an invalid event."""


class PostHogBatchExportRunWaitError(PostHogWaitError):
    """The deferred wait could not read the runs (PostHog kept failing) or got an invalid event."""


# A moment with a timezone: a naive one would be read in a guessed timezone, hours off.
aware_timestamp = partial(parse_timestamp, naive_ok=False)


class PostHogBatchExportLogsSensor(PostHogWaitSensor):
    """Wait until a PostHog batch export's log holds a matching entry; fail at once on a failing one.

    :param batch_export_id: UUID of the batch export. (templated)
    :param level: level(s) a matching entry has, e.g. ``"INFO"`` or ``["INFO", "WARNING"]``. (templated)
    :param message_pattern: regular expression searched (``re.search``) in the message. (templated)
    :param search: case-insensitive substring the message must contain, sent to PostHog. (templated)
    :param instance_id: only entries of this Temporal workflow run (``instance_id``) count. (templated)
    :param since: only entries strictly after this moment count; default: the task's first start. (templated)
    :param failure_pattern: regular expression; an entry whose message contains it fails the task. (templated)
    :param fail_on_levels: levels whose entries fail the task; ``()`` for none. (templated)
    :param late_entries_window: how late PostHog may reveal an entry; default 5 min. (templated)
    :param kwargs: the options of :class:`PostHogWaitSensor` and of ``BaseSensorOperator``.
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
    subject = "the log"

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
        late_entries_window: timedelta | float = DEFAULT_LATE_ENTRIES_WINDOW,
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
        self.late_entries_window = late_entries_window
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        values["watch"] = LogWatch.from_checked(values)

    def begin(self) -> None:
        super().begin()
        # ``since`` and the cursor; the task state store's last read or write; the digest it must match.
        self._state: tuple[datetime, LogCursor] | None = None
        self._saved: dict[str, Any] | None = None
        self._criteria = self.inputs["watch"].fingerprint(
            self.inputs["batch_export_id"], self.inputs["project_id"]
        )

    def _watch_state(self, context: Context) -> tuple[datetime, LogCursor]:
        """``since`` and the cursor to go on from: ``since`` given, else saved by the first poke, else the
        task's first start; the saved cursor only if built with the same ``since`` and criteria.
        """
        if self._state is not None:
            return self._state
        saved, saved_since = read_state(context, STATE_KEY, self.log), None
        with contextlib.suppress(ValueError):  # nothing saved, or no readable since
            saved_since = parse_timestamp("since", (saved or {}).get("since"))
        since = self.inputs["since"] or saved_since or self.task_started_at(context)
        cursor = LogCursor.start(since)
        if saved is not None and saved_since == since and saved.get("criteria") == self._criteria:
            try:
                cursor = LogCursor.from_json(saved.get("cursor"))
            except ValueError as error:
                self.log.warning("Ignoring a malformed saved cursor: %s", error)
        self.log.info("Counting log entries after %s; cursor %s.", format_timestamp(since), cursor.to_json())
        self._state, self._saved = (since, cursor), saved
        return self._state

    def _save_state(self, context: Context) -> None:
        """Keep ``since`` and the cursor in the task state store, when they changed."""
        since, cursor = self._watch_state(context)
        data = {"since": format_timestamp(since), "cursor": cursor.to_json(), "criteria": self._criteria}
        if data != self._saved and write_state(context, STATE_KEY, data, self.log):
            self._saved = data

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not self.inputs:  # called directly (a user's own test), not through execute
            self.begin()
        export_id, watch = self.inputs["batch_export_id"], self.inputs["watch"]
        since, cursor = self._watch_state(context)
        self.log.info("Batch export %s: reading the log after %s.", export_id, format_timestamp(cursor.after))
        outcome = watch.poll(self.hook, export_id, self.inputs["project_id"], cursor, since)
        self._state = (since, outcome.cursor)
        # Saved only for news (or the first time): an older settled mark is still consistent.
        if outcome.new or self._saved is None:
            self._save_state(context)
        self.log.info("Batch export %s: %d new log entries, %s.", export_id, outcome.new, outcome.status)
        return self.conclude(context, outcome)

    def conclude(self, context: Context, outcome: LogOutcome) -> bool | PokeReturnValue:
        export_id = self.inputs["batch_export_id"]
        if outcome.status == FAILED:
            assert outcome.entry is not None  # a decision always names its entry
            raise PostHogBatchExportLogError(describe_failure(export_id, outcome.entry, outcome.reason))
        if outcome.status == SUCCESS:
            self.log.info("Batch export %s log entry matched: %s", export_id, outcome.entry)
            value = {"batch_export_id": export_id, "entry": outcome.entry, "cursor": outcome.cursor.to_json()}
            return PokeReturnValue(True, value)
        return False

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        since, cursor = self._watch_state(context)
        self._save_state(context)
        self.log.info("Log cursor of %s: %s.", self.about(), cursor.to_json())
        # Imported here: Airflow's trigger machinery is only needed by a task that defers.
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger

        return PostHogBatchExportLogsTrigger(
            batch_export_id=self.inputs["batch_export_id"],
            since=format_timestamp(since),
            criteria=self.inputs["watch"].to_params(),
            cursor=cursor.to_json(),
            **poll,
        )

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> LogOutcome:
        since, outcome = outcome_from_event(event)
        self._state = (since, outcome.cursor)
        self._save_state(context)
        return outcome


class PostHogBatchExportRunError(PostHogError):
    """A run that PostHog will not complete covers data the sensor waits for; the message quotes it."""


class PostHogBatchExportRunSensor(PostHogLineageMixin, PostHogWaitSensor):
    """Wait until completed runs of a PostHog batch export cover ``[since, until)``; fail on a failed one.

    :param batch_export_id: UUID of the batch export. (templated)
    :param until: the moment the data must be exported up to, e.g. ``"{{ data_interval_end }}"``. (templated)
    :param since: start of the range; default: one export interval before ``until``. (templated)
    :param kwargs: the options of :class:`PostHogWaitSensor` and of ``BaseSensorOperator``.
    :return: ``{"batch_export_id", "runs": [run_summary of each run], "records_completed"}``.
    """

    template_fields: Sequence[str] = ("batch_export_id", "until", "since", *PostHogWaitSensor.template_fields)
    field_checks = extend(
        PostHogWaitSensor.field_checks,
        batch_export_id=check_uuid,
        until=aware_timestamp,
        since=unless_empty(aware_timestamp),
    )
    wait_error = PostHogBatchExportRunWaitError
    subject = "the runs"

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

    def begin(self) -> None:
        super().begin()
        self._wait: RunsWait | None = None
        self._export: dict[str, Any] | None = None
        self._progress = ""

    def _runs_wait(self, context: Context) -> RunsWait:
        """The range to wait for; the default ``since`` costs one read of the export's interval."""
        if self._wait is not None:
            return self._wait
        export_id, until, since = (self.inputs[key] for key in ("batch_export_id", "until", "since"))
        if since is None:
            self._export = self.hook.get_batch_export(export_id, project_id=self.inputs["project_id"])
            interval = self._export.get("interval")
            since = until - timedelta(seconds=INTERVAL_SECONDS.get(str(interval), 3600))
            self.log.info("Batch export %s runs every %s: waiting from %s on.", export_id, interval, since)
        # A pause of the export after the task started fails the wait (see RunsWait).
        self._wait = RunsWait(export_id, since=since, until=until, started_at=self.task_started_at(context))
        return self._wait

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not self.inputs:  # called directly (a user's own test), not through execute
            self.begin()
        return self.conclude(context, self._runs_wait(context).poll(self.hook, self.inputs["project_id"]))

    def conclude(self, context: Context, outcome: RunsOutcome) -> bool | PokeReturnValue:
        if outcome.message != self._progress:
            self._progress = outcome.message
            self.log.info("%s", outcome.message)
        if outcome.status == FAILED:
            raise PostHogBatchExportRunError(outcome.message)
        if outcome.status == SUCCESS:
            export_id, project_id = self.inputs["batch_export_id"], self.inputs["project_id"]
            report_runs(self, context, export_id, project_id, outcome.runs, export=self._export)
            return PokeReturnValue(True, outcome.value)
        return False

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger

        return PostHogBatchExportRunTrigger(**self._runs_wait(context).to_params(), **poll)

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> RunsOutcome | None:
        return RunsOutcome.from_event(event) if event["status"] in (SUCCESS, FAILED) else None
