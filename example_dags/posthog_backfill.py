"""
Backfill a range of a PostHog batch export and wait until every run of it completed.

PostHog makes one run per whole export interval of the range and runs them one after another; the
task logs how many finished, fails with each failed run's error, and cancels the backfill in
PostHog when it is killed or takes longer than its ``timeout``. By default it backfills the three
hours before the last whole hour; pass ``start_at`` and ``end_at`` (ISO 8601 with a timezone, or
dates for daily and weekly exports) in the run's config for another range.
"""

from __future__ import annotations

# [START howto_posthog_backfill]
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_phenv.operators.batch_exports import PostHogBackfillBatchExportOperator

HOUR = "%Y-%m-%dT%H:00:00Z"

with DAG(
    dag_id="posthog_backfill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "batch_export_id": Param("01900000-0000-7000-8000-0000000000e1", type="string"),
        "start_at": Param(None, type=["null", "string"]),
        "end_at": Param(None, type=["null", "string"]),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["posthog", "example"],
) as dag:
    backfill = PostHogBackfillBatchExportOperator(
        task_id="backfill_export",
        batch_export_id="{{ params.batch_export_id }}",
        start_at="{{ params.start_at or (data_interval_end - macros.timedelta(hours=4)).strftime('"
        + HOUR
        + "') }}",
        end_at="{{ params.end_at or (data_interval_end - macros.timedelta(hours=1)).strftime('"
        + HOUR
        + "') }}",
        poll_interval=5,
        timeout=timedelta(hours=6),
        deferrable=True,
    )
# [END howto_posthog_backfill]
