"""
Start downstream work once PostHog has exported a batch export's data for this DAG run's interval.

Each hourly run waits, in the triggerer, until PostHog's runs cover ``data_interval_end``'s hour
(a failed hour that PostHog retried successfully counts), then hands the records count to the next
task; a run that failed for good fails the wait at once with PostHog's error. Point it at your
export with ``batch_export_id``.
"""

from __future__ import annotations

# [START howto_posthog_export_downstream]
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportRunSensor

with DAG(
    dag_id="posthog_export_downstream",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"batch_export_id": Param("01900000-0000-7000-8000-0000000000e1", type="string")},
    tags=["posthog", "example"],
) as dag:
    exported = PostHogBatchExportRunSensor(
        task_id="wait_for_export",
        batch_export_id="{{ params.batch_export_id }}",
        until="{{ data_interval_end }}",
        poll_interval=60,
        timeout=timedelta(hours=3),
        deferrable=True,
    )

    @task
    def load_into_warehouse(export: dict) -> int:
        # Stand-in for the real downstream step (a dbt job on the exported table, a report...).
        print(f"PostHog exported {export['records_completed']} records in {len(export['runs'])} run(s).")
        return export["records_completed"]

    load_into_warehouse(exported.output)
# [END howto_posthog_export_downstream]
