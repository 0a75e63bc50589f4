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

#: Why the async hook (the deferred sensor's trigger) fails on the ``environments-redirect`` build;
#: the sync hook's ``requests`` follows a same-host 307 with its Authorization header already.
ASYNC_REDIRECT = (
    "the async hook (httpx) does not follow the 307 from /api/environments/ to /api/projects/ yet "
    "(a separate change makes the hooks follow same-origin 307/308)"
)


def builds(*switches: str, not_yet: dict[str, str] | None = None) -> list[Any]:
    """``pytest.param`` for today's PostHog and each switch; ``not_yet`` marks some xfail(strict=False),
    with the reason: what the provider does not handle yet on that build."""
    reasons = not_yet or {}
    params = [pytest.param(TODAY, id=TODAY)]
    for switch in switches:
        marks = [pytest.mark.xfail(reason=reasons[switch], strict=False)] if switch in reasons else []
        params.append(pytest.param(switch, id=switch, marks=marks))
    return params


#: The builds that change where collaborators answer: the hook's default prefix is
#: /api/environments/, where some builds have no collaborator routes (§13.6).
COLLABORATOR_BUILDS = builds(
    "projects-only-collaborators",
    "environments-redirect",
    not_yet={
        "projects-only-collaborators": "the hook's default prefix is /api/environments/, where these "
        "builds have no collaborator routes (api_prefix='projects' in the connection works)"
    },
)
