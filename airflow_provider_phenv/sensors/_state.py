"""
Where the log sensor keeps ``since`` and its cursor between pokes, reschedules, deferral and retries.

On Airflow >= 3.3 the task context has ``task_state_store``: per task instance (dag, run, task,
map index), shared by every try, kept in the metadata database. The sensor saves ``since`` there on
its first poke and the cursor whenever it moves, so a rescheduled poke or a retry asks PostHog only
for news. Older Airflow has no such store: poke mode keeps the state in memory, deferrable mode
carries it through the trigger, and reschedule mode starts each poke from ``since`` again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_phenv.log_watch import LogCursor
from airflow_provider_phenv.task_state import read_state, write_state
from airflow_provider_phenv.validation import format_timestamp, parse_timestamp

STATE_KEY = "posthog_batch_export_logs_watch"


@dataclass
class WatchState:
    """
    ``since`` and the cursor of one sensor task instance.

    :param since: only entries after this moment count.
    :param cursor: how far the log has been judged.
    :param fingerprint: digest of the criteria the cursor was built with.
    :param saved: the JSON last read from or written to the store, to skip needless writes.
    """

    since: datetime
    cursor: LogCursor
    fingerprint: str
    saved: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": format_timestamp(self.since),
            "cursor": self.cursor.to_json(),
            "criteria": self.fingerprint,
        }


def load_state(
    context: Any,
    *,
    explicit_since: datetime | None,
    fingerprint: str,
    default_since: Callable[[], datetime],
    log: logging.Logger | Any,
) -> WatchState:
    """
    The state to continue from: the saved one when it applies, else a fresh cursor at ``since``.

    ``since`` is the explicit value if given, else the saved one (the moment the task first
    started, fixed by the first poke of the first try), else ``default_since()``. A saved cursor is
    reused only if it was built with the same ``since`` and criteria.
    """
    saved = read_state(context, STATE_KEY, log)
    saved_since = _saved_time(saved, "since")
    since = explicit_since or saved_since or default_since()
    cursor = LogCursor.start(since)
    if saved is not None and saved_since == since and saved.get("criteria") == fingerprint:
        try:
            cursor = LogCursor.from_json(saved.get("cursor"))
        except ValueError as error:
            log.warning("Ignoring a malformed saved cursor: %s", error)
    state = WatchState(since=since, cursor=cursor, fingerprint=fingerprint, saved=saved)
    log.info("Counting log entries after %s; cursor %s.", format_timestamp(since), cursor.to_json())
    return state


def save_state(context: Any, state: WatchState, *, log: logging.Logger | Any) -> None:
    """Write the state to the task state store when there is one and the state changed."""
    data = state.to_json()
    if data != state.saved and write_state(context, STATE_KEY, data, log):
        state.saved = data


def _saved_time(saved: dict[str, Any] | None, key: str) -> datetime | None:
    if not saved or not saved.get(key):
        return None
    try:
        return parse_timestamp(key, saved[key])
    except ValueError:
        return None
