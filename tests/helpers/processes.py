"""Starting and stopping Airflow components (and the emulator) as real processes in tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ok(
    *command: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> str:
    """Run ``command`` to its end and return its output; a failure quotes the end of both outputs."""
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    """``scripts/demo.py`` run to its end with ``env``, none of this process's Airflow, PostHog or
    demo settings leaking in."""
    prefixes = ("AIRFLOW", "POSTHOG", "DEMO_")
    clean = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return subprocess.run(
        [sys.executable, str(DEMO)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, sqlite3.Error):
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Processes:
    """Child processes by name, each in its own session, stopped by PID."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started[name] = process
        return process

    def output(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        # SIGTERM each component while it can still stop its own children (executor workers,
        # serve-logs, the triggerer's runner), then SIGKILL whatever is left in its session.
        for process in reversed(self.started.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.started.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # the session we created for it, by its id
            if process.poll() is None:
                process.wait(5)


def airflow_api_client(base_url: str) -> httpx.Client:
    """
    A client for an api-server started with ``simple_auth_manager_all_admins``.

    Airflow 3.1 still wants a bearer token on ``/api/v2`` in that mode; ``GET /auth/token`` hands
    one out without credentials. Later releases need none, and a token does no harm there.
    """
    client = httpx.Client(base_url=base_url, timeout=10)
    wait_for("the api-server", lambda: client.get("/api/v2/monitor/health").status_code == 200, 120)
    answer = client.get("/auth/token")
    if answer.status_code in (200, 201):
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client
