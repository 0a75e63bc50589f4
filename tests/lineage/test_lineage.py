"""OpenLineage of batch exports: datasets named by OpenLineage's conventions, field by field.

Where the OpenLineage client ships a naming helper for the destination (openlineage.client.naming),
the expected namespace and name come from it, so the comparison is with OpenLineage's own rules.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import pytest

naming = pytest.importorskip("openlineage.client.naming.dataset")

from airflow.providers.common.compat.openlineage.facet import (  # noqa: E402
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.serde import Serde  # noqa: E402

from airflow_provider_phenv.lineage import (  # noqa: E402
    PostHogLineageMixin,
    asset_to_openlineage,
    batch_export_lineage,
    batch_export_uri,
    destination_dataset_name,
)

EXPORT_ID = "01900000-0000-7000-8000-0000000000e1"
RUNS = [
    {
        "id": "01900000-0000-7000-8000-00000000f001",
        "status": "Completed",
        "data_interval_start": "2026-11-28T09:00:00Z",
        "data_interval_end": "2026-11-28T10:00:00Z",
        "records_completed": 1000,
        "bytes_exported": 512000,
        "latest_error": None,
    },
    {
        "id": "01900000-0000-7000-8000-00000000f002",
        "status": "Completed",
        "data_interval_start": "2026-11-28T10:00:00Z",
        "data_interval_end": "2026-11-28T11:00:00Z",
        "records_completed": 250,
        "bytes_exported": 128000,
        "latest_error": None,
    },
]


def export(kind: str, config: dict[str, Any], model: str = "events") -> dict[str, Any]:
    """A batch export as GET returns it (secrets stripped, integration as an id)."""
    return {
        "id": EXPORT_ID,
        "team_id": 2,
        "name": f"{kind} export",
        "model": model,
        "destination": {"type": kind, "config": config, "integration": 7},
        "interval": "hour",
    }


def ol(helper: Any) -> tuple[str, str]:
    return helper.get_namespace(), helper.get_name()


def ol_table(helper: type, table: str, **location: str) -> tuple[str, str]:
    """``ol`` of a database helper (Postgres, Redshift, Snowflake); ``table`` is database.schema.table."""
    database, schema, name = table.split(".")
    return ol(helper(**location, database=database, schema=schema, table=name))


CASES = [
    (
        "AwsS3",
        {"bucket_name": "acme-lake", "region": "us-east-1", "prefix": "posthog/events/"},
        None,
        ol(naming.S3(bucket_name="acme-lake", object_key="posthog/events")),
    ),
    (
        "S3Compatible",
        {"bucket_name": "minio-bucket", "region": "auto", "prefix": "", "endpoint_url": "https://minio:9000"},
        None,
        ("s3://minio-bucket", "/"),
    ),
    (
        "BigQuery",
        {"dataset_id": "analytics", "table_id": "ph_events", "project_id": "acme-prod"},
        None,
        ol(naming.BigQuery(project_id="acme-prod", dataset_name="analytics", table_name="ph_events")),
    ),
    (
        "BigQuery",
        {"dataset_id": "analytics"},  # project in the integration, table by default "events"
        {"project_id": "acme-prod"},
        ol(naming.BigQuery(project_id="acme-prod", dataset_name="analytics", table_name="events")),
    ),
    (
        "Snowflake",
        {"database": "RAW", "warehouse": "WH", "schema": "POSTHOG", "table_name": "EVENTS"},
        {"account": "ACME-PROD"},
        ol_table(naming.Snowflake, "RAW.POSTHOG.EVENTS", organization_name="acme", account_name="prod"),
    ),
    (
        "Postgres",
        {"database": "warehouse", "host": "db.acme.internal", "port": 6543, "table_name": "ph"},
        None,
        ol_table(naming.Postgres, "warehouse.public.ph", host="db.acme.internal", port="6543"),
    ),
    (
        "Redshift",
        {
            "database": "dev",
            "schema": "posthog",
            "table_name": "events",
            "host": "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com",
        },
        None,
        ol_table(
            naming.Redshift,
            "dev.posthog.events",
            cluster_identifier="examplecluster",
            region="us-west-2",
            port="5439",
        ),
    ),
    (
        "Redshift",
        {"database": "dev", "host": "redshift.acme.internal", "port": 5440},
        None,
        ("redshift://redshift.acme.internal:5440", "dev.public.events"),
    ),
    (
        "Databricks",
        {
            "http_path": "/sql/1.0/warehouses/abc",
            "catalog": "main",
            "schema": "posthog",
            "table_name": "events",
        },
        {"server_hostname": "https://dbc-1234.cloud.databricks.com"},
        ("databricks://dbc-1234.cloud.databricks.com", "main.posthog.events"),
    ),
    (
        "AzureBlob",
        {"container_name": "exports", "prefix": "/posthog/"},
        {"storage_account": "acmestorage"},
        ol(naming.WASBS(container="exports", service_name="acmestorage", object_key="posthog")),
    ),
]


@pytest.mark.parametrize(("kind", "config", "integration", "expected"), CASES, ids=[c[0] for c in CASES])
def test_destination_dataset_names_follow_openlineage_naming(kind, config, integration, expected):
    assert destination_dataset_name({"type": kind, "config": config}, integration) == expected


@pytest.mark.parametrize(("kind", "config", "integration", "expected"), CASES, ids=[c[0] for c in CASES])
def test_lineage_field_by_field(kind, config, integration, expected):
    lineage = batch_export_lineage(
        export(kind, config),
        RUNS,
        host="https://eu.posthog.com",
        backfill_id="01900000-0000-7000-8000-00000000b001",
        integration_config=integration,
    )
    assert lineage.inputs == [InputDataset(namespace="posthog://eu.posthog.com", name="2.events")]
    (output,) = lineage.outputs
    assert isinstance(output, OutputDataset)
    assert (output.namespace, output.name) == expected
    statistics = output.outputFacets["outputStatistics"]
    assert isinstance(statistics, OutputStatisticsOutputDatasetFacet)
    assert (statistics.rowCount, statistics.size, statistics.fileCount) == (1250, 640000, None)
    job = lineage.job_facets["posthogBatchExport"]
    assert (job.batchExportId, job.name, job.model, job.destinationType, job.interval, job.projectId) == (
        EXPORT_ID,
        f"{kind} export",
        "events",
        kind,
        "hour",
        "2",
    )
    runs = lineage.run_facets["posthogBatchExportRuns"]
    assert runs.backfillId == "01900000-0000-7000-8000-00000000b001"
    assert runs.recordsCompleted == 1250
    assert runs.runs == [
        {
            key: run[key]
            for key in ("id", "status", "data_interval_start", "data_interval_end", "records_completed")
        }
        for run in RUNS
    ]
    # Everything serialises to the JSON an OpenLineage event carries.
    document = json.loads(Serde.to_json(runs))
    assert document["backfillId"] == runs.backfillId and document["_producer"]


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_the_input_is_the_model_exported(model):
    lineage = batch_export_lineage(
        export("AwsS3", {"bucket_name": "b", "region": "r", "prefix": "p"}, model=model),
        host="us.posthog.com",
        project_id=12345,
    )
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("posthog://us.posthog.com", f"12345.{model}")]
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount is None  # no runs, no count


@pytest.mark.parametrize("kind", ["HTTP", "Workflows", "NoOp"])
def test_destinations_without_a_dataset_have_no_output(kind):
    lineage = batch_export_lineage(export(kind, {}), RUNS, host="us.posthog.com")
    assert lineage.outputs == [] and len(lineage.inputs) == 1


def test_a_detail_kept_in_the_integration_is_asked_for_not_guessed(caplog):
    snowflake = export("Snowflake", {"database": "RAW", "warehouse": "WH", "schema": "POSTHOG"})
    with caplog.at_level(logging.WARNING, logger="airflow_provider_phenv.lineage"):
        lineage = batch_export_lineage(snowflake, RUNS, host="us.posthog.com")
    assert lineage.outputs == []
    assert "integration_config={'account': ...}" in caplog.text


class Operator(PostHogLineageMixin):
    lineage_integration_config: ClassVar[dict[str, str]] = {"storage_account": "acmestorage"}


def test_mixin_builds_lineage_from_what_the_operator_recorded():
    operator = Operator()
    assert operator.get_openlineage_facets_on_complete(task_instance=None) is None
    operator.record_posthog_lineage(
        export("AzureBlob", {"container_name": "exports"}), RUNS[:1], host="eu.posthog.com", backfill_id="b1"
    )
    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)
    assert lineage is not None
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("wasbs://exports@acmestorage.dfs.core.windows.net", "/")
    ]
    assert lineage.run_facets["posthogBatchExportRuns"].backfillId == "b1"
    assert operator._posthog_lineage is not None
    json.dumps(operator._posthog_lineage)  # plain values only


def test_posthog_assets_convert_to_openlineage_datasets():
    from airflow.sdk import Asset

    asset = Asset(uri=batch_export_uri(EXPORT_ID, project_id=12345, host="eu.posthog.com"))
    dataset = asset_to_openlineage(asset, None)
    assert (dataset.namespace, dataset.name) == (
        "posthog://eu.posthog.com",
        f"12345.batch_exports.{EXPORT_ID}",
    )
