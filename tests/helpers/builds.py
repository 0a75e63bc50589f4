"""
Older PostHog builds as test parameters: today's PostHog plus the older-build switches of the
emulator (``airflow_provider_phenv/emulator/store/switches.py``) that touch a test.

Use with the ``build`` fixture of tests/conftest.py::

    @pytest.mark.parametrize("build", builds("level-list", "no-retry-after"), indirect=True)
    def test_x(build, emulator, posthog_conn): ...

``build`` is the switch's name (``"today"`` for none); the emulator plays that build for the test.
"""

from __future__ import annotations

from typing import Any

import pytest

TODAY = "today"

#: Switches the provider does not handle yet, with the reason; their params are xfail(strict=False).
NOT_YET: dict[str, str] = {
    "environments-redirect": (
        "the hooks do not follow the 307 from /api/environments/ to /api/projects/ yet "
        "(a separate change makes them follow same-origin 307/308)"
    ),
}


def builds(*switches: str, not_yet: dict[str, str] | None = None) -> list[Any]:
    """``pytest.param`` for today's PostHog and each switch; ``not_yet`` adds xfail reasons."""
    reasons = {**NOT_YET, **(not_yet or {})}
    params = [pytest.param(TODAY, id=TODAY)]
    for switch in switches:
        marks = [pytest.mark.xfail(reason=reasons[switch], strict=False)] if switch in reasons else []
        params.append(pytest.param(switch, id=switch, marks=marks))
    return params
