"""
DAG for the scheduler/triggerer end-to-end test: three sensors wait for the same batch export log
line, one per mode (poke, reschedule, deferrable); reschedule polls less often (see MODES). The test starts
Airflow with this folder as its DAGs folder and compares when each mode noticed the line.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor

POLL_INTERVAL = float(os.environ.get("PHENV_E2E_POLL_INTERVAL", "1"))
# Reschedule mode polls less often: at 1 s, Airflow's scheduler sometimes queues the next poke
# before it has drained the executor's report of the last one, and then fails the task
# (apache/airflow#71172; seen on Airflow 3.1 under a full test run).
RESCHEDULE_INTERVAL = float(os.environ.get("PHENV_E2E_RESCHEDULE_INTERVAL", "8"))
MODES = {
    "wait_poke": {"mode": "poke", "deferrable": False, "poll_interval": POLL_INTERVAL},
    "wait_reschedule": {"mode": "reschedule", "deferrable": False, "poll_interval": RESCHEDULE_INTERVAL},
    "wait_deferrable": {"mode": "poke", "deferrable": True, "poll_interval": POLL_INTERVAL},
}

with DAG(dag_id="phenv_logs_sensor_e2e", schedule=None, catchup=False, tags=["phenv-e2e"]):
    for task_id, mode in MODES.items():
        PostHogBatchExportLogsSensor(
            task_id=task_id,
            batch_export_id=os.environ.get(
                "PHENV_E2E_BATCH_EXPORT_ID", "01900000-0000-7000-8000-0000000000e1"
            ),
            message_pattern=r"finished (successfully )?with (\d+|no) records exported",
            timeout=120,
            hook_params={"backoff": 0.2, "backoff_max": 1.0},
            **mode,
        )
