"""
What a successful answer must look like, checked before any caller touches it.

A JSON body of the wrong shape (a list where an object belongs, ``results: null``, a page entry
that is a string) would otherwise escape as ``AttributeError``/``TypeError``/``KeyError`` far from
the request. Each :class:`~airflow_provider_phenv.hooks._calls.ApiCall` names its shape; the hook
raises :class:`~airflow_provider_phenv.errors.PostHogUnexpectedResponseError` naming the request
when the body does not fit. The checks are shallow on purpose: the fields callers index into.

A shape is a function ``(value) -> problem or None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Shape = Callable[[Any], "str | None"]

_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}


def describe(value: Any) -> str:
    """A short name for what a JSON value is, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in _NAMES.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _is(value: Any, kinds: tuple[Any, ...]) -> bool:
    for kind in kinds:
        if kind is None and value is None:
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind not in (None, int) and isinstance(value, kind):
            return True
    return False


def _kinds_text(kinds: tuple[Any, ...]) -> str:
    return " or ".join("null" if kind is None else _NAMES.get(kind, kind.__name__) for kind in kinds)


def any_json(value: Any) -> str | None:
    """Any JSON value."""
    return None


def json_object(**fields: tuple[Any, ...]) -> Shape:
    """
    An object; each named field, when present, of one of the given types (``None`` for null).

    A field whose type tuple starts with ``...`` is required: ``json_object(id=(..., int))``.
    """

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected a JSON object, got {describe(value)}"
        for name, kinds in fields.items():
            required = bool(kinds) and kinds[0] is ...
            allowed = kinds[1:] if required else kinds
            if name not in value:
                if required:
                    return f"expected a JSON object with {name!r}, which is missing"
                continue
            if not _is(value[name], allowed):
                return f"expected {name!r} to be {_kinds_text(allowed)}, got {describe(value[name])}"
        return None

    return check


def list_of_objects(item: Shape | None = None) -> Shape:
    """A list whose items are objects (each checked by ``item`` too)."""
    item_shape = item or json_object()

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected a JSON list, got {describe(value)}"
        for index, entry in enumerate(value):
            problem = item_shape(entry)
            if problem:
                return f"item {index}: {problem}"
        return None

    return check


def page(item: Shape | None = None) -> Shape:
    """A page of a list: ``results`` (a list of objects, never null) and an optional ``next`` link."""
    items = list_of_objects(item)

    def check(value: Any) -> str | None:
        problem = json_object(results=(..., list), next=(str, None))(value)
        if problem:
            return problem
        problem = items(value["results"])
        return f"results {problem}" if problem else None

    return check


def paused_is(expected: bool) -> Shape:
    """PostHog's answer to pause/unpause, which must say the state it reached."""

    def check(value: Any) -> str | None:
        problem = json_object(paused=(..., bool))(value)
        if problem:
            return f"{problem} (no evidence that the export is {'paused' if expected else 'unpaused'})"
        if value["paused"] is not expected:
            return f"expected 'paused': {str(expected).lower()}, got {str(value['paused']).lower()}"
        return None

    return check


BATCH_EXPORT = json_object(destination=(dict, None))


def _test_steps(value: Any) -> str | None:
    problem = json_object(steps=(..., list))(value)
    if problem:
        return problem
    problem = list_of_objects()(value["steps"])
    return f"steps {problem}" if problem else None


TEST_STEPS: Shape = _test_steps
TEST_STEP_RESULT = json_object(result=(dict, None))
DASHBOARD = json_object(id=(..., int))
BACKFILL = json_object(id=(..., str))
BACKFILL_STARTED = json_object(backfill_id=(..., str))
COLLABORATORS = list_of_objects(json_object(user=(dict, None)))
COLLABORATOR = json_object(user=(..., dict))
ACCESS_CONTROLS = json_object(access_controls=(..., list))


def _access_control_row(value: Any) -> str | None:
    # PostHog answers a removed rule (access_level null) with 204 and no body.
    return None if value is None else json_object(access_level=(..., str))(value)


ACCESS_CONTROL_ROW: Shape = _access_control_row
MEMBER = json_object(id=(..., str), user=(..., dict))
