"""
The base of the PostHog triggers: a poll loop in the triggerer that sends GET requests only.

A subclass says what one poll does (:meth:`PostHogPollTrigger.poll`) and what state its events
carry (:meth:`PostHogPollTrigger.event_state`). This class owns the rest: one async hook with a
connection kept alive across polls, the first poll one interval after the sensor's own, the
deadline (the trigger reports ``timeout`` itself), and turning errors into an ``error`` event. A
restarted triggerer may run a trigger twice, which is harmless because nothing here writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook
from airflow_provider_phenv.validation import check_project_id
from airflow_provider_phenv.waits import ERROR, TIMEOUT, check_hook_params


class PostHogPollTrigger(BaseTrigger):
    """
    Poll PostHog until :meth:`poll` returns an event, or the deadline passes.

    :param posthog_conn_id: Airflow connection id of type ``posthog``.
    :param project_id: PostHog project id; default: the connection's.
    :param poll_interval: seconds between polls.
    :param end_time: UNIX time at which to fire ``timeout``; None to wait forever.
    :param first_poll_at: UNIX time of the first poll; None to poll at once. A sensor sets it one
        interval after its own poll, so a deferral does not read PostHog twice in a row.
    :param hook_params: keyword arguments for :class:`PostHogAsyncHook` (numbers only).
    """

    #: Seconds a poll may run past ``end_time`` before the trigger reports its timeout anyway.
    poll_grace = 5.0

    def __init__(
        self,
        *,
        posthog_conn_id: str = PostHogAsyncHook.default_conn_name,
        project_id: int | str | None = None,
        poll_interval: float = 60.0,
        end_time: float | None = None,
        first_poll_at: float | None = None,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.posthog_conn_id = posthog_conn_id
        self.project_id = None if project_id in (None, "") else check_project_id(project_id)
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or poll_interval < 0
        ):
            raise ValueError(f"Invalid poll_interval {poll_interval!r}: expected a non-negative number.")
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.hook_params = check_hook_params(hook_params)

    # -- what a subclass provides ----------------------------------------------------------------

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
        """The message of the ``timeout`` event."""
        return f"Sensor has timed out: nothing decided the wait on {self.about()} before the deadline."

    # -- the loop --------------------------------------------------------------------------------

    def common_kwargs(self) -> dict[str, Any]:
        """The base's constructor arguments, for a subclass's ``serialize()``."""
        return {
            "posthog_conn_id": self.posthog_conn_id,
            "project_id": self.project_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "first_poll_at": self.first_poll_at,
            "hook_params": dict(self.hook_params),
        }

    def event(self, status: str, **fields: Any) -> dict[str, Any]:
        """An event payload: the status, the subclass's state, then ``fields``."""
        return {"status": status, **self.event_state(), **fields}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        """Poll until something decides; return the one event payload."""
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
                    await self._sleep_until(time.time() + self.poll_interval)
        except PostHogError as error:
            # The hook already retried what is worth retrying (429, 5xx, dropped connections).
            self.log.error("Giving up waiting on %s: %s", self.about(), error)
            # ``final``: PostHog's answer cannot change on a retry (400, 401, 403, 404).
            return self.event(ERROR, message=str(error), final=isinstance(error, AirflowFailException))
        except Exception as error:
            self.log.exception("Unexpected error while waiting on %s", self.about())
            return self.event(ERROR, message=f"{type(error).__name__}: {error}")

    async def _poll_until_deadline(self, hook: PostHogAsyncHook) -> dict[str, Any] | None:
        """One poll, cut short at the deadline: a slow or endless listing cannot outlast ``end_time``."""
        if self.end_time is None:
            return await self.poll(hook)
        try:
            # The last poll starts at the deadline: every poll gets ``poll_grace`` beyond it.
            remaining = max(self.end_time - time.time(), 0.0) + self.poll_grace
            return await asyncio.wait_for(self.poll(hook), remaining)
        except asyncio.TimeoutError:
            return self.event(TIMEOUT, message=self.timeout_message())

    async def _sleep_until(self, moment: float | None) -> None:
        """Sleep until ``moment``, but never past the deadline (the last poll happens at it)."""
        if moment is None:
            return
        if self.end_time is not None:
            moment = min(moment, self.end_time)
        await asyncio.sleep(max(0.0, moment - time.time()))
