"""What the logs sensor and its trigger agree on, importable without loading Airflow's trigger machinery.

The sensor imports the trigger class only when it defers, so parsing a DAG file stays cheap.
"""

from __future__ import annotations

from typing import Any

#: Every event the trigger can fire. ``execute_complete`` rejects anything else.
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})
HOOK_PARAMS = frozenset({"timeout", "max_retries", "backoff", "backoff_max"})


def check_hook_params(hook_params: dict[str, Any] | None) -> dict[str, Any]:
    """Hook options that can travel to the triggerer: known names, plain numbers only."""
    params = dict(hook_params or {})
    for name, value in params.items():
        if name not in HOOK_PARAMS:
            raise ValueError(f"Invalid hook_params key {name!r}: expected one of {sorted(HOOK_PARAMS)}.")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"Invalid hook_params {name} {value!r}: expected a number.")
    return params
