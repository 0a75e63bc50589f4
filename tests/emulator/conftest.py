"""
Clients for the emulator's own tests. The emulator is the session-wide one of tests/conftest.py,
reset before every test through the ``emulator`` fixture (which ``api`` and ``make_api`` use).
"""

from tests.helpers.api import api, expect_error, make_api

__all__ = ["api", "expect_error", "make_api"]
