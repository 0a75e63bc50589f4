"""
A pytest plugin for testing your own DAGs against the bundled PostHog emulator.

Load it in your ``conftest.py`` (or with ``pytest -p phenv_emulator.testing``)::

    pytest_plugins = ["phenv_emulator.testing"]

and ask for the ``posthog_emulator`` fixture::

    def test_my_dag(posthog_emulator):
        assert dag.test().state == "success"
        assert posthog_emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is True

What the plugin does, so that ``dag.test()`` works in a fresh checkout:

* before Airflow is imported, it points ``AIRFLOW_HOME`` at a throw-away directory with a SQLite
  database (``PHENV_TEST_AIRFLOW_HOME`` names another directory), so tests never touch
  ``~/airflow``; examples are not loaded;
* ``dag.test()`` runs only DAGs that Airflow finds in its DAGs folder: unless
  ``AIRFLOW__CORE__DAGS_FOLDER`` is set, that is the ``dags`` directory next to the top
  ``conftest.py`` (pytest's rootdir), or the rootdir itself when it has none;
* once per session it creates Airflow's tables there (what ``airflow db migrate`` does), which a
  fresh home lacks (``no such table: task_instance``);
* it starts the emulator on a free port of 127.0.0.1 for the session; each test gets it back in
  its seed state (no faults, empty request log), with ``AIRFLOW_CONN_POSTHOG_DEFAULT`` pointing at
  it.

It is not loaded automatically: only the suites that ask for it get their ``AIRFLOW_HOME`` changed.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from phenv_emulator import PostHogEmulator

__all__ = ["connection_uri", "posthog_emulator", "prepare_airflow_home"]


def remove_at_exit(path: str, owner_pid: int) -> None:
    """Remove ``path`` when the process that made it exits (not a forked child running atexit)."""
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def prepare_airflow_home(rootdir: str | os.PathLike[str] | None = None) -> str:
    """
    Point Airflow at a throw-away home with SQLite, unless Airflow already read its settings.

    :param rootdir: where the DAGs folder is looked for (``<rootdir>/dags``, else ``rootdir``),
        unless ``AIRFLOW__CORE__DAGS_FOLDER`` is set; ``None`` leaves Airflow's default.
    :return: the Airflow home in use.
    """
    if "airflow.configuration" in sys.modules:
        home = os.environ.get("AIRFLOW_HOME", "~/airflow")
        warnings.warn(
            "phenv_emulator.testing was loaded after Airflow was imported, so Airflow keeps "
            f"AIRFLOW_HOME={home}. Load the plugin first (pytest_plugins in the top conftest.py, "
            "before importing Airflow there) for a throw-away home.",
            stacklevel=2,
        )
        return home
    home = os.environ.get("PHENV_TEST_AIRFLOW_HOME") or ""
    if home:
        os.makedirs(home, exist_ok=True)
    else:
        home = tempfile.mkdtemp(prefix="phenv-test-airflow-")
        atexit.register(remove_at_exit, home, os.getpid())  # throw-away: gone with the session
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{os.path.join(home, 'airflow.db')}"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    if rootdir is not None and not os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        dags = os.path.join(rootdir, "dags")
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = dags if os.path.isdir(dags) else os.fspath(rootdir)
    return home


def connection_uri(emulator: PostHogEmulator) -> str:
    """The ``AIRFLOW_CONN_POSTHOG_DEFAULT`` value (JSON form) that points at ``emulator``."""
    return json.dumps(
        {
            "conn_type": "posthog",
            "host": emulator.url,
            "password": emulator.api_key,
            "extra": {"project_id": str(emulator.project_id)},
        }
    )


def pytest_configure(config: Any) -> None:
    """Runs when the plugin is registered: before the test modules (and their DAGs) are imported."""
    prepare_airflow_home(config.rootpath)


@pytest.fixture(scope="session")
def posthog_airflow_db() -> None:
    """Airflow's tables in the test home, created once per session."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="session")
def posthog_emulator_server() -> Iterator[PostHogEmulator]:
    """One emulator for the session; tests use :func:`posthog_emulator`, which resets it."""
    with PostHogEmulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def posthog_emulator(
    posthog_emulator_server: PostHogEmulator, posthog_airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> PostHogEmulator:
    """
    The emulator in its seed state, with ``posthog_default`` pointing at it and Airflow's tables ready.

    Arrange data and faults on it (``posthog_emulator.state``, ``posthog_emulator.faults``) and
    read what your DAG did (``posthog_emulator.state``, ``posthog_emulator.requests``).
    """
    posthog_emulator_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_uri(posthog_emulator_server))
    return posthog_emulator_server
