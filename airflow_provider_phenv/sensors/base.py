"""
The base of the PostHog sensors: one outcome in poke, reschedule and deferrable mode.

A subclass says how to poke once (:meth:`~airflow.sdk.BaseSensorOperator.poke`), which trigger
waits for it in the triggerer (:meth:`PostHogWaitSensor.make_trigger`) and how to read that
trigger's success or failure event (:meth:`PostHogWaitSensor.conclude_event`). This class does
the rest the same way for every sensor: check the inputs, poke once before deferring (an
already-true condition never pays for a deferral), carry the deadline into the trigger, and map
timeouts and errors after a deferral exactly as poke mode maps them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
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
from airflow_provider_phenv.field_checks import CheckedFields
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.validation import parse_timestamp
from airflow_provider_phenv.waits import (
    ERROR,
    TIMEOUT,
    PostHogWaitError,
    check_event,
    check_hook_params,
    defer_to_trigger,
    raise_wait_error,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

# Errors that decide a poke in poke mode; soft_fail turns only these into skips.
_DECIDED = (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException)


class PostHogWaitSensor(CheckedFields, BaseSensorOperator):
    """
    Base of the PostHog sensors.

    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to the
        ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between polls; alias of ``poke_interval``.
    :param hook_params: extra keyword arguments for the hooks (``timeout``, ``max_retries``,
        ``backoff``, ``backoff_max``); plain numbers only, as they travel to the triggerer.
    """

    template_fields: Sequence[str] = ("posthog_conn_id", "project_id")
    ui_color = "#f9bd38"
    #: Raised when a deferred wait resumes with an error or an invalid event.
    wait_error: ClassVar[type[PostHogWaitError]] = PostHogWaitError

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

    # -- what a subclass provides ----------------------------------------------------------------

    def about(self) -> str:
        """What the wait is about, for messages (``batch export <id>``)."""
        raise NotImplementedError

    def start_wait(self) -> None:
        """Forget what an earlier call on this instance kept; called after the inputs are checked."""

    def make_trigger(self, context: Context, poll: dict[str, Any]) -> BaseTrigger:
        """
        The trigger that carries the wait on in the triggerer.

        :param poll: the keyword arguments every :class:`PostHogPollTrigger` takes (connection,
            project, poll interval, end time, first poll, hook parameters), ready to pass on.
        """
        raise NotImplementedError

    def resume_from_event(self, context: Context, event: dict[str, Any]) -> None:
        """Take over the state an event carries (any status); raise ``wait_error`` if malformed."""

    def conclude_event(self, context: Context, event: dict[str, Any]) -> Any:
        """The task's result for a ``success`` event, or its error for a ``failed`` one."""
        raise NotImplementedError

    def task_started_at(self, context: Context) -> datetime:
        """When this task first started: its first reschedule in reschedule mode, else its start."""
        ti = context.get("ti")
        started = None
        if ti is not None:
            if self.reschedule and hasattr(ti, "get_first_reschedule_date"):
                started = ti.get_first_reschedule_date(context)
            started = started or getattr(ti, "start_date", None)
        return parse_timestamp("start_date", started) if started else datetime.now(timezone.utc)

    # -- inputs and hook -------------------------------------------------------------------------

    def begin(self) -> None:
        """Check the rendered inputs (before any request) and start a fresh wait."""
        self.inputs = self.checked_fields()
        self.start_wait()

    @cached_property
    def hook(self) -> PostHogHook:
        """The sync hook, created on first use so that ``__init__`` does no I/O."""
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

    def _close_hook(self) -> None:
        if "hook" in self.__dict__:
            self.hook.close()

    # -- poke / reschedule / deferrable ----------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self.begin()
        try:
            if not self.deferrable:
                return self._poke_mode(context)
            return self._poke_then_defer(context)
        finally:
            self._close_hook()

    def _poke_mode(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSkipException as skip:
            # PostHog's 400/401/403/404 are AirflowFailException (so Airflow does not retry them),
            # which Airflow's poke loop turns into a skip under soft_fail. soft_fail skips only on
            # timeouts here, as in deferrable mode: a refused request still fails the task.
            refused = skip.__cause__
            if isinstance(refused, PostHogError) and self.soft_fail and not self.never_fail:
                raise refused from None
            raise

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
        self.defer_wait(context, deadline=time.time() + self.timeout - elapsed)

    def _first_poke(self, context: Context) -> bool | PokeReturnValue:
        """One poke with the error handling of poke mode (soft_fail, never_fail, silent_fail)."""
        try:
            return self.poke(context)
        except Exception as error:
            if self.silent_fail and not isinstance(error, (*_DECIDED, AirflowSkipException)):
                self.log.error("Sensor poke failed: %s", error, exc_info=True)
                return False
            skip = self._skip_instead_of(error)
            if skip is not None:
                raise skip from error
            raise

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
        self.resume_from_event(context, event)
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
        return self.conclude_event(context, event)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        Map errors after a deferral exactly as poke mode does.

        ``BaseSensorOperator.resume_execution`` skips on *any* error when ``soft_fail`` is set;
        in poke mode ``soft_fail`` only turns timeouts into skips, and a failure PostHog reports
        still fails the task. Only timeouts (ours or the framework's) are skipped here too.
        """
        try:
            try:
                return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
            except TaskDeferralTimeout as error:
                raise AirflowSensorTimeout(*error.args) from error
        except Exception as error:
            skip = self._skip_instead_of(error)
            if skip is not None:
                raise skip from error
            raise

    def _skip_instead_of(self, error: Exception) -> AirflowSkipException | None:
        """The skip poke mode would raise instead of ``error`` (soft_fail, never_fail), if any."""
        if isinstance(error, AirflowSkipException):
            return None
        if isinstance(error, _DECIDED) and not isinstance(error, PostHogError):
            if self.soft_fail or self.never_fail:
                return AirflowSkipException("Skipping due to soft_fail or never_fail is set to True.")
            return None
        if self.never_fail:
            return AirflowSkipException("Skipping due to never_fail is set to True.")
        return None

    def _timeout_message(self, duration: float) -> str:
        return (
            f"Sensor has timed out; run duration of {duration} seconds exceeds "
            f"the specified timeout of {self.timeout}."
        )
