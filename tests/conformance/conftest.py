"""
Black-box HTTP cases derived from PostHog's own API tests, run against the emulator.

Each case carries ``@posthog_case("<PostHog test file>::<test name>", endpoint="<endpoint>")``
(tests/helpers/conformance.py) and asserts, through HTTP only, what that PostHog test asserts.
``pytest tests/conformance --conformance-report`` prints the count per endpoint.
"""

from tests.helpers.api import alice, api, bob, expect_error, make_api

__all__ = ["alice", "api", "bob", "expect_error", "make_api"]
