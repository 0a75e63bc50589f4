"""
A real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite) next to
the emulator, for the run events e2e test, the demo and the benchmarks; and the few emulator and
Airflow API calls they share. Components run as separate processes, each stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.processes import Processes, airflow_api_client, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EVENTS_DAG = "posthog_export_events"
EVENTS_TASK = "load_exported_runs"


def events_dags(home: Path) -> Path:
    """A DAGs folder holding only the run events example (other examples would take executor slots)."""
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "posthog_export_events.py"
    if not link.exists():
        link.symlink_to(ROOT / "example_dags" / "posthog_export_events.py")
    return folder


def airflow_env(
    home: Path, dags: Path, emulator_url: str, api_key: str, project_id: int | str
) -> dict[str, str]:
    """The environment of every Airflow component: free ports, fast loops, the emulator connection."""
    api_port = free_port()
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "POSTHOG"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # Workers reach the Execution API through [api] base_url: it must name the chosen port.
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__API__WORKERS": "1",
        # One set of secrets for every component, or tokens, trigger arguments and log requests one
        # signs or encrypts are refused by another (Airflow makes new ones per home or process).
        "AIRFLOW__API_AUTH__JWT_SECRET": "phenv-e2e-secret-not-for-production",
        "AIRFLOW__API__SECRET_KEY": "phenv-e2e-secret-not-for-production",
        "AIRFLOW__CORE__FERNET_KEY": "cGhlbnYtZTJlLWZlcm5ldC1rZXktbm90LXNlY3JldCE=",
        # Free ports for the log servers too, so a concurrent Airflow on this machine cannot clash.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        # What the example DAG reads when it is parsed.
        "POSTHOG_HOST": emulator_url,
        "POSTHOG_PROJECT_ID": str(project_id),
        "POSTHOG_POLL_INTERVAL": "1",
        "AIRFLOW_CONN_POSTHOG_DEFAULT": json.dumps(
            {
                "conn_type": "posthog",
                "host": emulator_url,
                "password": api_key,
                "extra": {"project_id": str(project_id)},
            }
        ),
    }


def spawn_emulator() -> tuple[subprocess.Popen, str, str, str, str]:
    """
    The emulator as a subprocess on a port of its choosing, read from its first output line.

    :return: the process, that line, and the URL, API key and project id it announces.
    :raises RuntimeError: the emulator did not announce itself.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "phenv_emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"(http://\S+)\s+api_key=(\S+)\s+project_id=(\S+)", line)
    if not match:
        process.terminate()
        raise RuntimeError(f"The emulator did not start: {line!r}")
    url, api_key, project_id = match.groups()
    return process, line.strip(), url, api_key, project_id


def start_emulator(processes: Processes) -> str:
    """The emulator as a subprocess on a free port; returns its URL."""
    port = free_port()
    processes.start("emulator", sys.executable, "-m", "phenv_emulator", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_for("the emulator", lambda: httpx.get(f"{url}/_emulator/state").status_code == 200, 30, 0.2)
    return url


def prepare_db(env: dict[str, str], airflow_cli: str, migrated: Path | None = None) -> None:
    """Airflow's tables in the home ``env`` names: a copy of ``migrated`` (a database ``airflow db
    migrate`` made, not used since) when given, which saves a migration's seconds, else migrated."""
    home = Path(env["AIRFLOW_HOME"])
    if migrated is not None:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated, home / "airflow.db")
        # Components started at once would each write a missing airflow.cfg (what migrating did first):
        # an empty one leaves every setting to the defaults and the environment.
        (home / "airflow.cfg").touch()
        return
    command = [airflow_cli, "db", "migrate"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])


def start_airflow(processes: Processes, airflow_cli: str, migrated: Path | None = None) -> httpx.Client:
    """Prepare the database (:func:`prepare_db`), start every component, return a client of the REST API."""
    prepare_db(processes.env, airflow_cli, migrated)
    for component in COMPONENTS:
        processes.start(component, airflow_cli, component)
    return airflow_api_client(processes.env["AIRFLOW__API__BASE_URL"])


def stop(processes: Processes, name: str) -> None:
    """Stop one component (SIGTERM, as a deployment would), waiting for it to exit."""
    process = processes.started[name]
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def watcher_polls(emulator_url: str, export_id: str) -> int:
    """How many reads of the exports list, of the export or of its runs reached the emulator."""
    requests = httpx.get(f"{emulator_url}/_emulator/requests").json()
    watched = ("/batch_exports/", f"/batch_exports/{export_id}/", f"/{export_id}/runs/")
    return sum(1 for request in requests if request["method"] == "GET" and request["path"].endswith(watched))


def finish_a_run(
    emulator_url: str, api_key: str, project_id: int | str, export_id: str, hours_ago: int
) -> str:
    """
    Backfill one past hour of the export over PostHog's API (the emulator finishes its run after
    about two seconds); returns the backfill id.
    """
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    answer = httpx.post(
        f"{emulator_url}/api/environments/{project_id}/batch_exports/{export_id}/backfills/",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"start_at": (end - timedelta(hours=1)).isoformat(), "end_at": end.isoformat()},
    )
    answer.raise_for_status()
    return answer.json()["backfill_id"]


def backfill_runs(
    emulator_url: str, api_key: str, project_id: int | str, export_id: str, backfill_id: str
) -> list[dict[str, Any]]:
    """The runs of one backfill, as PostHog lists them."""
    answer = httpx.get(
        f"{emulator_url}/api/environments/{project_id}/batch_exports/{export_id}/runs/",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    answer.raise_for_status()
    return [run for run in answer.json()["results"] if run.get("backfill") == backfill_id]


def consumer_runs(client: httpx.Client) -> list[dict[str, Any]]:
    """The event DAG's runs, oldest first, each with the run payloads its task returned."""
    answer = client.get(f"/api/v2/dags/{EVENTS_DAG}/dagRuns", params={"order_by": "run_after"})
    if not answer.is_success:
        return []
    runs = answer.json()["dag_runs"]
    for run in runs:
        run["payloads"] = None
        if run["state"] == "success":
            xcom = client.get(
                f"/api/v2/dags/{EVENTS_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/{EVENTS_TASK}"
                "/xcomEntries/return_value"
            )
            if xcom.is_success:
                value = xcom.json()["value"]
                run["payloads"] = json.loads(value) if isinstance(value, str) else value
    return runs


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def wait_done(client: httpx.Client, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Wait until the event DAG has ``count`` finished runs (no run still going); return them all."""

    def check() -> list[dict[str, Any]] | None:
        runs = consumer_runs(client)
        finished = [run for run in runs if run["state"] in ("success", "failed")]
        return runs if len(finished) >= count and len(finished) == len(runs) else None

    return wait_for(f"{count} runs of {EVENTS_DAG}", check, timeout, interval=0.5)


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)
