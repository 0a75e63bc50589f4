"""
Checks on user input, run before any request is sent.

Operators call them in ``__init__`` for literal values and again in ``execute`` after templates are
rendered; the hook calls them on every public method. Each error names the parameter and the bad
value, so a typo in a DAG fails with a message that points at it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

# PostHog's BatchExportDestination.Destination choices (docs/posthog-api.md §5).
DESTINATION_TYPES = (
    "S3",
    "AwsS3",
    "S3Compatible",
    "Snowflake",
    "Postgres",
    "Redshift",
    "BigQuery",
    "Databricks",
    "AzureBlob",
    "Workflows",
    "HTTP",
    "NoOp",
    "FileDownload",
)
# Destinations for which PostHog offers test steps (GET batch_exports/test/).
TESTABLE_DESTINATION_TYPES = (
    "AwsS3",
    "S3Compatible",
    "S3",
    "BigQuery",
    "Snowflake",
    "Databricks",
    "AzureBlob",
)
BATCH_EXPORT_INTERVALS = ("hour", "day", "week", "every 5 minutes", "every 15 minutes")
RESTRICTION_LEVELS = (21, 37)
COLLABORATOR_LEVELS = (21, 37)
LOG_LEVELS = ("DEBUG", "LOG", "INFO", "WARNING", "ERROR")
# PostHog's BatchExportRun.Status choices, accepted by the runs list's ``status`` filter.
RUN_STATUSES = (
    "Cancelled",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "FailedRetryable",
    "FailedBilling",
    "Terminated",
    "TimedOut",
    "Starting",
    "Running",
)
MAX_LOGS_LIMIT = 500

_TEMPLATE_MARKERS = ("{{", "{%")


def is_template(value: Any) -> bool:
    """
    Whether ``value`` is only known when the task runs, so it cannot be checked yet: a Jinja
    string, or an upstream task's output (``XComArg``), as in ``.partial(dashboard_id=task.output)``.
    """
    from airflow.sdk import XComArg

    if isinstance(value, XComArg):
        return True
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def _fail(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"Invalid {name} {value!r}: expected {expected}.")


def check_uuid(name: str, value: Any) -> str:
    """Return ``value`` as a canonical UUID string or raise ``ValueError`` naming it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            pass
    raise _fail(name, value, "a UUID such as '018f2c3e-8d4a-7b1e-9c2d-3e4f5a6b7c8d'")


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as a positive int (accepting digit strings, as rendered templates are)."""
    if isinstance(value, bool):
        raise _fail(name, value, "a positive integer id")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    raise _fail(name, value, "a positive integer id")


def check_project_id(value: Any) -> str:
    """Return a project id for the URL: a positive integer or PostHog's ``@current`` alias."""
    if value == "@current":
        return value
    return str(check_positive_int("project_id", value))


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` when it is one of ``choices`` (ints may arrive as rendered strings)."""
    options = tuple(choices)
    if isinstance(value, str) and value.strip().isdigit() and int(value) in options:
        return int(value)
    if value in options and not isinstance(value, bool):
        return value
    raise _fail(name, value, "one of " + ", ".join(repr(option) for option in options))


def check_destination_type(value: Any, *, testable: bool = False) -> str:
    """Return a PostHog destination type; ``testable`` limits it to types PostHog can test."""
    return check_choice(
        "destination type", value, TESTABLE_DESTINATION_TYPES if testable else DESTINATION_TYPES
    )


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as a bool, accepting the strings a rendered template produces."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(name, value, "true or false")


def check_non_empty_str(name: str, value: Any, *, max_length: int | None = None) -> str:
    """Return a non-blank string, at most ``max_length`` characters long."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, value, "a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise _fail(name, value[:40] + "...", f"at most {max_length} characters")
    return value


def check_regex(name: str, value: Any) -> re.Pattern[str]:
    """Compile a regular expression, naming the parameter when it does not compile."""
    if not isinstance(value, str):
        raise _fail(name, value, "a regular expression string")
    try:
        return re.compile(value)
    except re.error as error:
        raise ValueError(f"Invalid {name} {value!r}: not a regular expression ({error}).") from None


def check_log_levels(name: str, value: Any) -> tuple[str, ...]:
    """Return log levels upper-cased; ``value`` is one level, a comma list, or a list of levels."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise _fail(name, value, "a level or a list of levels from " + ", ".join(LOG_LEVELS))
    levels = []
    for item in items:
        level = item.strip().upper() if isinstance(item, str) else item
        if level not in LOG_LEVELS:
            raise _fail(name, item, "one of " + ", ".join(LOG_LEVELS))
        levels.append(level)
    return tuple(dict.fromkeys(levels))


def check_filter_names(kind: str, filters: Mapping[str, Any], allowed: Collection[str]) -> None:
    """
    Refuse a filter keyword that is not one of ``allowed``, as Python refuses a misspelt argument.

    Hook methods take their filters as ``**filters`` typed by a ``TypedDict``; mypy checks the names
    in typed code, this check does it at run time for the rest (DAG files, rendered dicts).
    """
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise TypeError(f"Unknown {kind} filter {', '.join(unknown)}: expected {', '.join(allowed)}.")


def parse_timestamp(name: str, value: Any, *, naive_ok: bool = True) -> datetime:
    """
    Return an aware UTC datetime from a datetime or an ISO 8601 string.

    :param naive_ok: take a value without a timezone as UTC; when false, refuse it, for filters
        where a guessed timezone would silently shift the answer by hours.
    """
    if isinstance(value, str):
        text = value.strip()
        # datetime.fromisoformat only understands a trailing "Z" from Python 3.11 on.
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise _fail(name, value, "an ISO 8601 timestamp such as '2026-01-31T12:00:00Z'") from None
    if not isinstance(value, datetime):
        raise _fail(name, value, "a datetime or an ISO 8601 timestamp")
    if value.tzinfo is None:
        if not naive_ok:
            raise _fail(name, value, "a timestamp with a timezone, such as '2026-01-31T12:00:00Z'")
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    """Format a UTC datetime the way PostHog writes log timestamps (microseconds, ``Z``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
