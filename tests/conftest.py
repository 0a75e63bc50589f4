"""
Shared test setup: an isolated Airflow home, the PostHog emulator on a free port, and a
``posthog_default`` connection pointing at it.

The environment is set before anything imports Airflow, so no test touches ~/airflow.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="phenv-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")

import pytest  # noqa: E402

from tests.helpers.emulator import connection_json  # noqa: E402


@pytest.fixture(scope="session")
def emulator_server():
    """One emulator for the whole session; tests get it reset through ``emulator``."""
    from airflow_provider_phenv.emulator import PostHogEmulator

    server = PostHogEmulator(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server):
    """The emulator with its seed data restored, no faults and an empty request log."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def posthog_conn(emulator, monkeypatch):
    """Point ``posthog_default`` at the emulator; returns the emulator."""
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    return emulator


@pytest.fixture
def airflow_cli() -> str:
    """The ``airflow`` command of the virtual environment running the tests."""
    path = shutil.which("airflow", path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip("the airflow command is not installed next to this Python")
    return path


def pytest_unconfigure(config):
    # After Airflow has run DAGs in-process, interpreter shutdown spends seconds in garbage
    # collection of objects that are about to vanish anyway; freezing them skips that work.
    import gc

    gc.freeze()
