"""
Clients for the emulator's own tests. The emulator is the session-wide one of tests/conftest.py,
reset before every test through the ``emulator`` fixture (which ``api`` and ``make_api`` use).
"""

import pytest

from tests.helpers.api import alice, api, bob, expect_error, make_api

__all__ = ["alice", "api", "bob", "expect_error", "make_api", "prompt_backfills"]


@pytest.fixture
def prompt_backfills(emulator):
    """Backfill rows (and their first runs) the moment a backfill starts.

    Today's PostHog creates the row seconds later (docs/posthog-api.md §6.9); tests about
    something else than that delay ask for this.
    """
    emulator.state.set_switches(backfill_row_delay=0)
    return emulator
