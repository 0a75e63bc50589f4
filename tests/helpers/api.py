"""HTTP clients for the tests that talk to the emulator as a PostHog client would."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from phenv_emulator import SEED, PostHogEmulator


class Api:
    """A tiny client for tests: paths are relative to ``/api/<prefix>/<team>/``."""

    def __init__(
        self, base_url: str, key: str | None, team: int | str = SEED.team_id, prefix: str = "projects"
    ):
        self.base_url = base_url
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.root = f"{base_url}/api/{prefix}/{team}/"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.root + path, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


#: ``(status, type, code)`` of PostHog's usual errors: ``expect_error(response, *NOT_FOUND, detail)``.
INVALID_INPUT = (400, "validation_error", "invalid_input")
PERMISSION_DENIED = (403, "authentication_error", "permission_denied")
NOT_FOUND = (404, "invalid_request", "not_found")


def check_error(
    response: requests.Response, status: int, type_: str, code: str, detail: str, attr: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"type": type_, "code": code, "detail": detail, "attr": attr}


@pytest.fixture
def api(emulator: PostHogEmulator) -> Api:
    """Full-access client on ``/api/projects/1/``."""
    return Api(emulator.url, emulator.api_key)


@pytest.fixture
def expect_error():
    """``expect_error(response, status, type, code, detail, attr=None)``: exactly PostHog's envelope.

    A fixture rather than an importable helper, so the tests work whatever pytest's import mode.
    """
    return check_error


@pytest.fixture
def make_api(emulator: PostHogEmulator):
    """Build a client with another key, team or prefix."""

    def make(key: str | None = "", *, team: int | str = SEED.team_id, prefix: str = "projects") -> Api:
        """``key=""`` uses the seeded key; ``key=None`` sends no credentials."""
        return Api(emulator.url, emulator.api_key if key == "" else key, team, prefix)

    return make


@pytest.fixture
def alice(emulator: PostHogEmulator, make_api) -> Api:
    """A client with a full-access key of ``alice``, a plain member of the seeded organization."""
    return make_api(emulator.state.add_api_key(["*"], SEED.alice_uuid))


@pytest.fixture
def bob(emulator: PostHogEmulator, make_api) -> Api:
    """A client with a full-access key of ``bob``, another plain member."""
    return make_api(emulator.state.add_api_key(["*"], SEED.bob_uuid))
