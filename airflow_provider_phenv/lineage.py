"""
OpenLineage for PostHog batch exports: what an export reads, where it writes, how many rows.

Optional: ``pip install airflow-provider-phenv[openlineage]`` brings
``apache-airflow-providers-openlineage``. Without it nothing here is imported by DAG parsing or by
the operators; :class:`PostHogLineageMixin` only records plain values during ``execute`` and builds
OpenLineage objects when the OpenLineage listener asks for them after the task.

From a batch export as ``GET batch_exports/{id}/`` returns it (``model``, ``destination {type,
config}``) and its runs:

- **input**: the PostHog model exported, namespace ``posthog://<host>``, name
  ``<project_id>.<model>`` (``events``, ``persons``, ``sessions``, ``hogql``);
- **output**: the destination, named by OpenLineage's naming conventions (spec ``Naming.md``,
  ``openlineage.client.naming.dataset``):

  ==================  ===================================================  ==========================
  destination type    namespace                                            name
  ==================  ===================================================  ==========================
  AwsS3, S3Compat.    ``s3://<bucket_name>``                               ``<prefix>`` (``/`` if none)
  BigQuery            ``bigquery``                                         ``<project>.<dataset>.<table>``
  Snowflake           ``snowflake://<account>``                            ``<database>.<schema>.<table>``
  Postgres            ``postgres://<host>:<port>``                         ``<database>.<schema>.<table>``
  Redshift            ``redshift://<cluster>.<region>:<port>``             ``<database>.<schema>.<table>``
  Databricks          ``databricks://<workspace host>``                    ``<catalog>.<schema>.<table>``
  AzureBlob           ``wasbs://<container>@<account>.dfs.core.windows.net``  ``<prefix>`` (``/`` if none)
  ==================  ===================================================  ==========================

  (Airflow's Databricks provider names Unity Catalog tables this way; OpenLineage's own WASBS
  helper uses the ``dfs`` host shown.) HTTP, Workflows, NoOp and FileDownload have no dataset.
- **row counts**: the sum of the runs' ``records_completed`` (and ``bytes_exported``) in the
  output's ``outputStatistics`` facet;
- **custom facets**: job facet ``posthogBatchExport`` (the export) and run facet
  ``posthogBatchExportRuns`` (backfill id and runs).

Newer PostHog builds keep some connection details in the export's *integration*, which GET does
not return: the Snowflake account, the BigQuery project (when not in the config), the Databricks
workspace host and the Azure storage account. Pass them as ``integration_config``
(``{"account": ...}``, ``{"project_id": ...}``, ``{"server_hostname": ...}``,
``{"storage_account": ...}``); without them the output is left out (with a warning) rather than
named wrongly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_phenv.waits.events import run_summary

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "PostHogLineageMixin",
    "asset_to_openlineage",
    "batch_export_lineage",
    "destination_dataset_name",
    "input_dataset_name",
]

log = logging.getLogger(__name__)

#: Destination types that write no dataset OpenLineage can name.
NO_DATASET = frozenset({"HTTP", "Workflows", "NoOp", "FileDownload"})
_REDSHIFT_HOST = re.compile(
    r"^(?P<cluster>[^.]+)\.[^.]+\.(?P<region>[a-z0-9-]+)\.redshift(-serverless)?\.amazonaws\.com$"
)


class MissingLineageDetail(ValueError):
    """The export's GET lacks a detail its destination's dataset name needs."""


def _host(host: str) -> str:
    text = host.strip()
    return (urlsplit(text).netloc if "://" in text else text.rstrip("/")).lower()


def input_dataset_name(export: Mapping[str, Any], *, host: str, project_id: int | str) -> tuple[str, str]:
    """The PostHog data an export reads: ``("posthog://<host>", "<project>.<model>")``."""
    return f"posthog://{_host(host)}", f"{project_id}.{export.get('model') or 'events'}"


def _need(config: Mapping[str, Any], key: str, kind: str, hint: str = "") -> str:
    value = config.get(key)
    if value in (None, ""):
        where = f"; pass integration_config={{{key!r}: ...}}" if hint else ""
        raise MissingLineageDetail(f"{kind} destination without {key!r}{where}")
    return str(value)


def _path(prefix: Any) -> str:
    text = str(prefix or "").strip("/")
    return text or "/"


def destination_dataset_name(
    destination: Mapping[str, Any], integration_config: Mapping[str, Any] | None = None
) -> tuple[str, str] | None:
    """
    ``(namespace, name)`` of the dataset a destination writes, or None when it writes none.

    :param destination: ``{"type", "config"}`` as GET returns it.
    :param integration_config: details kept in the export's integration (see the module doc).
    :raises MissingLineageDetail: when a detail the name needs is in neither.
    """
    kind = str(destination.get("type"))
    config = {**(destination.get("config") or {}), **(integration_config or {})}
    if kind in NO_DATASET:
        return None
    if kind in ("S3", "AwsS3", "S3Compatible"):
        return f"s3://{_need(config, 'bucket_name', kind)}", _path(config.get("prefix"))
    if kind == "BigQuery":
        table = config.get("table_id") or "events"
        project = _need(config, "project_id", kind, hint="integration")
        return "bigquery", f"{project}.{_need(config, 'dataset_id', kind)}.{table}"
    if kind == "Snowflake":
        account = _need(config, "account", kind, hint="integration").lower()
        table = config.get("table_name") or "events"
        return (
            f"snowflake://{account}",
            f"{_need(config, 'database', kind)}.{_need(config, 'schema', kind)}.{table}",
        )
    if kind in ("Postgres", "Redshift"):
        host = _need(config, "host", kind).lower()
        schema, table_name = config.get("schema") or "public", config.get("table_name") or "events"
        table = f"{_need(config, 'database', kind)}.{schema}.{table_name}"
        if kind == "Postgres":
            return f"postgres://{host}:{config.get('port') or 5432}", table
        port = config.get("port") or 5439
        match = _REDSHIFT_HOST.match(host)
        authority = f"{match['cluster']}.{match['region']}" if match else host
        return f"redshift://{authority}:{port}", table
    if kind == "Databricks":
        workspace = _host(_need(config, "server_hostname", kind, hint="integration"))
        name = ".".join(_need(config, key, kind) for key in ("catalog", "schema", "table_name"))
        return f"databricks://{workspace}", name
    if kind == "AzureBlob":
        account = _need(config, "storage_account", kind, hint="integration")
        container = _need(config, "container_name", kind)
        return f"wasbs://{container}@{account}.dfs.core.windows.net", _path(config.get("prefix"))
    raise MissingLineageDetail(f"unknown destination type {kind!r}")


def _total(runs: list[Mapping[str, Any]], key: str) -> int | None:
    values = [
        run[key] for run in runs if isinstance(run.get(key), int) and not isinstance(run.get(key), bool)
    ]
    return sum(values) if values else None


def batch_export_lineage(
    export: Mapping[str, Any],
    runs: Iterable[Mapping[str, Any]] = (),
    *,
    host: str,
    project_id: int | str | None = None,
    backfill_id: str | None = None,
    integration_config: Mapping[str, Any] | None = None,
) -> OperatorLineage:
    """
    The OpenLineage of a batch export's runs (needs the ``openlineage`` extra).

    :param export: the export as ``GET batch_exports/{id}/`` returns it.
    :param runs: the runs the task waited for or started (as PostHog returns them).
    :param host: the PostHog host (``https://eu.posthog.com`` or ``eu.posthog.com``).
    :param project_id: the project; default: the export's ``team_id``.
    :param backfill_id: the backfill the runs belong to, if any.
    :param integration_config: destination details PostHog keeps in the integration.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_phenv._lineage_facets import (
        PostHogBatchExportJobFacet,
        PostHogBatchExportRunsRunFacet,
    )

    items = list(runs)
    project = project_id if project_id not in (None, "") else export.get("team_id")
    namespace, name = input_dataset_name(export, host=host, project_id=str(project))
    destination = export.get("destination") or {}
    outputs = []
    try:
        target = destination_dataset_name(destination, integration_config)
    except MissingLineageDetail as error:
        log.warning("OpenLineage: no output dataset for batch export %s: %s.", export.get("id"), error)
        target = None
    if target is not None:
        statistics = OutputStatisticsOutputDatasetFacet(
            rowCount=_total(items, "records_completed"), size=_total(items, "bytes_exported")
        )
        outputs.append(
            OutputDataset(namespace=target[0], name=target[1], outputFacets={"outputStatistics": statistics})
        )
    return OperatorLineage(
        inputs=[InputDataset(namespace=namespace, name=name)],
        outputs=outputs,
        job_facets={
            "posthogBatchExport": PostHogBatchExportJobFacet(
                batchExportId=str(export.get("id")),
                name=export.get("name"),
                model=export.get("model") or "events",
                destinationType=destination.get("type"),
                interval=export.get("interval"),
                projectId=str(project),
            )
        },
        run_facets={
            "posthogBatchExportRuns": PostHogBatchExportRunsRunFacet(
                backfillId=backfill_id,
                runs=[run_summary(run) for run in items],
                recordsCompleted=_total(items, "records_completed"),
            )
        },
    )


class PostHogLineageMixin:
    """
    Gives an operator ``get_openlineage_facets_on_complete``, from what it recorded while running.

    Call :meth:`record_posthog_lineage` in ``execute`` (or ``execute_complete``) with the export as
    GET returned it and the runs; without the ``openlineage`` extra it only stores plain values and
    nothing is ever built. An operator may set ``lineage_integration_config`` (see the module doc)
    for destinations whose names PostHog keeps in the integration.
    """

    _posthog_lineage: dict[str, Any] | None = None

    def record_posthog_lineage(
        self,
        export: Mapping[str, Any],
        runs: Iterable[Mapping[str, Any]] = (),
        *,
        host: str,
        project_id: int | str | None = None,
        backfill_id: str | None = None,
    ) -> None:
        """Keep what :meth:`get_openlineage_facets_on_complete` needs (plain values only)."""
        self._posthog_lineage = {
            "export": dict(export),
            "runs": [dict(run) for run in runs],
            "host": host,
            "project_id": project_id,
            "backfill_id": backfill_id,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        recorded = self._posthog_lineage
        if not recorded:
            return None
        integration_config = getattr(self, "lineage_integration_config", None)
        return batch_export_lineage(
            recorded["export"],
            recorded["runs"],
            host=recorded["host"],
            project_id=recorded["project_id"],
            backfill_id=recorded["backfill_id"],
            integration_config=integration_config,
        )


def asset_to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """
    Airflow's OpenLineage converter for ``posthog://`` assets: the batch export as a dataset.

    Namespace ``posthog://<host>``, name ``<project_id>.batch_exports.<batch export UUID>``.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_provider_phenv.assets import parse_uri

    parts = parse_uri(asset.uri)
    return Dataset(
        namespace=f"posthog://{parts['host']}",
        name=f"{parts['project_id']}.batch_exports.{parts['batch_export_id']}",
    )
