"""Tests against the emulator: a connection pointing at it, and its request log."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

#: Operator kwargs: hook retries in milliseconds, so a retried request costs the tests no time.
FAST = {"hook_params": {"backoff": 0.01, "backoff_max": 0.02}}


def connection_json(emulator: Any, **extra: object) -> str:
    """
    An ``AIRFLOW_CONN_*`` value in JSON form pointing at the emulator.

    When the emulator plays the build that redirects ``/api/environments/`` (307 to
    ``/api/projects/``), the connection uses the environments path, so the redirect is exercised.
    """
    if "environments-redirect" in getattr(emulator.state, "switches", ()):
        extra.setdefault("api_prefix", "environments")
    return json.dumps(
        {
            "conn_type": "posthog",
            "host": emulator.url,
            "password": emulator.api_key,
            "extra": {"project_id": str(emulator.project_id), **extra},
        }
    )


def api_requests(emulator: Any) -> list[Any]:
    """The emulator's request log without its own control endpoints."""
    return [record for record in emulator.requests if record.path.startswith("/api/")]


@contextlib.contextmanager
def emulator_cli(*args: str) -> Iterator[subprocess.Popen[str]]:
    """The emulator's command line on a free port, with ``args``; it must exit 0 when terminated."""
    process = subprocess.Popen(
        [sys.executable, "-m", "phenv_emulator", "--port", "0", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
