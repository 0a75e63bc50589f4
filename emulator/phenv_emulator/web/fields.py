"""DRF field parsing with DRF's exact messages and codes, so validation errors look like PostHog's.

Every parser takes the value and the ``attr`` to report, and raises :class:`ApiError` (400).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import ApiError, validation_error

_TRUE = {"t", "y", "yes", "true", "on", "1"}
_FALSE = {"f", "n", "no", "false", "off", "0"}
# Django's ``parse_datetime`` shape: a date-only value is not a datetime for DRF.
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,6})?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$"
)
_ZERO_DECIMALS = re.compile(r"\.0*$")
DATETIME_FORMAT_ERROR = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)


def required(attr: str) -> ApiError:
    """DRF's "This field is required." error for ``attr``."""
    return validation_error("This field is required.", code="required", attr=attr)


def parse_bool(value: Any, attr: str) -> bool:
    """Parse like DRF's ``BooleanField`` (accepts ``"true"``, ``1``, ``"off"``...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise validation_error("Must be a valid boolean.", code="invalid", attr=attr)


def parse_int(value: Any, attr: str, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Parse like DRF's ``IntegerField``, including its ``min_value``/``max_value`` messages."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise validation_error("A valid integer is required.", code="invalid", attr=attr)
    try:
        # DRF drops a zero decimal part ("3.0" is 3) before int().
        number = int(_ZERO_DECIMALS.sub("", str(value).strip()))
    except ValueError:
        raise validation_error("A valid integer is required.", code="invalid", attr=attr) from None
    if min_value is not None and number < min_value:
        raise validation_error(
            f"Ensure this value is greater than or equal to {min_value}.", code="min_value", attr=attr
        )
    if max_value is not None and number > max_value:
        raise validation_error(
            f"Ensure this value is less than or equal to {max_value}.", code="max_value", attr=attr
        )
    return number


def parse_choice(value: Any, choices: Iterable[Any], attr: str) -> Any:
    """Parse like DRF's ``ChoiceField``: the value must be one of ``choices``."""
    for choice in choices:
        if value == choice or (isinstance(choice, int) and str(value) == str(choice)):
            return choice
    raise validation_error(f'"{value}" is not a valid choice.', code="invalid_choice", attr=attr)


def parse_str(
    value: Any,
    attr: str,
    *,
    allow_blank: bool = True,
    allow_null: bool = False,
    max_length: int | None = None,
) -> str | None:
    """Parse like DRF's ``CharField``."""
    if value is None:
        if allow_null:
            return None
        raise validation_error("This field may not be null.", code="null", attr=attr)
    if isinstance(value, (dict, list, bool)):
        raise validation_error("Not a valid string.", code="invalid", attr=attr)
    text = str(value)
    if not allow_blank and not text.strip():
        raise validation_error("This field may not be blank.", code="blank", attr=attr)
    if max_length is not None and len(text) > max_length:
        raise validation_error(
            f"Ensure this field has no more than {max_length} characters.", code="max_length", attr=attr
        )
    return text


def parse_uuid(value: Any, attr: str) -> str:
    """Parse like DRF's ``UUIDField``; returns the canonical hyphenated form."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise validation_error("Must be a valid UUID.", code="invalid", attr=attr) from None


def parse_datetime(value: Any, attr: str) -> datetime:
    """Parse like DRF's ``DateTimeField`` (ISO 8601); naive values are taken as UTC."""
    text = str(value).strip()
    if not _DATETIME_RE.match(text):
        raise validation_error(DATETIME_FORMAT_ERROR, code="invalid", attr=attr)
    try:
        parsed = to_datetime(text)
    except ValueError:
        raise validation_error(DATETIME_FORMAT_ERROR, code="invalid", attr=attr) from None
    return parsed


def to_datetime(value: datetime | str) -> datetime:
    """An aware UTC datetime from a datetime or an ISO 8601 string (``Z`` allowed on Python 3.10)."""
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def copied(record: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The fields ``keys`` of a stored record as a serializer passes them through, in that order."""
    return {key: record[key] for key in keys}


def iso(value: datetime | None) -> str | None:
    """PostHog's JSON datetime form: ISO 8601 UTC with microseconds and ``Z``."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
