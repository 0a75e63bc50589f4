"""
Access to Airflow's per-task-instance state store, where the provider keeps what must survive a
retry: the logs sensor's cursor, the dashboard a create may already have made.

``context["task_state_store"]`` exists from Airflow 3.3 on: one store per task instance (dag, run,
task, map index), shared by every try and kept in the metadata database. On older Airflow, and in
bare unit-test contexts, there is none and callers fall back to what they can look up.
"""

from __future__ import annotations

import logging
from typing import Any


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
