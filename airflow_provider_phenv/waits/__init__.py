"""What PostHog waits share on both sides of a deferral: outcomes, events, deferral, state (docs/waits.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

# common-compat resolves AirflowFailException to the Task SDK or to Airflow 3.1's core module.
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.settings import HookOptions
from airflow_provider_phenv.validation import RunStatus

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

# A wait's outcome, and the status of the trigger event that carries it.
WAITING = "waiting"  # nothing decided yet: poll again
SUCCESS = "success"
FAILED = "failed"  # PostHog says the awaited work failed: quote it
TIMEOUT = "timeout"  # the deadline passed (the trigger reports it, with its cursor)
ERROR = "error"  # PostHog could not be read, after the hook's retries
EVENT_STATUSES = frozenset({SUCCESS, FAILED, TIMEOUT, ERROR})

#: Final statuses of a run (or backfill) that did not export its data.
FAILED_STATUSES = frozenset(
    {
        RunStatus.FAILED,
        RunStatus.FAILED_BILLING,
        RunStatus.CANCELLED,
        RunStatus.TERMINATED,
        RunStatus.TIMED_OUT,
    }
)
#: Statuses after which a run (or backfill) never changes.
FINAL_STATUSES = FAILED_STATUSES | {RunStatus.COMPLETED}
#: Statuses of a run (or backfill) that may still change, in :class:`RunStatus` order.
ACTIVE_STATUSES = tuple(status for status in RunStatus if status not in FINAL_STATUSES)
#: How many runs PostHog puts in an export's ``latest_runs``, newest first (docs/posthog-api.md §5).
LATEST_RUNS = 10

#: The fields of a run worth keeping in XCom and events (:func:`run_summary`).
SUMMARY_FIELDS = ("id", "status", "data_interval_start", "data_interval_end", "records_completed")
#: The fields of a run event, in this order: the summary's (``id`` as ``run_id``) and the error.
EVENT_FIELDS = ("batch_export_id", "run_id", *SUMMARY_FIELDS[1:], "latest_error")


def run_event(batch_export_id: str, run: dict[str, Any]) -> dict[str, Any]:
    """The payload of one run's event (:data:`EVENT_FIELDS`): plain JSON values only."""
    fields = {key: run.get(key) for key in EVENT_FIELDS[2:]}
    return {"batch_export_id": batch_export_id, "run_id": run["id"], **fields}


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`SUMMARY_FIELDS` of a run."""
    return {key: run.get(key) for key in SUMMARY_FIELDS}


class PostHogWaitError(PostHogError):
    """A deferred wait could not read PostHog (it kept failing) or resumed with an invalid event."""


class PostHogWaitRefusedError(PostHogWaitError, AirflowFailException):
    """A deferred wait got an answer no retry can change (400, 401, 403, 404): no Airflow retries."""


def raise_wait_error(
    event: dict[str, Any], message: str, error: type[PostHogWaitError] = PostHogWaitError
) -> NoReturn:
    """Raise the error an ``error`` event stands for; ``final`` events end the task without retries."""
    if event.get("final"):
        raise PostHogWaitRefusedError(message)
    raise error(message)


def check_hook_params(hook_params: dict[str, Any] | None) -> dict[str, Any]:
    """Hook options that can travel to the triggerer, checked as the hook checks them."""
    params = dict(hook_params or {})
    HookOptions.of(params, "hook_params")
    return params


def check_event(event: Any, about: str, error: type[PostHogWaitError] = PostHogWaitError) -> dict[str, Any]:
    """The event a trigger fired, checked before a resuming task trusts it; ``about`` names the wait."""
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise error(
            f"Unexpected trigger event for {about}: {event!r}; expected a status in {sorted(EVENT_STATUSES)}."
        )
    return event


#: The trigger reports its own deadline (with its state); Airflow's deferral timeout is a backstop.
DEFER_TIMEOUT_GRACE = 60.0


class DeferringTask(Protocol):
    """What :func:`defer_to_trigger` needs of a task: its connection, its hook options, ``defer``."""

    posthog_conn_id: str
    hook_params: dict[str, Any]

    def defer(self, *args: Any, **kwargs: Any) -> NoReturn: ...


def defer_to_trigger(
    task: DeferringTask,
    make_trigger: Callable[[dict[str, Any]], BaseTrigger],
    *,
    project_id: str | None,
    poll_interval: float,
    deadline: float | None,
    resume_kwargs: dict[str, Any],
) -> NoReturn:
    """Hand a wait the task has just polled to a trigger; the task resumes in ``execute_complete``.

    :param make_trigger: builds the trigger from the polling options of ``PostHogPollTrigger``.
    :param deadline: UNIX time at which the trigger reports ``timeout``; None for no limit.
    :param resume_kwargs: what ``execute_complete`` gets besides the event.
    """
    now = time.time()
    poll = {
        "posthog_conn_id": task.posthog_conn_id,
        "project_id": project_id,
        "poll_interval": poll_interval,
        "end_time": deadline,
        "first_poll_at": now + poll_interval,  # the task has just polled
        "hook_params": task.hook_params,
    }
    timeout = None
    if deadline is not None:
        timeout = timedelta(seconds=max(0.0, deadline - now) + poll_interval + DEFER_TIMEOUT_GRACE)
    # BaseOperator.defer raises TaskDeferred: the worker leaves here.
    task.defer(
        trigger=make_trigger(poll), method_name="execute_complete", kwargs=resume_kwargs, timeout=timeout
    )


def task_state_store(context: Any) -> Any | None:
    """The context's task state store (Airflow >= 3.3), or None on older versions and in bare tests."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    return store if hasattr(store, "get") and hasattr(store, "set") else None


def read_state(context: Any, key: str, log: logging.Logger | Any) -> dict[str, Any] | None:
    """The dict saved under ``key``, or None (no store, nothing saved, or the store failed)."""
    store = task_state_store(context)
    try:
        saved = None if store is None else store.get(key)
    except Exception as error:
        # The store only spares work on retries; a failing read must not fail the task.
        log.warning("Could not read %s from task_state_store: %s", key, error)
        return None
    return saved if isinstance(saved, dict) else None


def write_state(context: Any, key: str, value: dict[str, Any], log: logging.Logger | Any) -> bool:
    """Save ``value`` under ``key``; False when there is no store or the write failed."""
    store = task_state_store(context)
    if store is None:
        return False
    try:
        store.set(key, value)
    except Exception as error:
        log.warning("Could not save %s to task_state_store: %s", key, error)
        return False
    return True
