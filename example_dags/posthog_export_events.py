"""
React to PostHog batch export runs: a DAG that runs once for each run PostHog finishes.

The asset stands for the data a batch export has written; its watcher (a trigger in Airflow's
triggerer, no worker slot) adds an asset event each time one of the export's runs completes, with
the run in the event's ``extra["payload"]``. The DAG scheduled on the asset reads those events.
Nothing produces the asset in Airflow: PostHog does.

Settings (read when the DAG is parsed; the defaults match the bundled emulator's seed data):
``POSTHOG_BATCH_EXPORT_ID``, ``POSTHOG_PROJECT_ID``, ``POSTHOG_HOST`` (the host part of the asset's
URI; the watcher itself reads PostHog through the ``posthog_default`` connection) and
``POSTHOG_POLL_INTERVAL`` (seconds, default 60).
"""

from __future__ import annotations

# [START howto_posthog_export_events]
import os
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_phenv.lineage import batch_export_asset

exported_events = batch_export_asset(
    os.environ.get("POSTHOG_BATCH_EXPORT_ID", "01900000-0000-7000-8000-0000000000e1"),
    project_id=os.environ.get("POSTHOG_PROJECT_ID", "1"),
    host=os.environ.get("POSTHOG_HOST", "us.posthog.com"),
    statuses=("Completed",),
    poll_interval=float(os.environ.get("POSTHOG_POLL_INTERVAL", "60")),
)

with DAG(
    dag_id="posthog_export_events",
    schedule=[exported_events],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["posthog", "example"],
) as dag:

    @task
    def load_exported_runs(triggering_asset_events=None) -> list[dict]:
        # Events that arrive within one scheduler loop share one DAG run: handle every one of them.
        runs = [event.extra["payload"] for event in triggering_asset_events[exported_events]]
        for run in runs:
            print(
                f"PostHog run {run['run_id']} exported {run['records_completed']} records "
                f"for {run['data_interval_start']} - {run['data_interval_end']}"
            )
        return runs

    load_exported_runs()
# [END howto_posthog_export_events]
