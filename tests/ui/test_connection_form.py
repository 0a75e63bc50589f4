"""
The connection type as users meet it: Airflow's connection form metadata served by a real
``airflow api-server``, and ``airflow connections test`` against the emulator.
"""

from __future__ import annotations

import json
import os
import subprocess

import airflow
import pytest

from tests.helpers.airflow_stack import prepare_db
from tests.helpers.emulator import connection_json
from tests.helpers.processes import Processes, airflow_api_client, free_port

AIRFLOW_VERSION = tuple(int(part) for part in airflow.__version__.split(".")[:2])


def _airflow_env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **extra,
    }


@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 2),
    reason="Airflow < 3.2 builds the form from hook methods with wtforms (the FAB provider)",
)
def test_hook_meta_describes_the_posthog_form(tmp_path, airflow_cli, migrated_airflow_db):
    port = free_port()
    env = _airflow_env(
        tmp_path,
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://localhost:{port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )
    prepare_db(env, airflow_cli, migrated_airflow_db)
    processes = Processes(tmp_path, env)
    try:
        processes.start("api-server", airflow_cli, "api-server", "--port", str(port))
        client = airflow_api_client(f"http://localhost:{port}")
        hooks = client.get("/ui/connections/hook_meta").json()
    finally:
        processes.stop_all()
    posthog = next(hook for hook in hooks if hook["connection_type"] == "posthog")
    assert posthog["hook_name"] == "PostHog"
    standard = posthog["standard_fields"]
    assert standard["host"]["title"] == "PostHog host"
    assert "us.posthog.com" in standard["host"]["placeholder"]
    assert standard["password"]["title"] == "Personal API key"
    for hidden in ("login", "port", "url_schema"):
        assert standard[hidden]["hidden"] is True, hidden
    extra = posthog["extra_fields"]
    assert set(extra) == {"project_id", "api_prefix", "timeout", "max_retries"}
    assert extra["project_id"]["schema"]["title"] == "Project ID"
    assert extra["timeout"]["value"] == 30
    # A select with the two prefixes, the default chosen (no "null" option to pick by mistake).
    assert extra["api_prefix"]["schema"]["enum"] == ["environments", "projects"]
    assert extra["api_prefix"]["value"] == "projects"


@pytest.mark.parametrize("key_is_right", [True, False])
def test_airflow_connections_test(emulator, tmp_path, airflow_cli, key_is_right):
    conn = json.loads(connection_json(emulator))
    if not key_is_right:
        conn["password"] = "phx_not_the_key"
    env = _airflow_env(
        tmp_path, AIRFLOW__CORE__TEST_CONNECTION="Enabled", AIRFLOW_CONN_POSTHOG_DEFAULT=json.dumps(conn)
    )
    done = subprocess.run(
        [airflow_cli, "connections", "test", "posthog_default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = " ".join((done.stdout + done.stderr).split())  # the CLI wraps long lines
    if key_is_right:
        assert done.returncode == 0, output
        assert "Connection success!" in output
    else:
        if AIRFLOW_VERSION >= (3, 2):  # 3.1's command exits 0 even when the test failed
            assert done.returncode == 1, output
        assert (
            "Connection failed!" in output
            and "HTTP 401" in output
            and "rejected the personal API key" in output
        )
        assert "phx_not_the_key" not in output
