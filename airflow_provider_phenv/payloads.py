"""
Request bodies built from user input, checked before any request is sent.

The hook builds its bodies with them, and operators call them in ``__init__`` and ``execute`` so a
bad value fails at DAG parse time when it can.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_phenv.validation import (
    BATCH_EXPORT_INTERVALS,
    RESTRICTION_LEVELS,
    check_bool,
    check_choice,
    check_destination_type,
    check_non_empty_str,
    check_positive_int,
)

#: The writable fields of a batch export that PostHog validates again in ``run_test_step``: it runs
#: the merged payload through the whole serializer, so a hogql-model export without its
#: ``hogql_query`` is refused for every step (docs/posthog-api.md §6.6).
EXPORT_FIELDS = (
    "name",
    "model",
    "interval",
    "start_at",
    "end_at",
    "hogql_query",
    "hogql_modifiers",
    "primary_key",
    "version_key",
    "incremental_mode",
    "filters",
    "timezone",
    "offset_day",
    "offset_hour",
)


def payload_from_export(export: dict[str, Any]) -> dict[str, Any]:
    """Every non-null field of an existing export that PostHog's ``run_test_step`` validates."""
    destination = export.get("destination") or {}
    payload_destination = {
        key: destination[key] for key in ("type", "config", "integration") if key in destination
    }
    payload = {key: export[key] for key in EXPORT_FIELDS if export.get(key) is not None}
    return {**payload, "destination": payload_destination}


def check_batch_export_payload(payload: Any) -> dict[str, Any]:
    """Check a batch export create payload before testing it: name, interval, destination type."""
    if not isinstance(payload, dict):
        raise ValueError(
            f"Invalid batch_export payload {payload!r}: expected a dict with name, interval, destination."
        )
    check_non_empty_str("batch_export name", payload.get("name"))
    check_choice("interval", payload.get("interval"), BATCH_EXPORT_INTERVALS)
    destination = payload.get("destination")
    if not isinstance(destination, dict):
        raise ValueError(
            f"Invalid batch_export destination {destination!r}: expected a dict with type and config."
        )
    check_destination_type(destination.get("type"), testable=True)
    return payload


def _check_description(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"Invalid {name} {value!r}: expected a string.")
    return value


def _check_tags(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(tag, str) and tag.strip() for tag in value):
        raise ValueError(f"Invalid {name} {value!r}: expected a list of non-empty strings.")
    return list(value)


#: A dashboard's own fields with their checks, written once: the hook's create and update, the
#: dashboard operator's parameters and its ``if_exists="update"`` comparison all read them here.
DASHBOARD_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "name": lambda _name, value: check_non_empty_str("dashboard name", value, max_length=400),
    "description": _check_description,
    "pinned": check_bool,
    "tags": _check_tags,
    "restriction_level": lambda name, value: check_choice(name, value, RESTRICTION_LEVELS),
    "use_template": check_non_empty_str,
    "use_dashboard": check_positive_int,
}
#: The fields that only apply when a dashboard is created.
CREATE_ONLY = ("use_template", "use_dashboard")


def dashboard_payload(*, create: bool = True, **fields: Any) -> dict[str, Any]:
    """
    Check dashboard fields and build a request body: :data:`DASHBOARD_FIELDS` (those given as
    ``None`` are left out) and any other field PostHog accepts (``filters``...), as given.

    :param create: the body of a create (``name`` required) rather than of an update.
    """
    if create and fields.get("name") is None:
        raise ValueError("A dashboard needs a name.")
    if not create and any(fields.get(name) is not None for name in CREATE_ONLY):
        raise ValueError("use_template and use_dashboard only apply when a dashboard is created.")
    if fields.get("use_template") is not None and fields.get("use_dashboard") is not None:
        raise ValueError("use_template and use_dashboard cannot be used together: pick one.")
    if fields.get("filters") and not isinstance(fields["filters"], dict):
        raise ValueError(f"Invalid filters {fields['filters']!r}: expected a dict.")
    body = {name: value for name, value in fields.items() if name not in DASHBOARD_FIELDS}
    for name, check in DASHBOARD_FIELDS.items():
        if fields.get(name) is not None:
            body[name] = check(name, fields[name])
    return body
