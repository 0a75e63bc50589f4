"""Operators that pause, unpause, backfill and test PostHog batch exports (docs/waiting-and-operators.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import AirflowTaskTimeout, conf
from airflow.sdk import BaseOperator

from airflow_provider_phenv.errors import (
    PostHogBackfillNotVisibleError,
    PostHogError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks.posthog import PostHogHook, find_backfill
from airflow_provider_phenv.lineage import PostHogLineageMixin
from airflow_provider_phenv.links import PostHogBackfillLink, PostHogBatchExportLink, backfill_ui_path
from airflow_provider_phenv.validation import (
    TESTABLE_DESTINATION_TYPES,
    CheckedFields,
    ExportSchedule,
    backfill_bound,
    check_backfill_range,
    check_batch_export_payload,
    check_bool,
    check_seconds,
    check_uuid,
    extend,
    format_timestamp,
    optional,
    parse_timestamp,
    payload_from_export,
)
from airflow_provider_phenv.waits import (
    ACTIVE_STATUSES,
    ERROR,
    FAILED,
    FAILED_STATUSES,
    TIMEOUT,
    WAITING,
    PostHogWaitError,
    check_event,
    defer_to_trigger,
    raise_wait_error,
    read_state,
    task_state_store,
    write_state,
)
from airflow_provider_phenv.waits.runs import RunsOutcome, RunsWait, backfill_value, report_runs

if TYPE_CHECKING:
    from airflow.sdk import BaseOperatorLink, Context


# Task state store keys: what an earlier try did, so a retry does not do it twice.
_UNPAUSE_KEY = "posthog_unpause_with_backfill"
_BACKFILL_KEY = "posthog_backfill"


class PostHogDestinationTestError(PostHogError):
    """A batch export destination test step reported ``Failed``."""


class PostHogBackfillError(PostHogError):
    """A backfill ended in a status other than Completed, or some of its runs failed."""


class PostHogBackfillTimeoutError(PostHogError):
    """A backfill did not end within the task's ``timeout``; it was cancelled in PostHog."""


