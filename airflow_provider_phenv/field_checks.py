"""
Declarative input checks for operators and sensors.

A task class lists its checks once, as ``field_checks``: a mapping from an attribute to a check
``(name, value) -> normalised value`` from :mod:`airflow_provider_phenv.validation`. The same
mapping runs twice:

* in ``__init__``, on the values already known (literals), so a typo fails when the DAG is parsed;
  Jinja templates and upstream outputs (``XComArg``) are skipped, as they are only known at run time;
* in ``execute``, after rendering, on every value, before any request is sent.

Checks that look at several fields at once go in :meth:`CheckedFields.check_combination`, which
receives the values checked so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from airflow_provider_phenv.validation import check_choice, check_project_id, is_template

#: A check takes the field's name (for the error message) and its value, and returns the value
#: normalised (a UUID in canonical form, ``"true"`` as ``True``...) or raises ``ValueError``.
Check = Callable[[str, Any], Any]


def optional(check: Check) -> Check:
    """``check`` for a field that may be left out: ``None`` stays ``None``."""

    def optional_check(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return optional_check


def one_of(choices: Iterable[Any]) -> Check:
    """The check that a value is one of ``choices`` (ints may arrive as rendered strings)."""
    options = tuple(choices)

    def choice_check(name: str, value: Any) -> Any:
        return check_choice(name, value, options)

    return choice_check


def unless_empty(check: Check) -> Check:
    """``check`` for a field where ``None`` or ``""`` (a template that rendered nothing) means unset."""

    def unless_empty_check(name: str, value: Any) -> Any:
        return None if value is None or value == "" else check(name, value)

    return unless_empty_check


def is_known(value: Any) -> bool:
    """Whether a value is known before the task runs: no template or upstream output, at any depth."""
    if isinstance(value, (list, tuple)):
        return all(is_known(item) for item in value)
    if isinstance(value, dict):
        return all(is_known(item) for item in value.values())
    return not is_template(value)


def extend(base: Mapping[str, Check], **checks: Check) -> Mapping[str, Check]:
    """A subclass's ``field_checks``: its base's, plus (or overriding) ``checks``; read-only."""
    return MappingProxyType({**base, **checks})


class CheckedFields:
    """
    Mixin for operators and sensors whose inputs are checked by ``field_checks``.

    Subclasses extend the mapping of their base: ``field_checks = extend(Base.field_checks, ...)``.
    """

    field_checks: ClassVar[Mapping[str, Check]] = MappingProxyType(
        # Empty means the connection's default project.
        {"project_id": unless_empty(lambda _name, value: check_project_id(value))}
    )

    def check_literal_fields(self) -> dict[str, Any]:
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
        return values

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
        if not notes:
            return error
        return ValueError(f"{message} ({'; '.join(notes)})")

    def check_combination(self, values: dict[str, Any]) -> None:
        """
        Checks across fields; ``values`` holds the fields checked so far (at parsing time, the
        templated ones are missing). Raise ``ValueError`` naming the values; the default has none.
        """
