"""
Waiting for a PostHog backfill, for the operators that start one (backfill, unpause with backfill).

The wait polls in the worker or defers to
:class:`~airflow_provider_phenv.triggers.batch_exports.PostHogBatchExportRunTrigger`, with the same
judgement either way (:mod:`airflow_provider_phenv.waits.runs`): the backfill must end Completed
with every one of its runs Completed. A wait that is killed (``on_kill``) or runs out of time
cancels the backfill in PostHog, so nothing keeps exporting for a task that gave up; in deferrable
mode the trigger reports the deadline and the resuming task cancels (a trigger never writes).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowTaskTimeout

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.validation import check_bool, check_uuid, format_timestamp
from airflow_provider_phenv.waits import (
    ERROR,
    FAILED,
    TIMEOUT,
    WAITING,
    PostHogWaitError,
    check_event,
    raise_wait_error,
)
from airflow_provider_phenv.waits.runs import RunsOutcome, RunsWait, report_runs

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_phenv.hooks.posthog import PostHogHook

# Headroom between the trigger's own deadline and the framework's deferral timeout.
_DEFER_TIMEOUT_GRACE = 60.0


class PostHogBackfillError(PostHogError):
    """A backfill ended in a status other than Completed, or some of its runs failed."""


class PostHogBackfillTimeoutError(PostHogError):
    """A backfill did not end within the task's ``timeout``; it was cancelled in PostHog."""


