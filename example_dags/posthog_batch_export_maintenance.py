"""
Maintenance window for a PostHog batch export's destination.

Pause the export, check that PostHog can still reach the destination, unpause it with a backfill
of the paused time, and wait until that backfill ended with every one of its runs completed
(failing with PostHog's error otherwise). PostHog makes one run per whole export interval, so a
pause shorter than one interval backfills nothing, and the wait ends at once.

The defaults match the seed data of the bundled emulator
(``python -m phenv_emulator``); pass your own ``batch_export_id`` in the run's
config to use it against PostHog.
"""

from __future__ import annotations

# [START howto_posthog_batch_export_maintenance]
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_phenv.operators.batch_exports import (
    PostHogPauseBatchExportOperator,
    PostHogTestBatchExportOperator,
    PostHogUnpauseBatchExportOperator,
)

with DAG(
    dag_id="posthog_batch_export_maintenance",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "batch_export_id": Param("01900000-0000-7000-8000-0000000000e1", type="string"),
        "backfill": Param(True, type="boolean"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["posthog", "example"],
) as dag:
    pause = PostHogPauseBatchExportOperator(
        task_id="pause_export",
        batch_export_id="{{ params.batch_export_id }}",
    )
    test_destination = PostHogTestBatchExportOperator(
        task_id="test_destination",
        batch_export_id="{{ params.batch_export_id }}",
    )
    unpause = PostHogUnpauseBatchExportOperator(
        task_id="unpause_export",
        batch_export_id="{{ params.batch_export_id }}",
        backfill="{{ params.backfill }}",
        # Wait for the backfill of the pause by its status, in the triggerer; cancel it in PostHog
        # if it takes longer than two hours.
        wait_for_backfill=True,
        poll_interval=5,
        timeout=timedelta(hours=2),
        deferrable=True,
    )
    pause >> test_destination >> unpause
# [END howto_posthog_batch_export_maintenance]
