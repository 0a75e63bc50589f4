"""The marker of a conformance case: which PostHog test it comes from, and which endpoint it covers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])


def posthog_case(source: str, *, endpoint: str) -> Callable[[F], F]:
    """
    Mark a conformance case.

    :param source: ``<file in PostHog/posthog>::<test name>`` of the PostHog test it derives from.
    :param endpoint: the endpoint it covers, e.g. ``"batch_exports/{id}/backfills/"``.
    """
    if "::" not in source:
        raise ValueError(f"posthog_case source {source!r} must be '<file>::<test name>'")
    return pytest.mark.posthog(source=source, endpoint=endpoint)
