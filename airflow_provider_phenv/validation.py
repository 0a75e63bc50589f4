"""Checks on user input and request bodies before any request; errors name the parameter and the bad value.
Tasks declare theirs as ``field_checks`` (:class:`CheckedFields`), run in ``__init__`` and in ``execute``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from enum import Enum
from functools import partial
from types import MappingProxyType
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Destinations for which PostHog offers test steps (GET batch_exports/test/). The legacy type
# ``S3`` has none: its test endpoint answers an empty 404 and run_test_step a 500 (docs §6.8).
TESTABLE_DESTINATION_TYPES = ("AwsS3", "S3Compatible", "BigQuery", "Snowflake", "Databricks", "AzureBlob")
BATCH_EXPORT_INTERVALS = ("hour", "day", "week", "every 5 minutes", "every 15 minutes")
RESTRICTION_LEVELS = (21, 37)
COLLABORATOR_LEVELS = (21, 37)
#: Access levels PostHog's access controls take on a dashboard, lowest first; ``None`` (sent as
#: null) removes a rule (docs/posthog-api.md §7.4).
DASHBOARD_ACCESS_LEVELS = ("none", "viewer", "editor", "manager")
LOG_LEVELS = ("DEBUG", "LOG", "INFO", "WARNING", "ERROR")


class RunStatus(str, Enum):
    """PostHog's ``BatchExportRun.Status``, also a backfill's (docs/posthog-api.md §5): its strings."""

    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    FAILED_RETRYABLE = "FailedRetryable"
    FAILED_BILLING = "FailedBilling"
    TERMINATED = "Terminated"
    TIMED_OUT = "TimedOut"
    STARTING = "Starting"
    RUNNING = "Running"

    def __str__(self) -> str:
        # PostHog's word in messages and URLs on every Python (3.12 changed str() of mixed-in enums).
        return self.value


#: The statuses as PostHog's plain strings, for checks and their messages.
RUN_STATUSES = tuple(status.value for status in RunStatus)

MAX_LOGS_LIMIT = 500


def is_template(value: Any) -> bool:
    """Whether ``value`` is only known when the task runs: a Jinja string or an upstream ``XComArg``."""
    from airflow.sdk import XComArg

    return isinstance(value, XComArg) or (isinstance(value, str) and any(m in value for m in ("{{", "{%")))


def _fail(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"Invalid {name} {value!r}: expected {expected}.")


def check_uuid(name: str, value: Any) -> str:
    """Return ``value`` as a canonical UUID string or raise ``ValueError`` naming it."""
    with suppress(ValueError):
        if isinstance(value, (str, uuid.UUID)):
            return str(uuid.UUID(str(value).strip()))
    raise _fail(name, value, "a UUID such as '018f2c3e-8d4a-7b1e-9c2d-3e4f5a6b7c8d'")


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as a positive int (accepting digit strings, as rendered templates are)."""
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    raise _fail(name, value, "a positive integer id")


