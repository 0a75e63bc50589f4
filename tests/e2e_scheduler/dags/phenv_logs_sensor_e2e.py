"""
DAG for the scheduler/triggerer end-to-end test: three sensors wait for the same batch export log
line, one per mode (poke, reschedule, deferrable), at the same poll interval. The test starts
Airflow with this folder as its DAGs folder and compares when each mode noticed the line.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor

MODES = {
    "wait_poke": {"mode": "poke", "deferrable": False},
    "wait_reschedule": {"mode": "reschedule", "deferrable": False},
    "wait_deferrable": {"mode": "poke", "deferrable": True},
}

with DAG(dag_id="phenv_logs_sensor_e2e", schedule=None, catchup=False, tags=["phenv-e2e"]):
    for task_id, mode in MODES.items():
        PostHogBatchExportLogsSensor(
            task_id=task_id,
            batch_export_id=os.environ.get(
                "PHENV_E2E_BATCH_EXPORT_ID", "01900000-0000-7000-8000-0000000000e1"
            ),
            message_pattern=r"finished (successfully )?with (\d+|no) records exported",
            poll_interval=float(os.environ.get("PHENV_E2E_POLL_INTERVAL", "1")),
            timeout=120,
            hook_params={"backoff": 0.2, "backoff_max": 1.0},
            **mode,
        )
