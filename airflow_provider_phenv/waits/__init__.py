"""
The vocabulary of every PostHog wait, shared on both sides of a deferral: the outcome statuses,
the event envelope, the hook options that travel to the triggerer, and the task state store.

A wait (a sensor poke, a trigger poll) ends in one of these statuses, and a trigger's event
carries the same word, so a sensor turns a poke's outcome and a trigger's event into the same
result. Importable without Airflow's trigger machinery, so DAG parsing stays cheap.

The package's other modules are the judgements and their state: :mod:`.runs` (runs and
backfills), :mod:`.logs` (a batch export's log) and :mod:`.events` (runs as asset events).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

# common-compat resolves AirflowFailException to the Task SDK or to Airflow 3.1's core module.
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.options import HookOptions
from airflow_provider_phenv.validation import RunStatus

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

#: Nothing decided yet: poll again.
WAITING = "waiting"
#: The condition holds: the task succeeds.
SUCCESS = "success"
#: PostHog says the awaited work failed: the task fails, quoting PostHog.
FAILED = "failed"
#: The deadline passed (the trigger reports it itself, with its cursor).
TIMEOUT = "timeout"
#: PostHog could not be read, after the hook's retries.
ERROR = "error"
#: Every status a trigger event can carry; anything else is rejected when the task resumes.
EVENT_STATUSES = frozenset({SUCCESS, FAILED, TIMEOUT, ERROR})

# -- run and backfill statuses: the groups every judgement uses ----------------------------------

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

# -- what travels to the triggerer -------------------------------------------------------------------


class PostHogWaitError(PostHogError):
    """A deferred wait could not read PostHog (it kept failing) or resumed with an invalid event."""


class PostHogWaitRefusedError(PostHogWaitError, AirflowFailException):
    """
    A deferred wait got an answer no retry can change (PostHog's 400, 401, 403 or 404): the task
    fails without Airflow retries, as it does when the same answer comes in the worker.
    """


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
    """
    The event a trigger fired, checked before a resuming task trusts it.

    :param event: the event payload as the task receives it.
    :param about: what the wait is about, for the message (``batch export <id>``).
    :param error: the exception class to raise.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise error(
            f"Unexpected trigger event for {about}: {event!r}; expected a status in {sorted(EVENT_STATUSES)}."
        )
    return event


# -- handing a wait to the triggerer ------------------------------------------------------------------

#: Headroom between a trigger's own deadline and the framework's deferral timeout: the trigger
#: normally reports the timeout itself (with its state); the framework timeout is only a backstop.
DEFER_TIMEOUT_GRACE = 60.0


class DeferringTask(Protocol):
    """What :func:`defer_to_trigger` needs of a task: its connection, its hook options, ``defer``."""

    posthog_conn_id: str
    hook_params: dict[str, Any]

    def defer(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | int | float | None = None,
    ) -> NoReturn: ...


def defer_to_trigger(
    task: DeferringTask,
    make_trigger: Callable[[dict[str, Any]], BaseTrigger],
    *,
    project_id: str | None,
    poll_interval: float,
    deadline: float | None,
    resume_kwargs: dict[str, Any],
) -> NoReturn:
    """
    Hand a wait the task has just polled to a trigger; the task resumes in ``execute_complete``.

    :param task: the sensor or operator that waits.
    :param make_trigger: builds the trigger from the keyword arguments every
        :class:`~airflow_provider_phenv.triggers.base.PostHogPollTrigger` takes (connection,
        project, poll interval, end time, first poll, hook options).
    :param project_id: the project, or None for the connection's.
    :param poll_interval: seconds between polls; the trigger's first poll is one interval from now.
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


# -- the task state store ---------------------------------------------------------------------------
#
# ``context["task_state_store"]`` exists from Airflow 3.3 on: one store per task instance (dag, run,
# task, map index), shared by every try and kept in the metadata database. The provider keeps there
# what must survive a retry (the logs sensor's cursor, the dashboard a create may already have
# made). On older Airflow, and in bare unit-test contexts, there is none and callers fall back to
# what they can look up.


def task_state_store(context: Any) -> Any | None:
    """The context's task state store (Airflow >= 3.3), or None on older versions and in bare tests."""
    getter = getattr(context, "get", None)
    store = getter("task_state_store") if getter else None
    if store is None or not (hasattr(store, "get") and hasattr(store, "set")):
        return None
    return store


def read_state(context: Any, key: str, log: logging.Logger | Any) -> dict[str, Any] | None:
    """The dict saved under ``key``, or None (no store, nothing saved, or the store failed)."""
    store = task_state_store(context)
    if store is None:
        return None
    try:
        saved = store.get(key)
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
