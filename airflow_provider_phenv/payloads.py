"""
Request bodies built from user input, checked before any request is sent.

The hook builds its bodies with them, and operators call them in ``__init__`` and ``execute`` so a
bad value fails at DAG parse time when it can.
"""

from __future__ import annotations

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


def dashboard_payload(
    *,
    name: str,
    description: str | None = None,
    pinned: bool | None = None,
    tags: list[str] | None = None,
    restriction_level: int | None = None,
    use_template: str | None = None,
    use_dashboard: int | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Validate dashboard fields and build the body of a create request."""
    body: dict[str, Any] = {"name": check_non_empty_str("dashboard name", name, max_length=400)}
    if description is not None:
        if not isinstance(description, str):
            raise ValueError(f"Invalid description {description!r}: expected a string.")
        body["description"] = description
    if pinned is not None:
        body["pinned"] = check_bool("pinned", pinned)
    if tags is not None:
        if not isinstance(tags, (list, tuple)) or not all(
            isinstance(tag, str) and tag.strip() for tag in tags
        ):
            raise ValueError(f"Invalid tags {tags!r}: expected a list of non-empty strings.")
        body["tags"] = list(tags)
    if restriction_level is not None:
        body["restriction_level"] = check_choice("restriction_level", restriction_level, RESTRICTION_LEVELS)
    if use_template is not None and use_dashboard is not None:
        raise ValueError("use_template and use_dashboard cannot be used together: pick one.")
    if use_template is not None:
        body["use_template"] = check_non_empty_str("use_template", use_template)
    if use_dashboard is not None:
        body["use_dashboard"] = check_positive_int("use_dashboard", use_dashboard)
    if "filters" in fields and fields["filters"] and not isinstance(fields["filters"], dict):
        raise ValueError(f"Invalid filters {fields['filters']!r}: expected a dict.")
    return {**body, **fields}
