"""
The deferrable logs sensor under a real Airflow: scheduler, dag-processor, api-server and triggerer
as separate processes, LocalExecutor, SQLite, the emulator as a subprocess.

It proves that the trigger ran in the triggerer process: while the task is deferred the trigger row
is assigned to the triggerer job, and the trigger's own log lines are in the trigger log file the
triggerer writes. Every process is started in its own session and stopped by its PID.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from phenv_emulator import SEED

from tests.helpers.airflow_stack import airflow_env, prepare_db
from tests.helpers.processes import Processes, airflow_api_client, free_port, wait_for

DAGS = Path(__file__).parent / "dags"
DAG_ID = "phenv_logs_sensor_e2e"
# One sensor per mode, all waiting for the same line (reschedule polls every 8 s, the others every 1 s).
WAITING_STATES = {
    "wait_poke": "running",
    "wait_reschedule": "up_for_reschedule",
    "wait_deferrable": "deferred",
}
TRIGGER_CLASSPATH = "airflow_provider_phenv.triggers.batch_exports.PostHogBatchExportLogsTrigger"
EXPORT_ID = SEED.s3_export_id


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _log_records(home: Path, task_id: str, pattern: str) -> list[dict[str, Any]]:
    """The JSON records of a task's log files (the worker's, or the triggerer's for the task)."""
    folder = next((home / "logs").glob(f"dag_id={DAG_ID}/run_id=*/task_id={task_id}"), None)
    if folder is None:
        return []
    return [
        json.loads(line) for path in folder.glob(pattern) for line in path.read_text().splitlines() if line
    ]


