"""Personal API key throttling, from PostHog's ``posthog/test/test_rate_limit.py`` and the 429
envelope from drf-exceptions-hog's ``tests/test_handler.py``.

PostHog's tests patch a throttle's rate down to 5 to reach it quickly; here the emulator's limiter
is configured the same way (its defaults are 480/minute and 4800/hour, ``web/rate_limit.py``).
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from tests.helpers.conformance import posthog_case

SOURCE = "posthog/test/test_rate_limit.py::TestUserAPI"
ENDPOINT = "throttling"


@pytest.fixture
def limiter(emulator):
    """The emulator's rate limiter, on (the emulator's reset turns it off again)."""
    emulator.rate_limiter.configure(enabled=True)
    return emulator.rate_limiter


def statuses(client, count: int, path: str = "dashboards/") -> list[int]:
    return [client.get(path).status_code for _ in range(count)]


@posthog_case(f"{SOURCE}::test_default_burst_rate_limit", endpoint=ENDPOINT)
def test_the_burst_limit_refuses_the_next_request(limiter, make_api):
    limiter.configure(burst=5)
    assert statuses(make_api(), 6) == [200] * 5 + [429]


@posthog_case(f"{SOURCE}::test_default_sustained_rate_limit", endpoint=ENDPOINT)
def test_the_sustained_limit_refuses_the_next_request(limiter, make_api):
    limiter.configure(sustained=5)
    assert statuses(make_api(), 7) == [200] * 5 + [429, 429]


@posthog_case(f"{SOURCE}::test_rate_limits_are_based_on_api_key_not_user", endpoint=ENDPOINT)
def test_each_key_has_its_own_budget(limiter, emulator, make_api):
    limiter.configure(burst=5)
    first = make_api()
    assert statuses(first, 6) == [200] * 5 + [429]
    second = make_api(emulator.state.add_api_key(["*"], SEED.alice_uuid))
    assert statuses(second, 6) == [200] * 5 + [429]


@posthog_case(f"{SOURCE}::test_does_not_rate_limit_if_rate_limit_disabled", endpoint=ENDPOINT)
def test_no_throttling_when_rate_limits_are_off(emulator, make_api):
    emulator.rate_limiter.configure(enabled=False, burst=5)
    assert statuses(make_api(), 6) == [200] * 6


@posthog_case(f"{SOURCE}::test_allow_list_works_as_expected", endpoint=ENDPOINT)
def test_allow_listed_teams_are_not_throttled(limiter, make_api):
    limiter.configure(burst=5, allow_list_teams=[SEED.team_id])
    assert statuses(make_api(), 10) == [200] * 10


@posthog_case("drf-exceptions-hog/tests/test_handler.py::test_throttled_exception", endpoint=ENDPOINT)
def test_a_throttled_answer_is_the_throttled_envelope(limiter, make_api, expect_error):
    limiter.configure(burst=1)
    client = make_api()
    client.get("batch_exports/")
    response = client.get("batch_exports/")
    wait = int(response.headers["Retry-After"])  # set by newer drf-exceptions-hog (_get_headers)
    assert 1 <= wait <= 60
    unit = "second" if wait == 1 else "seconds"
    expect_error(
        response,
        429,
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {wait} {unit}.",
    )