def check_seconds(name: str, value: Any, *, zero_ok: bool = False) -> float:
    """A finite number of seconds or a ``timedelta``: positive, or with ``zero_ok`` non-negative."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    is_number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not is_number or not 0 <= seconds < float("inf") or (seconds == 0 and not zero_ok):
        sign = "non-negative" if zero_ok else "positive"
        raise _fail(name, value, f"a {sign} number of seconds or a timedelta")
    return float(seconds)


def check_project_id(value: Any) -> str:
    """Return a project id for the URL: a positive integer or PostHog's ``@current`` alias."""
    return value if value == "@current" else str(check_positive_int("project_id", value))


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` when it is one of ``choices`` (ints may arrive as rendered strings)."""
    options = tuple(choices)
    if isinstance(value, str) and value.strip().isdigit() and int(value) in options:
        return int(value)
    if value in options and not isinstance(value, bool):
        return value
    raise _fail(name, value, "one of " + ", ".join(repr(option) for option in options))


def check_destination_type(value: Any) -> str:
    """Return a destination type PostHog can test, the only kind checked here (docs/posthog-api.md §5)."""
    return check_choice("destination type", value, TESTABLE_DESTINATION_TYPES)


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
    """Refuse a ``**filters`` keyword not in ``allowed`` at run time, as mypy does for typed code."""
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise TypeError(f"Unknown {kind} filter {', '.join(unknown)}: expected {', '.join(allowed)}.")


def parse_timestamp(name: str, value: Any, *, naive_ok: bool = True) -> datetime:
    """Return an aware UTC datetime from a datetime or an ISO 8601 string.

    :param naive_ok: take a value without a timezone as UTC, else refuse it.
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


_OFFSETS = ("offset_day", "offset_hour")
#: Export intervals whose backfills PostHog takes as dates, not datetimes (docs/posthog-api.md §6.9).
DATE_ONLY_INTERVALS = ("day", "week")
# PostHog's offset_day numbers its weekdays from Sunday = 0 (docs/posthog-api.md §5).
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class ExportSchedule:
    """How PostHog reads an export's backfill bounds: days at ``offset_hour`` in ``timezone`` (§6.9)."""

    interval: str | None = None
    timezone: str = "UTC"
    offset_day: int = 0
    offset_hour: int = 0

    @classmethod
    def of(cls, export: Mapping[str, Any]) -> ExportSchedule:
        """The schedule of an export as ``get_batch_export`` returns it."""
        offsets = {key: export[key] for key in _OFFSETS if isinstance(export.get(key), int)}
        return cls(interval=export.get("interval"), timezone=export.get("timezone") or "UTC", **offsets)

    @property
    def dates_only(self) -> bool:
        return self.interval in DATE_ONLY_INTERVALS

    @property
    def zone(self) -> tzinfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return timezone.utc  # PostHog validated the name; a zone this machine lacks reads as UTC

    def start_of(self, day: date) -> datetime:
        """The moment PostHog reads a date bound as: ``offset_hour`` on that day in the export's timezone."""
        return datetime.combine(day, time(hour=self.offset_hour)).replace(tzinfo=self.zone)

    def day_at_or_before(self, moment: datetime) -> date:
        """The latest day start PostHog reads (on the weekday, if weekly) at or before ``moment``."""
        day = moment.astimezone(self.zone).date()
        while self.start_of(day) > moment or (
            self.interval == "week" and day.isoweekday() % 7 != self.offset_day
        ):
            day -= timedelta(days=1)
        return day

    def describe(self) -> str:
        """How the export's days start, for messages: ``every day at 02:00 Europe/Berlin``."""
        days = f"weekly on {_WEEKDAYS[self.offset_day]}" if self.interval == "week" else "every day"
        return f"{days} at {self.offset_hour:02d}:00 {self.timezone}"

    def as_day(self, name: str, value: Any, moment: datetime | date) -> date:
        """A date bound of a daily or weekly export: a date, or a datetime at midnight UTC or at day start."""
        day = moment
        if isinstance(moment, datetime):
            local = moment.astimezone(self.zone)
            if moment.astimezone(timezone.utc).time() == time.min:
                day = moment.astimezone(timezone.utc).date()
            elif local.time() == time(hour=self.offset_hour):
                day = local.date()
            else:
                raise ValueError(
                    f"Invalid {name} {value!r}: batch export runs {self.describe()}, so PostHog backfills "
                    f"whole days and takes dates only; give a date such as {local.date().isoformat()!r}."
                )
        weekday = day.isoweekday() % 7
        if self.interval == "week" and weekday != self.offset_day:
            raise ValueError(
                f"Invalid {name} {value!r}: {day.isoformat()} is a {_WEEKDAYS[weekday]}, but the batch "
                f"export runs {self.describe()}; give a {_WEEKDAYS[self.offset_day]}."
            )
        return day


def backfill_bound(name: str, value: Any) -> datetime | date:
    """A backfill bound: a date, an aware datetime, or ISO 8601 text of either."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and len(text) == 10:
        with suppress(ValueError):
            return date.fromisoformat(text)
    if isinstance(text, (str, datetime)):
        return parse_timestamp(name, text, naive_ok=False)
    if isinstance(value, date):
        return value
    raise _fail(name, value, "a date, a datetime with a timezone, or ISO 8601 text of either")


def backfill_moment(value: Any, schedule: ExportSchedule | None = None) -> datetime | None:
    """A backfill bound as the moment PostHog stores (a date read for ``schedule``); None if unreadable."""
    try:
        moment = backfill_bound("bound", value)
    except ValueError:
        return None
    if isinstance(moment, datetime):
        return moment
    return (schedule or ExportSchedule()).start_of(moment).astimezone(timezone.utc)


def check_backfill_range(
    start_at: Any, end_at: Any, *, schedule: ExportSchedule | None = None, now: datetime | None = None
) -> tuple[str, str]:
    """The checked bounds of a backfill over ``[start_at, end_at)``, formatted as ``schedule`` wants them."""
    schedule = schedule or ExportSchedule()
    start, end = backfill_bound("start_at", start_at), backfill_bound("end_at", end_at)
    if schedule.dates_only:
        start, end = schedule.as_day("start_at", start_at, start), schedule.as_day("end_at", end_at, end)
    first, last = backfill_moment(start, schedule), backfill_moment(end, schedule)
    assert first is not None and last is not None  # both were just parsed
    if first >= last:
        raise ValueError(f"Invalid backfill range {start_at!r}, {end_at!r}: start_at must be before end_at.")
    if last > (now or datetime.now(timezone.utc)):
        raise ValueError(f"Invalid end_at {end_at!r}: it is in the future; PostHog only backfills the past.")
    if schedule.dates_only:
        return start.isoformat(), end.isoformat()
    return format_timestamp(first), format_timestamp(last)


#: A check takes the field's name (for the message) and its value; it returns the value normalised
#: or raises ``ValueError``.
Check = Callable[[str, Any], Any]


def optional(check: Check) -> Check:
    """``check`` for a field that may be left out: ``None`` stays ``None``."""
    return lambda name, value: None if value is None else check(name, value)


def one_of(choices: Iterable[Any]) -> Check:
    """The check that a value is one of ``choices`` (ints may arrive as rendered strings)."""
    return partial(check_choice, choices=tuple(choices))


def unless_empty(check: Check) -> Check:
    """``check`` for a field where ``None`` or ``""`` (a template that rendered nothing) means unset."""
    return lambda name, value: None if value is None or value == "" else check(name, value)


def is_known(value: Any) -> bool:
    """Whether a value is known before the task runs: no template or upstream output, at any depth."""
    if isinstance(value, (list, tuple)):
        return all(is_known(item) for item in value)
    if isinstance(value, dict):
        return all(is_known(item) for item in value.values())
    return not is_template(value)


#: The writable fields of a batch export that PostHog's ``run_test_step`` validates again: it runs
#: the merged payload through the whole serializer (docs/posthog-api.md §6.6).
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
    kept = ("type", "config", "integration")
    payload = {key: export[key] for key in EXPORT_FIELDS if export.get(key) is not None}
    return {**payload, "destination": {key: destination[key] for key in kept if key in destination}}


def check_batch_export_payload(payload: Any) -> dict[str, Any]:
    """Check a batch export create payload before testing it: name, interval, destination type."""
    if not isinstance(payload, dict):
        raise _fail("batch_export payload", payload, "a dict with name, interval, destination")
    check_non_empty_str("batch_export name", payload.get("name"))
    check_choice("interval", payload.get("interval"), BATCH_EXPORT_INTERVALS)
    destination = payload.get("destination")
    if not isinstance(destination, dict):
        raise _fail("batch_export destination", destination, "a dict with type and config")
    check_destination_type(destination.get("type"))
    return payload


def _check_description(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value


def _check_tags(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(tag, str) and tag.strip() for tag in value):
        raise _fail(name, value, "a list of non-empty strings")
    return list(value)


#: A dashboard's own fields with their checks, written once: the hook's create and update, the
#: dashboard operator's parameters and its ``if_exists="update"`` comparison all read them here.
DASHBOARD_FIELDS: dict[str, Check] = {
    "name": lambda _name, value: check_non_empty_str("dashboard name", value, max_length=400),
    "description": _check_description,
    "pinned": check_bool,
    "tags": _check_tags,
    "restriction_level": one_of(RESTRICTION_LEVELS),
    "use_template": check_non_empty_str,
    "use_dashboard": check_positive_int,
}
#: The fields that only apply when a dashboard is created.
CREATE_ONLY = ("use_template", "use_dashboard")


def dashboard_payload(*, create: bool = True, **fields: Any) -> dict[str, Any]:
    """A checked request body: :data:`DASHBOARD_FIELDS` not ``None``, other fields (``filters``...) as given.

    :param create: the body of a create (``name`` required) rather than of an update.
    """
    if create and fields.get("name") is None:
        raise ValueError("A dashboard needs a name.")
    if not create and any(fields.get(name) is not None for name in CREATE_ONLY):
        raise ValueError("use_template and use_dashboard only apply when a dashboard is created.")
    if fields.get("use_template") is not None and fields.get("use_dashboard") is not None:
        raise ValueError("use_template and use_dashboard cannot be used together: pick one.")
    if fields.get("filters") and not isinstance(fields["filters"], dict):
        raise _fail("filters", fields["filters"], "a dict")
    body = {name: value for name, value in fields.items() if name not in DASHBOARD_FIELDS}
    for name, check in DASHBOARD_FIELDS.items():
        if fields.get(name) is not None:
            body[name] = check(name, fields[name])
    return body


def extend(base: Mapping[str, Check], **checks: Check) -> Mapping[str, Check]:
    """A subclass's ``field_checks``: its base's, plus (or overriding) ``checks``; read-only."""
    return MappingProxyType({**base, **checks})


class CheckedFields:
    """Tasks whose inputs are checked by ``field_checks = extend(Base.field_checks, ...)``."""

    field_checks: ClassVar[Mapping[str, Check]] = MappingProxyType(
        # Empty means the connection's default project.
        {"project_id": unless_empty(lambda _name, value: check_project_id(value))}
    )

    def check_literal_fields(self) -> None:
        """Check the values known at DAG parsing time; call at the end of ``__init__``. No I/O."""
        # Rendering replaces a template with its value; keep the template, so an error about the
        # rendered value can say where it came from.
        self._template_sources = {
            name: value
            for name in getattr(self, "template_fields", ())
            if isinstance(value := getattr(self, name, None), str) and is_template(value)
        }
        values = {
            name: check(name, getattr(self, name))
            for name, check in self.field_checks.items()
            if is_known(getattr(self, name))
        }
        self.check_combination(values)

    def checked_fields(self) -> dict[str, Any]:
        """Check every (rendered) value; call at the start of ``execute``, before any request."""
        values = {}
        for name, check in self.field_checks.items():
            try:
                values[name] = check(name, getattr(self, name))
            except ValueError as error:
                raise self._from_template(error, [name]) from None
        try:
            self.check_combination(values)
        except ValueError as error:
            raise self._from_template(error, list(getattr(self, "_template_sources", {}))) from None
        return values

    def _from_template(self, error: ValueError, names: list[str]) -> ValueError:
        """``error``, naming the template each field it is about was rendered from."""
        message = str(error)
        notes = []
        for name in names:
            template = getattr(self, "_template_sources", {}).get(name)
            value = getattr(self, name, None)
            if template is None or value == template:
                continue
            if len(names) > 1 and name not in message and repr(value) not in message:
                continue  # a check across fields: only the fields the message is about
            note = f"{name} was rendered from template {template!r}"
            if value in (None, "None", "") or "xcom_pull" in template:
                note += "; an xcom_pull that found nothing renders as 'None'"
            notes.append(note)
        return ValueError(f"{message} ({'; '.join(notes)})") if notes else error

    def check_combination(self, values: dict[str, Any]) -> None:
        """Checks across fields (at parsing time, templated ones are missing from ``values``)."""