def check_seconds(name: str, value: Any) -> float | None:
    """A duration in seconds from a number or a ``timedelta``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"Invalid {name} {value!r}: expected a positive number of seconds or a timedelta.")
    return float(value)


class BackfillWait:
    """
    Mixin for PostHog operators that wait for a backfill they started.

    The operator sets ``poll_interval``, ``wait_timeout`` (seconds or None), ``deferrable`` and
    ``cancel_on_kill`` in ``__init__``, calls :meth:`wait_for_backfill` from ``execute``, and turns
    the finished backfill's value into its result in :meth:`backfill_result`.
    """

    hook: PostHogHook
    log: Any
    poll_interval: float
    wait_timeout: float | None
    deferrable: bool
    cancel_on_kill: bool
    posthog_conn_id: str
    hook_params: dict[str, Any]
    _waiting_on: tuple[str, str, str | None] | None = None

    def set_wait_options(
        self, poll_interval: Any, timeout: Any, deferrable: bool, cancel_on_kill: Any
    ) -> None:
        """Check and keep the wait's options; call from the operator's ``__init__``."""
        self.poll_interval = check_seconds("poll_interval", poll_interval) or 60.0
        self.wait_timeout = check_seconds("timeout", timeout)
        self.deferrable = deferrable
        self.cancel_on_kill = check_bool("cancel_on_kill", cancel_on_kill)
        self.backfill_url: str | None = None

    def backfill_result(self, context: Context, value: dict[str, Any]) -> Any:
        """The task's result once the backfill completed; ``value`` is the backfill's summary."""
        return value

    def wait_for_backfill(
        self, context: Context, export_id: str, backfill_id: str, project_id: str | None
    ) -> Any:
        """Wait in the worker, or defer after one poll, until the backfill ends; then judge it."""
        wait = RunsWait(
            export_id,
            backfill_id=backfill_id,
            started_at=datetime.now(timezone.utc),
            row_grace=self.hook.backfill_row_grace,
        )
        deadline = None if self.wait_timeout is None else time.time() + self.wait_timeout
        self._waiting_on = (export_id, backfill_id, project_id)
        try:
            outcome = wait.poll(self.hook, project_id)
            while outcome.status == WAITING:
                self.log.info("%s", outcome.message)
                if deadline is not None and time.time() >= deadline:
                    self._time_out(export_id, backfill_id, project_id)
                if self.deferrable:
                    self._defer(wait, project_id, deadline)
                pause = (
                    self.poll_interval
                    if deadline is None
                    else min(self.poll_interval, deadline - time.time())
                )
                time.sleep(max(0.0, pause))
                outcome = wait.poll(self.hook, project_id)
        except AirflowTaskTimeout:
            self._cancel(export_id, backfill_id, project_id, "the task's execution_timeout passed")
            raise
        self._waiting_on = None
        return self._conclude(context, outcome, project_id)

    def _defer(self, wait: RunsWait, project_id: str | None, deadline: float | None) -> None:
        # Imported here: Airflow's trigger machinery is only needed by a task that defers.
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger

        self._waiting_on = None  # the worker leaves: nothing to cancel on kill here any more
        export_id, backfill_id = wait.batch_export_id, wait.backfill_id
        assert wait.started_at is not None and backfill_id is not None
        trigger = PostHogBatchExportRunTrigger(
            batch_export_id=export_id,
            backfill_id=backfill_id,
            posthog_conn_id=self.posthog_conn_id,
            project_id=project_id,
            poll_interval=self.poll_interval,
            started_at=format_timestamp(wait.started_at),
            row_grace=wait.row_grace,
            cancel_on_kill=self.cancel_on_kill,
            end_time=deadline,
            first_poll_at=time.time() + self.poll_interval,  # this task has just polled
            hook_params=self.hook_params,
        )
        timeout = None
        if deadline is not None:
            timeout = timedelta(
                seconds=max(0.0, deadline - time.time()) + self.poll_interval + _DEFER_TIMEOUT_GRACE
            )
        self.log.info("Deferring the wait on backfill %s of batch export %s.", backfill_id, export_id)
        # BaseOperator.defer raises TaskDeferred: the worker leaves here.
        self.defer(  # type: ignore[attr-defined]
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"project_id": project_id},
            timeout=timeout,
        )

    def execute_complete(self, context: Context, event: Any = None, project_id: str | None = None) -> Any:
        """Resume after the trigger fired: the same result or error as waiting in the worker."""
        event = check_event(event, "a backfill wait")
        export_id = check_uuid("batch_export_id", event.get("batch_export_id"))
        backfill_id = check_uuid("backfill_id", event.get("backfill_id"))
        status = event["status"]
        if status == TIMEOUT:
            self._time_out(export_id, backfill_id, project_id)
        if status == ERROR:
            raise_wait_error(event, f"Could not read backfill {backfill_id}: {event.get('message')}")
        try:
            outcome = RunsOutcome.from_event(event)
        except ValueError as error:
            raise PostHogWaitError(
                f"Malformed {status!r} trigger event for backfill {backfill_id}: {error}"
            ) from None
        return self._conclude(context, outcome, project_id)

    def _conclude(self, context: Context, outcome: RunsOutcome, project_id: str | None) -> Any:
        if outcome.status == FAILED:
            raise PostHogBackfillError(outcome.message)
        self.log.info("%s", outcome.message)
        value = outcome.value
        report_runs(
            self,
            context,
            self.hook,
            value["batch_export_id"],
            project_id,
            outcome.runs,
            backfill_id=value["backfill_id"],
            export=getattr(self, "_export", None),
        )
        return self.backfill_result(context, value)

    def _time_out(self, export_id: str, backfill_id: str, project_id: str | None) -> NoReturn:
        # PostHog leaves a backfill whose workflow was terminated Running for good (docs §6.9):
        # then only this timeout ends the wait, and the log should say it may be why.
        self.log.warning(
            "Backfill %s of batch export %s is still not finished after %s s. If PostHog's workflow of "
            "it was terminated, PostHog shows it Running for ever, and only this timeout ends the wait.",
            backfill_id,
            export_id,
            self.wait_timeout,
        )
        self._cancel(export_id, backfill_id, project_id, f"it did not end within {self.wait_timeout} s")
        raise PostHogBackfillTimeoutError(
            f"Backfill {backfill_id} of batch export {export_id} did not end within {self.wait_timeout} s; "
            "it was cancelled in PostHog."
        )

    def on_kill(self) -> None:
        """Cancel the backfill being waited for, when the task is killed in the worker."""
        if self._waiting_on is not None and self.cancel_on_kill:
            self._cancel(*self._waiting_on, "the task was killed")

    def _cancel(self, export_id: str, backfill_id: str, project_id: str | None, why: str) -> None:
        if not self.cancel_on_kill:
            self.log.warning(
                "Leaving backfill %s running although %s (cancel_on_kill=False).", backfill_id, why
            )
            return
        self.log.warning("Cancelling backfill %s of batch export %s: %s.", backfill_id, export_id, why)
        try:
            self.hook.cancel_batch_export_backfill(
                export_id, backfill_id, project_id=project_id, row_timeout=self.hook.backfill_row_grace
            )
        except PostHogError as error:
            # A backfill that ended meanwhile cannot be cancelled; the task fails for its own reason.
            self.log.warning("Could not cancel backfill %s: %s", backfill_id, error)
        self._waiting_on = None
