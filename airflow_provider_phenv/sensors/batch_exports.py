"""Sensor that waits on a PostHog batch export's log, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

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
from airflow_provider_phenv.log_watch import (
    FAILED,
    MATCHED,
    LogCursor,
    LogOutcome,
    LogWatch,
    describe_failure,
    merge_streams,
)
from airflow_provider_phenv.sensors._state import WatchState, load_state, save_state
from airflow_provider_phenv.triggers._params import EVENT_STATUSES, check_hook_params
from airflow_provider_phenv.validation import (
    check_project_id,
    check_uuid,
    format_timestamp,
    is_template,
    parse_timestamp,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

# Headroom between the trigger's own deadline and the framework's deferral timeout: the trigger
# normally reports the timeout itself (with its cursor); the framework timeout is only a backstop.
_DEFER_TIMEOUT_GRACE = 60.0


class PostHogBatchExportLogError(PostHogError):
    """The batch export's log holds an entry that fails the sensor; the message quotes it."""


class PostHogBatchExportLogsWatchError(PostHogError):
    """The deferred wait could not read the log (PostHog kept failing) or got an invalid event."""


class PostHogBatchExportLogsSensor(BaseSensorOperator):
    """
    Wait until a PostHog batch export's log holds a matching entry; fail at once on a failing one.

    Entries are judged oldest first and the first deciding entry wins. Each poll reads only the
    entries newer than the last one judged, so a poll with no news is one small request.

    :param batch_export_id: UUID of the batch export. (templated)
    :param level: level(s) a matching entry has, e.g. ``"INFO"`` or ``["INFO", "WARNING"]``. (templated)
    :param message_pattern: regular expression searched (``re.search``) in the message. (templated)
    :param search: case-insensitive substring the message must contain; sent to PostHog to shrink
        answers (unless it could hide a failing entry). (templated)
    :param instance_id: only entries of this run count, for matching and failing. (templated)
    :param since: only entries strictly after this moment count (datetime or ISO 8601). Default:
        when the task first started, kept across reschedules, deferral and (Airflow >= 3.3) retries.
        (templated)
    :param failure_pattern: regular expression; an entry whose message contains it fails the task.
        (templated)
    :param fail_on_levels: levels whose entries fail the task; ``()`` for none. (templated)
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to the
        ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between polls; alias of ``poke_interval``.
    :param hook_params: extra keyword arguments for the hooks (``timeout``, ``max_retries``,
        ``backoff``, ``backoff_max``); plain values only, as they travel to the triggerer.
    :return: ``{"batch_export_id", "entry": {timestamp, level, message, instance_id}, "cursor"}``.
    """

    template_fields: Sequence[str] = (
        "batch_export_id",
        "level",
        "message_pattern",
        "search",
        "instance_id",
        "since",
        "failure_pattern",
        "fail_on_levels",
        "posthog_conn_id",
        "project_id",
    )
    ui_color = "#f9bd38"

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
        self.batch_export_id = batch_export_id
        self.level = level
        self.message_pattern = message_pattern
        self.search = search
        self.instance_id = instance_id
        self.since = since
        self.failure_pattern = failure_pattern
        self.fail_on_levels = fail_on_levels
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.deferrable = deferrable
        self.hook_params = check_hook_params(hook_params)
        self._state: WatchState | None = None
        # Literal values are checked now so a typo fails when the DAG is parsed; templated ones are
        # checked after rendering, still before any request. No I/O here.
        self._checked_inputs(literal_only=True)

    # -- inputs ----------------------------------------------------------------------------------

    def _checked_inputs(
        self, *, literal_only: bool = False
    ) -> tuple[str, str | None, datetime | None, LogWatch]:
        """Validate the (rendered) inputs: the export id, project, explicit ``since`` and criteria."""

        def ready(value: Any) -> bool:
            if isinstance(value, (list, tuple)):
                return all(ready(item) for item in value)
            return not (literal_only and is_template(value))

        export_id = check_uuid("batch_export_id", self.batch_export_id) if ready(self.batch_export_id) else ""
        project = None
        if self.project_id not in (None, "") and ready(self.project_id):
            project = check_project_id(self.project_id)
        since = None
        if self.since not in (None, "") and ready(self.since):
            since = parse_timestamp("since", self.since)
        criteria: dict[str, Any] = {
            "level": self.level,
            "message_pattern": self.message_pattern,
            "search": self.search,
            "instance_id": self.instance_id,
            "failure_pattern": self.failure_pattern,
            "fail_on_levels": self.fail_on_levels,
        }
        watch = LogWatch.from_params(
            **{name: value if ready(value) else None for name, value in criteria.items()}
        )
        return export_id, project, since, watch

    def _begin(self) -> None:
        """Check the rendered inputs and forget any state of an earlier call on this instance."""
        self._export_id, self._project, self._explicit_since, self._watch = self._checked_inputs()
        self._state = None

    @cached_property
    def hook(self) -> PostHogHook:
        """The sync hook, created on first use so that ``__init__`` does no I/O."""
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

    # -- state: since and cursor -----------------------------------------------------------------

    def _scope(self) -> tuple[Any, ...]:
        return (self._export_id, self._project)

    def _watch_state(self, context: Context) -> WatchState:
        if self._state is None:
            self._state = load_state(
                context,
                explicit_since=self._explicit_since,
                fingerprint=self._watch.fingerprint(*self._scope()),
                default_since=lambda: self._default_since(context),
                log=self.log,
            )
        return self._state

    def _default_since(self, context: Context) -> datetime:
        """When this task first started (used when no ``since`` is given and none was saved)."""
        ti = context.get("ti")
        started = None
        if ti is not None:
            if self.reschedule and hasattr(ti, "get_first_reschedule_date"):
                started = ti.get_first_reschedule_date(context)
            started = started or getattr(ti, "start_date", None)
        return parse_timestamp("since", started) if started else datetime.now(timezone.utc)

    def _remember(self, context: Context, cursor: LogCursor) -> None:
        state = self._watch_state(context)
        state.cursor = cursor
        save_state(context, state, log=self.log)

    # -- poke / reschedule -----------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self._begin()
        try:
            if not self.deferrable:
                return super().execute(context)
            return self._poke_then_defer(context)
        finally:
            self._close_hook()

    def _poke_then_defer(self, context: Context) -> Any:
        started = time.monotonic()
        # Poke once in the worker: an already-true condition (or an error already logged) never
        # pays for a deferral.
        done = self._first_poke(context)
        if isinstance(done, PokeReturnValue):
            self.log.info("Success criteria met. Exiting.")
            return done.xcom_value
        elapsed = time.monotonic() - started
        if elapsed > self.timeout:
            # As in poke mode: a timeout is a skip with soft_fail, else AirflowSensorTimeout.
            if self.soft_fail:
                raise AirflowSkipException(self._timeout_message(elapsed))
            raise AirflowSensorTimeout(self._timeout_message(elapsed))
        self._defer(context, deadline=time.time() + self.timeout - elapsed)

    def _close_hook(self) -> None:
        if "hook" in self.__dict__:
            self.hook.close()

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if not hasattr(self, "_watch"):
            self._begin()
        state = self._watch_state(context)
        self.log.info(
            "Reading the log of batch export %s after %s.",
            self._export_id,
            format_timestamp(state.cursor.after),
        )
        streams = [
            self.hook.iter_batch_export_logs(self._export_id, project_id=self._project, **request)
            for request in self._watch.requests(state.cursor)
        ]
        outcome = self._watch.evaluate(merge_streams(streams), state.cursor, state.since)
        self._remember(context, outcome.cursor)
        self.log.info(
            "Batch export %s: %d new log entries, %s.", self._export_id, outcome.new, outcome.status
        )
        return self._conclude(outcome)

    def _conclude(self, outcome: LogOutcome) -> bool | PokeReturnValue:
        """Turn an outcome into the sensor's result: same XCom and same error text in every mode."""
        if outcome.status == FAILED:
            assert outcome.entry is not None  # a decision always names its entry
            raise PostHogBatchExportLogError(describe_failure(self._export_id, outcome.entry, outcome.reason))
        if outcome.status == MATCHED:
            self.log.info("Batch export %s log entry matched: %s", self._export_id, outcome.entry)
            return PokeReturnValue(
                True,
                {
                    "batch_export_id": self._export_id,
                    "entry": outcome.entry,
                    "cursor": outcome.cursor.to_json(),
                },
            )
        return False

    def _first_poke(self, context: Context) -> bool | PokeReturnValue:
        """One poke with the error handling of poke mode (soft_fail, never_fail, silent_fail)."""
        try:
            return self.poke(context)
        except AirflowSkipException:
            raise
        except (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException) as error:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(
                    "Skipping due to soft_fail or never_fail is set to True."
                ) from error
            raise
        except Exception as error:
            if self.silent_fail:
                self.log.error("Sensor poke failed: %s", error, exc_info=True)
                return False
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from error
            raise

    # -- deferrable ------------------------------------------------------------------------------

    def _defer(self, context: Context, *, deadline: float) -> NoReturn:
        state = self._watch_state(context)
        save_state(context, state, log=self.log)
        remaining = max(0.0, deadline - time.time())
        self.log.info(
            "Deferring the wait on batch export %s (cursor %s, %.0f s left).",
            self._export_id,
            format_timestamp(state.cursor.after),
            remaining,
        )
        # Imported here: Airflow's trigger machinery is only needed by a task that defers.
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger

        trigger = PostHogBatchExportLogsTrigger(
            batch_export_id=self._export_id,
            since=format_timestamp(state.since),
            cursor=state.cursor.to_json(),
            posthog_conn_id=self.posthog_conn_id,
            project_id=self._project,
            poll_interval=self.poke_interval,
            end_time=deadline,
            first_poll_at=time.time() + self.poke_interval,  # this task has just read the log
            hook_params=self.hook_params,
            **self._watch.to_params(),
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"deadline": deadline},
            timeout=timedelta(seconds=remaining + self.poke_interval + _DEFER_TIMEOUT_GRACE),
        )

    def execute_complete(self, context: Context, event: Any = None, deadline: float | None = None) -> Any:
        """Resume after the trigger fired: the same XCom or the same error as poke mode."""
        self._begin()
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise PostHogBatchExportLogsWatchError(
                f"Unexpected trigger event for batch export {self._export_id}: {event!r}; "
                f"expected a status in {sorted(EVENT_STATUSES)}."
            )
        status = event["status"]
        try:
            since = parse_timestamp("event since", event["since"])
            cursor = LogCursor.from_json(event["cursor"])
        except (KeyError, ValueError) as error:
            raise PostHogBatchExportLogsWatchError(
                f"Malformed {status!r} trigger event for batch export {self._export_id}: {error}"
            ) from None
        self._state = WatchState(
            since=since, cursor=cursor, fingerprint=self._watch.fingerprint(*self._scope())
        )
        save_state(context, self._state, log=self.log)
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message") or "Sensor has timed out.")
        if status == "error":
            message = f"Could not read the log of batch export {self._export_id}: {event.get('message')}"
            if not self.silent_fail:
                raise PostHogBatchExportLogsWatchError(message)
            # silent_fail keeps poking after an error in poke mode; keep waiting here too.
            self.log.error("%s (silent_fail: waiting on)", message)
            if deadline is not None and time.time() >= deadline:
                raise AirflowSensorTimeout(self._timeout_message(self.timeout))
            self._defer(context, deadline=deadline if deadline is not None else time.time() + self.timeout)
        entry = event.get("entry")
        if not isinstance(entry, dict) or not {"timestamp", "level", "message"} <= entry.keys():
            raise PostHogBatchExportLogsWatchError(
                f"Malformed {status!r} trigger event for batch export {self._export_id}: no entry."
            )
        outcome = LogOutcome(
            status=FAILED if status == "failed" else MATCHED,
            cursor=cursor,
            entry=entry,
            reason=event.get("reason"),
        )
        self.log.info("Batch export %s: the deferred wait ended with %s.", self._export_id, status)
        concluded = self._conclude(outcome)
        assert isinstance(concluded, PokeReturnValue)  # MATCHED, as FAILED raised
        return concluded.xcom_value

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        Map errors after a deferral exactly as poke mode does.

        ``BaseSensorOperator.resume_execution`` skips on *any* error when ``soft_fail`` is set;
        in poke mode ``soft_fail`` only turns timeouts into skips, and a failing log entry still
        fails the task. Only timeouts (ours or the framework's) are skipped here too.
        """
        try:
            try:
                return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
            except TaskDeferralTimeout as error:
                raise AirflowSensorTimeout(*error.args) from error
        except AirflowSkipException:
            raise
        except (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException) as error:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(
                    "Skipping due to soft_fail or never_fail is set to True."
                ) from error
            raise
        except Exception as error:
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from error
            raise

    def _timeout_message(self, duration: float) -> str:
        return (
            f"Sensor has timed out; run duration of {duration} seconds exceeds "
            f"the specified timeout of {self.timeout}."
        )
