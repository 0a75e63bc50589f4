"""
Older PostHog builds as test parameters: today's PostHog plus the older-build switches of the
emulator (``emulator/phenv_emulator/store/switches.py``) that touch a test.

Use with the ``build`` fixture of tests/conftest.py::

    @pytest.mark.parametrize("build", builds("level-list", "no-retry-after"), indirect=True)
    def test_x(build, emulator, posthog_conn): ...

``build`` is the switch's name (``"today"`` for none); the emulator plays that build for the test.
"""

from __future__ import annotations

from typing import Any

import pytest

TODAY = "today"


def builds(*switches: str) -> list[Any]:
    """``pytest.param`` for today's PostHog and each switch."""
    return [pytest.param(TODAY, id=TODAY), *(pytest.param(switch, id=switch) for switch in switches)]


#: The builds that change where collaborators answer (§1): some serve them only under
#: /api/projects/ (the hook's default prefix), one redirects /api/environments/ there.
COLLABORATOR_BUILDS = builds("projects-only-collaborators", "environments-redirect")
