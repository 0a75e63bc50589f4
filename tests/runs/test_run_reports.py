"""What the backfill operator and the run sensor report once runs completed: outlet extras, lineage."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportRunSensor
from tests.helpers.sensor_modes import FakeTI
from tests.runs.conftest import FAST, HOURLY, backfill_op, hours_ago


class OutletEvents(dict):
    """Stands in for ``context["outlet_events"]``: ``events[asset].extra`` is a dict, by URI (an
    Asset is not hashable on Airflow 3.1)."""

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.setdefault(asset.uri, SimpleNamespace(extra={}))


def context_with_outlet(task: Any) -> tuple[dict[str, Any], Asset, OutletEvents]:
    asset = Asset(f"posthog://127.0.0.1/1/batch_exports/{HOURLY}")
    task.outlets = [asset]
    events = OutletEvents()
    return {"ti": FakeTI(hours_ago(0)), "task": task, "outlet_events": events}, asset, events


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_a_backfill_attaches_its_runs_to_the_outlet_and_reports_lineage(quick_runs):
    op = backfill_op(start_at=hours_ago(9), end_at=hours_ago(7))
    context, asset, events = context_with_outlet(op)
    result = op.execute(context)
    extra = events[asset].extra
    assert extra["backfill_id"] == result["backfill_id"] and extra["batch_export_id"] == HOURLY
    assert len(extra["run_ids"]) == result["total_runs"] >= 1
    assert extra["records_completed"] == result["records_completed"] > 0

    pytest.importorskip("airflow.providers.openlineage")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [dataset.namespace for dataset in lineage.inputs] == [
        quick_runs.url.replace("http://", "posthog://")
    ]
    assert [dataset.name for dataset in lineage.inputs] == ["1.events"]
    (output,) = lineage.outputs
    assert output.namespace.startswith("s3://")
    assert output.outputFacets["outputStatistics"].rowCount == result["records_completed"]


def test_the_run_sensor_attaches_the_runs_it_waited_for(quick_runs):
    sensor = PostHogBatchExportRunSensor(
        task_id="exported", batch_export_id=HOURLY, until=hours_ago(1), **FAST
    )
    context, asset, events = context_with_outlet(sensor)
    result = sensor.execute(context)
    assert events[asset].extra["run_ids"] == [run["id"] for run in result["runs"]]
    assert events[asset].extra["data_interval_end"] == result["runs"][-1]["data_interval_end"]
