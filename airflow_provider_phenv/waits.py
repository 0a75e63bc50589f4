"""
What every PostHog wait shares on both sides of a deferral: the status vocabulary, the event
envelope, and the hook options that travel to the triggerer.

A wait (a sensor poke, a trigger poll) ends in one of these statuses, and a trigger's event
carries the same word, so a sensor turns a poke's outcome and a trigger's event into the same
result. Importable without Airflow's trigger machinery, so DAG parsing stays cheap.
"""

from __future__ import annotations

from typing import Any, NoReturn

# common-compat resolves AirflowFailException to the Task SDK or to Airflow 3.1's core module.
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import PostHogError

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

HOOK_PARAMS = frozenset(
    {"timeout", "max_retries", "backoff", "backoff_max", "max_body_bytes", "request_deadline", "max_pages"}
)


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
    """Hook options that can travel to the triggerer: known names, plain numbers only."""
    params = dict(hook_params or {})
    for name, value in params.items():
        if name not in HOOK_PARAMS:
            raise ValueError(f"Invalid hook_params key {name!r}: expected one of {sorted(HOOK_PARAMS)}.")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"Invalid hook_params {name} {value!r}: expected a number.")
        # The hook's own check (finite, in range), so a bad value fails when the DAG is parsed.
        from airflow_provider_phenv.hooks.options import check_hook_option

        check_hook_option(name, value)
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