def test_deferrable_sensor_runs_its_trigger_in_the_triggerer(tmp_path, airflow_cli, migrated_airflow_db):
    home = tmp_path / "airflow_home"
    home.mkdir()
    emulator_url = f"http://127.0.0.1:{free_port()}"
    env = airflow_env(home, DAGS, emulator_url, SEED.api_key, SEED.project_id)
    # Three sensors wait at once, each in its own worker slot or the triggerer.
    env["AIRFLOW__CORE__PARALLELISM"] = "4"
    env["PHENV_E2E_BATCH_EXPORT_ID"] = EXPORT_ID
    api = env["AIRFLOW__API__BASE_URL"]
    processes = Processes(tmp_path, env)
    timings: dict[str, float] = {}
    began = time.monotonic()
    try:
        # In-order visibility: the notice latencies printed below measure the provider, not the
        # 0-3 s by which today's PostHog (and the emulator by default) reveals entries late.
        processes.start(
            "emulator",
            sys.executable,
            "-m",
            "phenv_emulator",
            "--port",
            emulator_url.rsplit(":", 1)[1],
            "--log-delay",
            "0",
        )
        prepare_db(env, airflow_cli, migrated_airflow_db)
        timings["database ready"] = time.monotonic() - began
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            processes.start(component, airflow_cli, component)

        client = airflow_api_client(api)
        wait_for("the DAG to be parsed", lambda: client.get(f"/api/v2/dags/{DAG_ID}").status_code == 200, 60)
        timings["airflow up"] = time.monotonic() - began
        created = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
        assert created.status_code == 200, created.text
        run_id = created.json()["dag_run_id"]
        tis_url = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"

        def task_instances() -> dict[str, dict[str, Any]]:
            response = client.get(tis_url)
            return (
                {ti["task_id"]: ti for ti in response.json()["task_instances"]} if response.is_success else {}
            )

        def all_waiting() -> bool:
            states = {task: ti["state"] for task, ti in task_instances().items()}
            return states == WAITING_STATES and bool(_log_records(home, "wait_poke", "attempt=1.log"))

        wait_for("every sensor to wait in its own way", all_waiting, 60, interval=0.2)
        timings["all waiting"] = time.monotonic() - began

        # While deferred, the trigger row belongs to the triggerer job (not to a worker).
        def trigger_row() -> tuple[str, int] | None:
            with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=5) as db:
                return db.execute(
                    "SELECT t.classpath, t.triggerer_id FROM trigger t JOIN job j ON j.id = t.triggerer_id "
                    "WHERE j.job_type = 'TriggererJob'"
                ).fetchone()

        classpath, triggerer_job = wait_for("the triggerer to take the trigger", trigger_row, 30)
        assert classpath == TRIGGER_CLASSPATH

        # Now the run finishes: one log line appears, and each sensor has to notice it.
        time.sleep(1.5)  # a few empty polls first
        line = (
            "Batch export for range 2026-11-28 10:00:00+00:00 - 2026-11-28 11:00:00+00:00 "
            "finished successfully with 4242 records exported"
        )
        written = datetime.now(timezone.utc)
        added = httpx.post(
            f"{emulator_url}/_emulator/log_entries/{EXPORT_ID}",
            json=[{"timestamp": written.isoformat(), "level": "INFO", "message": line}],
        )
        assert added.status_code == 201, added.text

        def all_done() -> bool:
            return all(ti["state"] in ("success", "failed") for ti in task_instances().values())

        wait_for("every sensor to finish", all_done, 60, interval=0.2)
        final = task_instances()
        assert {task: ti["state"] for task, ti in final.items()} == dict.fromkeys(
            WAITING_STATES, "success"
        ), processes.output("scheduler")[-4000:]

        # The same XCom from every mode.
        values = []
        for task in WAITING_STATES:
            xcom = client.get(f"{tis_url}/{task}/xcomEntries/return_value").json()["value"]
            values.append(json.loads(xcom) if isinstance(xcom, str) else xcom)
        assert values[0]["entry"]["message"] == line and values[0]["cursor"]["count"] == 1
        assert values[0] == values[1] == values[2]

        # The trigger ran in the triggerer: the triggerer started it (triggerer_job_runner) and
        # wrote our trigger's own log lines into the task's trigger log.
        trigger_records = _log_records(home, "wait_deferrable", "attempt=1.log.trigger.*.log")
        assert any(
            record.get("filename") == "triggerer_job_runner.py" and "starting" in record["event"]
            for record in trigger_records
        )
        assert "Trigger fired event" in {record["event"] for record in trigger_records}
        deferred_log = _log_records(home, "wait_deferrable", "attempt=1.log")
        events = [record["event"] for record in deferred_log]
        assert any("Pausing task as DEFERRED" in event for event in events)
        assert any("ended with success" in event for event in events)
        # The workers of the deferrable task never saw the line: only the trigger did.
        assert not any("1 new log entries, success" in event for event in events)
        requests = httpx.get(f"{emulator_url}/_emulator/requests").json()
        assert {request["method"] for request in requests} == {"GET"}

        # How long each mode took to notice the line, and to finish the task, after it was written.
        noticed_in = {
            "wait_poke": _log_records(home, "wait_poke", "attempt=1.log"),
            "wait_reschedule": _log_records(home, "wait_reschedule", "attempt=1.log"),
            "wait_deferrable": trigger_records,
        }
        latency = {}
        for task, records in noticed_in.items():
            (noticed,) = [
                r for r in records if f"Batch export {EXPORT_ID}: 1 new log entries, success" in r["event"]
            ]
            finished = datetime.fromisoformat(final[task]["end_date"].replace("Z", "+00:00"))
            latency[task] = {
                "noticed_s": round((_when(noticed["timestamp"]) - written).total_seconds(), 2),
                "task_done_s": round((finished - written).total_seconds(), 2),
            }
        print(f"\ne2e timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        print(f"notice latency after the line was written (poll 1 s, reschedule 8 s): {json.dumps(latency)}")
        print(f"triggerer job {triggerer_job} ran {classpath}")
    finally:
        processes.stop_all()
        timings["total"] = time.monotonic() - began
    leftovers = [name for name, process in processes.started.items() if process.poll() is None]
    assert leftovers == []