def check_steps(name: str, steps: Any) -> list[int | str]:
    """Step indexes or names to run: a non-empty list."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
        raise ValueError(f"Invalid {name} {steps!r}: expected a non-empty list of step indexes or names.")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, (int, str)) or (isinstance(step, int) and step < 0):
            raise ValueError(f"Invalid step {step!r}: expected a step index (0, 1, ...) or a step name.")
    return list(steps)


class PostHogBaseOperator(CheckedFields, BaseOperator):
    """Base of the PostHog operators; subclasses declare their inputs' checks in ``field_checks``.

    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project (environment) id; default: the connection's. (templated)
    :param hook_params: extra keyword arguments for :class:`PostHogHook` (``timeout``, ``max_retries``).
    """

    template_fields: Sequence[str] = ("posthog_conn_id", "project_id")

    def __init__(
        self,
        *,
        posthog_conn_id: str = PostHogHook.default_conn_name,
        project_id: int | str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.posthog_conn_id, self.project_id = posthog_conn_id, project_id
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> PostHogHook:
        # Created on first use, so that __init__ (DAG parsing) does no I/O.
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

    def _earlier_try(self, context: Context, key: str, **about: Any) -> dict[str, Any] | None:
        """What an earlier try of this task instance saved under ``key``, if it was ``about`` the same."""
        saved = read_state(context, key, self.log)
        return saved if saved and all(saved.get(name) == value for name, value in about.items()) else None


class _BatchExportOperator(PostHogBaseOperator):
    """An operator about one existing batch export, with a link to it."""

    template_fields: Sequence[str] = (*PostHogBaseOperator.template_fields, "batch_export_id")
    field_checks = extend(PostHogBaseOperator.field_checks, batch_export_id=check_uuid)
    operator_extra_links: tuple[BaseOperatorLink, ...] = (PostHogBatchExportLink(),)
    batch_export_url: str | None = None

    def __init__(self, *, batch_export_id: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id

    def _link_export(self, values: dict[str, Any]) -> str:
        # Before any request, so that a failed task has the link too.
        export_id = values["batch_export_id"]
        self.batch_export_url = self.hook.ui_url(values["project_id"], f"batch_exports/{export_id}")
        return export_id


class _BackfillWaitOperator(PostHogLineageMixin, _BatchExportOperator):
    """An operator that may wait for a backfill it started.

    :param poll_interval: seconds (or a timedelta) between two looks at the backfill while waiting.
    :param timeout: longest wait (seconds or timedelta), then the backfill is cancelled; default none.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param cancel_on_kill: cancel the backfill in PostHog when the task is killed or times out.
    """

    #: ``(export, backfill, project)`` while this worker waits: what ``on_kill`` cancels.
    _waiting_on: tuple[str, str, str | None] | None = None
    #: The export as ``execute`` read it, so the runs' report does not read it again.
    _export: dict[str, Any] | None = None
    operator_extra_links = (PostHogBatchExportLink(), PostHogBackfillLink())
    backfill_url: str | None = None

    def __init__(
        self,
        *,
        poll_interval: float | timedelta = 60.0,
        timeout: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poll_interval = check_seconds("poll_interval", poll_interval)
        self.wait_timeout = None if timeout is None else check_seconds("timeout", timeout)
        self.deferrable = deferrable
        self.cancel_on_kill = check_bool("cancel_on_kill", cancel_on_kill)

    def backfill_result(self, context: Context, value: dict[str, Any]) -> Any:
        """The task's result once the backfill completed; ``value`` is the backfill's summary."""
        return value

    def wait_for_backfill(
        self, context: Context, export_id: str, backfill_id: str, project_id: str | None
    ) -> Any:
        """Wait in the worker, or defer after one poll, until the backfill ends; then judge it."""
        started_at, row_grace = datetime.now(timezone.utc), self.hook.backfill_row_grace
        wait = RunsWait(export_id, backfill_id=backfill_id, started_at=started_at, row_grace=row_grace)
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
                remaining = math.inf if deadline is None else deadline - time.time()
                time.sleep(max(0.0, min(self.poll_interval, remaining)))
                outcome = wait.poll(self.hook, project_id)
        except AirflowTaskTimeout:
            self._cancel(export_id, backfill_id, project_id, "the task's execution_timeout passed")
            raise
        self._waiting_on = None
        return self._conclude(context, outcome, project_id)

    def _defer(self, wait: RunsWait, project_id: str | None, deadline: float | None) -> NoReturn:
        # Imported here: Airflow's trigger machinery is only needed by a task that defers.
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger

        self._waiting_on = None  # the worker leaves: nothing to cancel on kill here any more
        trigger_kwargs = {**wait.to_params(), "cancel_on_kill": self.cancel_on_kill}
        self.log.info(
            "Deferring the wait on backfill %s of batch export %s.", wait.backfill_id, wait.batch_export_id
        )
        defer_to_trigger(
            self,
            lambda poll: PostHogBatchExportRunTrigger(**trigger_kwargs, **poll),
            project_id=project_id,
            poll_interval=self.poll_interval,
            deadline=deadline,
            resume_kwargs={"project_id": project_id},
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
        value, runs = outcome.value, outcome.runs
        export_id, backfill_id = value["batch_export_id"], value["backfill_id"]
        report_runs(self, context, export_id, project_id, runs, backfill_id=backfill_id, export=self._export)
        return self.backfill_result(context, value)

    def _time_out(self, export_id: str, backfill_id: str, project_id: str | None) -> NoReturn:
        self._cancel(export_id, backfill_id, project_id, f"it did not end within {self.wait_timeout} s")
        raise PostHogBackfillTimeoutError(
            f"Backfill {backfill_id} of batch export {export_id} did not end within {self.wait_timeout} s; "
            "it was cancelled in PostHog. (PostHog shows a backfill whose workflow was terminated Running "
            "for ever: only this timeout ends such a wait.)"
        )

    def on_kill(self) -> None:
        """Cancel the backfill being waited for, when the task is killed in the worker."""
        if self._waiting_on is not None and self.cancel_on_kill:
            self._cancel(*self._waiting_on, "the task was killed")

    def _cancel(self, export_id: str, backfill_id: str, project_id: str | None, why: str) -> None:
        if not self.cancel_on_kill:
            self.log.warning("Leaving backfill %s running: %s (cancel_on_kill=False).", backfill_id, why)
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


class PostHogPauseBatchExportOperator(_BatchExportOperator):
    """Pause a PostHog batch export; pausing a paused export is a no-op, so the task is safe to retry.

    :param batch_export_id: UUID of the batch export. (templated)
    :param kwargs: as for :class:`PostHogBaseOperator` (``posthog_conn_id``, ``project_id``...).
    :return: ``{"batch_export_id": ..., "paused": true}``
    """

    def __init__(self, *, batch_export_id: str, **kwargs: Any) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        export_id = self._link_export(values)
        self.log.info("Pausing PostHog batch export %s.", export_id)
        result = self.hook.pause_batch_export(export_id, project_id=values["project_id"])
        return {"batch_export_id": export_id, "paused": bool(result.get("paused", True))}


class PostHogUnpauseBatchExportOperator(_BackfillWaitOperator):
    """Unpause a PostHog batch export, optionally backfilling the pause; unpausing an active one is a no-op.

    :param batch_export_id: UUID of the batch export. (templated)
    :param backfill: also export the data from the pause until now. (templated)
    :param wait_for_backfill: wait until that backfill ends, failing unless it and all its runs completed.
    :param kwargs: as for :class:`_BackfillWaitOperator` (``poll_interval``, ``timeout``...) and its bases.
    :return: ``{"batch_export_id": ..., "paused": false}``; XCom keys ``unpaused_at`` and ``backfill_id``.
    """

    template_fields: Sequence[str] = (*_BatchExportOperator.template_fields, "backfill")
    field_checks = extend(_BatchExportOperator.field_checks, backfill=check_bool)

    def __init__(
        self,
        *,
        batch_export_id: str,
        backfill: bool | str = False,
        wait_for_backfill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.backfill = backfill
        self.wait_for_backfill_completion = check_bool("wait_for_backfill", wait_for_backfill)
        self.check_literal_fields()

    def execute(self, context: Context) -> Any:
        values = self.checked_fields()
        export_id, project_id = self._link_export(values), values["project_id"]
        unpaused_at, paused, backfill_id = datetime.now(timezone.utc), False, None
        if values["backfill"]:
            backfill_id = self._unpause_with_backfill(context, export_id, project_id, unpaused_at)
        else:
            self.log.info("Unpausing PostHog batch export %s.", export_id)
            result = self.hook.unpause_batch_export(export_id, project_id=project_id)
            paused = bool(result.get("paused", False))
        ti = context.get("ti")
        if ti is not None:
            # A downstream sensor's ``since``: runs of this unpause log after this moment.
            ti.xcom_push(key="unpaused_at", value=format_timestamp(unpaused_at))
            ti.xcom_push(key="backfill_id", value=backfill_id)
        if backfill_id is not None:
            self.backfill_url = self.hook.ui_url(project_id, backfill_ui_path(export_id))
            if self.wait_for_backfill_completion:
                return self.wait_for_backfill(context, export_id, backfill_id, project_id)
        return {"batch_export_id": export_id, "paused": paused}

    def backfill_result(self, context: Context, value: dict[str, Any]) -> Any:
        return {"batch_export_id": value["batch_export_id"], "paused": False}

    def _unpause_with_backfill(
        self, context: Context, export_id: str, project_id: str | None, unpaused_at: datetime
    ) -> str | None:
        """Unpause with a backfill (once), and return the id of the backfill PostHog started."""
        earlier = self._earlier_try(context, _UNPAUSE_KEY, batch_export_id=export_id)
        export = self._export = self.hook.get_batch_export(export_id, project_id=project_id)
        if not export.get("paused"):
            # Already active (PostHog starts no backfill), or unpaused by an earlier try, with its backfill.
            backfill_id = None if earlier is None else earlier.get("backfill_id")
            self.log.info("Batch export %s is not paused; its backfill: %s.", export_id, backfill_id)
            return backfill_id
        if not export.get("last_paused_at"):
            raise ValueError(
                f"Batch export {export_id} is paused but has no last_paused_at (it was created paused, "
                "not paused through PostHog's pause endpoint): PostHog would backfill it from the "
                "beginning of its data. Unpause it with backfill=False and backfill the range you "
                "need with PostHogBackfillBatchExportOperator."
            )
        self.log.info("Unpausing PostHog batch export %s with a backfill of the pause.", export_id)
        answer_lost = False
        try:
            self.hook.unpause_batch_export(export_id, backfill=True, project_id=project_id)
        except PostHogWriteOutcomeUnknownError:
            if self.hook.get_batch_export(export_id, project_id=project_id).get("paused"):
                self.log.warning("PostHog's answer was lost and the export is still paused: unpausing again.")
                self.hook.unpause_batch_export(export_id, backfill=True, project_id=project_id)
            else:
                answer_lost = True
                self.log.warning("The answer was lost, but the export is unpaused: not sending it again.")
        self.log.info("Looking for the backfill PostHog started (it shows once its workflow runs).")
        backfill = self.hook.find_batch_export_backfill(
            export_id, since=unpaused_at, wait=self.hook.backfill_row_grace, project_id=project_id
        )
        if backfill is None and answer_lost:
            # PostHog failed between saving the unpause and starting the backfill: only we can start it.
            backfill_id = self._backfill_the_pause(export, unpaused_at, project_id)
        elif backfill is None:
            backfill_id = None
            message = (
                f"PostHog unpaused batch export {export_id} with a backfill, but no backfill of it "
                f"appeared within {self.hook.backfill_row_grace:.0f} s."
            )
            if self.wait_for_backfill_completion:
                raise PostHogBackfillNotVisibleError(message)
            self.log.warning("%s", message)
        else:
            backfill_id, bounds = str(backfill["id"]), (backfill.get("start_at"), backfill.get("end_at"))
            self.log.info(
                "PostHog started backfill %s of batch export %s for %s - %s.", backfill_id, export_id, *bounds
            )
        state = {"batch_export_id": export_id, "backfill_id": backfill_id}
        write_state(context, _UNPAUSE_KEY, state, self.log)
        return backfill_id

    def _backfill_the_pause(
        self, export: dict[str, Any], unpaused_at: datetime, project_id: str | None
    ) -> str | None:
        """Start the backfill of ``[last_paused_at, unpaused_at)`` that PostHog did not start; its id."""
        export_id, schedule = str(export["id"]), ExportSchedule.of(export)
        pause = (parse_timestamp("last_paused_at", export["last_paused_at"]), unpaused_at)
        # Daily and weekly exports backfill whole periods: from the one the pause began in.
        start, end = [schedule.day_at_or_before(moment) for moment in pause] if schedule.dates_only else pause
        if start >= end:
            self.log.info("The pause of batch export %s was too short to backfill.", export_id)
            return None
        bounds = check_backfill_range(start, end, schedule=schedule)
        self.log.warning("Starting the backfill of the pause PostHog did not start: %s - %s.", *bounds)
        created = self.hook.create_batch_export_backfill(
            export_id, start_at=bounds[0], end_at=bounds[1], project_id=project_id, export=export
        )
        self.log.info("Started backfill %s of batch export %s.", created["backfill_id"], export_id)
        return str(created["backfill_id"])


class PostHogBackfillBatchExportOperator(_BackfillWaitOperator):
    """Backfill a PostHog batch export over ``[start_at, end_at)`` and wait until it is done.

    Fails unless the backfill ends Completed with every run Completed; a retry attaches to the
    backfill its earlier try started.

    :param batch_export_id: UUID of the batch export. (templated)
    :param start_at: first moment to export: a date, a datetime with a timezone, or ISO 8601 text. (templated)
    :param end_at: the moment after the last one to export; not in the future. (templated)
    :param wait_for_completion: wait until the backfill ends; else return once it started.
    :param kwargs: as for :class:`_BackfillWaitOperator` (``poll_interval``, ``timeout``...) and its bases.
    :return: ``{"batch_export_id", "backfill_id", "status", "total_runs", "finished_runs",
        "records_completed"}``
    """

    template_fields: Sequence[str] = (*_BatchExportOperator.template_fields, "start_at", "end_at")
    field_checks = extend(_BatchExportOperator.field_checks, start_at=backfill_bound, end_at=backfill_bound)

    def __init__(
        self,
        *,
        batch_export_id: str,
        start_at: datetime | date | str,
        end_at: datetime | date | str,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.start_at, self.end_at = start_at, end_at
        self.wait_for_completion = check_bool("wait_for_completion", wait_for_completion)
        self.check_literal_fields()

    def check_combination(self, values: dict[str, Any]) -> None:
        if "start_at" in values and "end_at" in values:
            check_backfill_range(values["start_at"], values["end_at"])

    def execute(self, context: Context) -> Any:
        values = self.checked_fields()
        export_id, project_id = self._link_export(values), values["project_id"]
        export = self._export = self.hook.get_batch_export(export_id, project_id=project_id)
        schedule = ExportSchedule.of(export)
        start, end = check_backfill_range(values["start_at"], values["end_at"], schedule=schedule)
        backfill_id = self._earlier_backfill(context, export_id, (start, end), schedule, project_id)
        if backfill_id is None:
            self.log.info("Backfilling batch export %s over %s - %s.", export_id, start, end)
            created = self.hook.create_batch_export_backfill(
                export_id, start_at=start, end_at=end, project_id=project_id, export=export
            )
            backfill_id = check_uuid("backfill_id", created.get("backfill_id"))
            state = {"batch_export_id": export_id, "range": [start, end], "id": backfill_id}
            write_state(context, _BACKFILL_KEY, state, self.log)
            self.log.info("Started backfill %s of batch export %s.", backfill_id, export_id)
        self.backfill_url = self.hook.ui_url(project_id, backfill_ui_path(export_id))
        if self.wait_for_completion:
            return self.wait_for_backfill(context, export_id, backfill_id, project_id)
        return backfill_value(export_id, self._read_backfill(export_id, backfill_id, project_id), [])

    def _read_backfill(self, export_id: str, backfill_id: str, project_id: str | None) -> dict[str, Any]:
        # PostHog writes the backfill's row a moment after accepting it.
        return self.hook.get_batch_export_backfill(
            export_id, backfill_id, project_id=project_id, row_timeout=self.hook.backfill_row_grace
        )

    def _earlier_backfill(
        self,
        context: Context,
        export_id: str,
        bounds: tuple[str, str],
        schedule: ExportSchedule,
        project_id: str | None,
    ) -> str | None:
        """The backfill an earlier try of this task started over ``bounds``, if it is worth attaching to."""
        saved = self._earlier_try(context, _BACKFILL_KEY, batch_export_id=export_id, range=list(bounds))
        if saved is not None:
            status = self._read_backfill(export_id, saved["id"], project_id).get("status")
            if status in FAILED_STATUSES:
                self.log.info("An earlier try's backfill %s ended %s: starting anew.", saved["id"], status)
                return None
            self.log.info("Attaching to backfill %s, which an earlier try started.", saved["id"])
            return str(saved["id"])
        if task_state_store(context) is not None:
            return None  # the store would know of an earlier try's backfill
        backfills = self.hook.list_batch_export_backfills(export_id, project_id=project_id)
        active = [backfill for backfill in backfills if backfill.get("status") in ACTIVE_STATUSES]
        running = find_backfill(active, bounds, None, schedule=schedule)  # the newest, as PostHog lists first
        if running is None:
            return None
        self.log.info("Attaching to running backfill %s over the same range.", running["id"])
        return str(running["id"])


class PostHogTestBatchExportOperator(_BatchExportOperator):
    """Run PostHog's destination test steps for a batch export, in order, failing on the first failed step.

    :param batch_export_id: UUID of an existing batch export, tested with its stored destination. (templated)
    :param batch_export: create payload (name, interval, destination) of an export to be. (templated)
    :param steps: indexes or names of the steps to run; default all of them. (templated)
    :param kwargs: as for :class:`PostHogBaseOperator` (``posthog_conn_id``, ``project_id``...).
    :return: one ``{"step", "name", "status", "message"}`` per step run.
    """

    template_fields: Sequence[str] = (*_BatchExportOperator.template_fields, "batch_export", "steps")
    template_fields_renderers: ClassVar[dict[str, str]] = {"batch_export": "json"}
    field_checks = extend(
        PostHogBaseOperator.field_checks,
        batch_export_id=optional(check_uuid),
        batch_export=optional(lambda _name, payload: check_batch_export_payload(payload)),
        steps=optional(check_steps),
    )

    def __init__(
        self,
        *,
        batch_export_id: str | None = None,
        batch_export: dict[str, Any] | None = None,
        steps: Sequence[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.batch_export, self.steps = batch_export, steps
        if (batch_export_id is None) == (batch_export is None):
            raise ValueError(
                "Give exactly one of batch_export_id (an existing export) or batch_export (a payload)."
            )
        self.check_literal_fields()

    def execute(self, context: Context) -> list[dict[str, Any]]:
        values = self.checked_fields()
        project_id, export_id = values["project_id"], None
        if values["batch_export_id"] is not None:
            export_id = self._link_export(values)
            payload = payload_from_export(self.hook.get_batch_export(export_id, project_id=project_id))
            what = f"batch export {export_id}"
        else:
            payload = values["batch_export"]
            what = f"new batch export {payload['name']!r}"
        destination_type = payload["destination"].get("type")
        if destination_type not in TESTABLE_DESTINATION_TYPES:
            raise ValueError(
                f"The destination of {what} is of type {destination_type!r}, which PostHog cannot test; "
                f"it tests {', '.join(TESTABLE_DESTINATION_TYPES)}."
            )
        available = self.hook.get_batch_export_test_steps(destination_type, project_id=project_id)["steps"]
        selected = _select_steps(available, values["steps"])
        self.log.info("Testing the %s destination of %s: %d step(s).", destination_type, what, len(selected))
        results = []
        for index in selected:
            if export_id is not None:
                step = self.hook.run_batch_export_test_step(export_id, index, payload, project_id=project_id)
            else:
                step = self.hook.run_batch_export_test_step_new(payload, index, project_id=project_id)
            result = step.get("result") or {}
            name = step.get("name") or available[index].get("name")
            status, message = result.get("status"), result.get("message")
            self.log.info("Step %d %r of %s: %s %s", index, name, what, status, message or "")
            results.append({"step": index, "name": name, "status": status, "message": message})
            if status == "Failed":
                raise PostHogDestinationTestError(
                    f"Destination test of {what} failed at step {index} {name!r}: {message}"
                )
        return results


def _select_steps(available: list[dict[str, Any]], wanted: list[int | str] | None) -> list[int]:
    """Indexes of the steps to run, in PostHog's order; unknown indexes or names are an error."""
    if wanted is None:
        return list(range(len(available)))
    names = [step.get("name") for step in available]
    selected = set()
    for step in wanted:
        if isinstance(step, int) and step < len(available):
            selected.add(step)
        elif isinstance(step, str) and step in names:
            selected.add(names.index(step))
        else:
            raise ValueError(f"Invalid step {step!r}: this destination has the steps {names}.")
    return sorted(selected)
