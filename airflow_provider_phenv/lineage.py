"""Assets, asset watchers and OpenLineage for PostHog batch exports (docs/airflow-internals.md)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

# Airflow imports this module to check every posthog:// URI: nothing heavy is imported at the top.
from airflow_provider_phenv.validation import check_project_id, check_uuid

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Asset

SCHEME = "posthog"
URI_FORM = f"{SCHEME}://<host>/<project_id>/batch_exports/<batch export UUID>"
_PATH = re.compile(r"^/(?P<project_id>[^/]+)/batch_exports/(?P<batch_export_id>[^/]+)$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def _netloc(host: str) -> str:
    """``eu.posthog.com`` from ``https://eu.posthog.com/`` or ``eu.posthog.com``; lower case."""
    text = host.strip()
    return (urlsplit(text).netloc if "://" in text else text.rstrip("/")).lower()


def batch_export_uri(batch_export_id: str, *, project_id: int | str, host: str) -> str:
    """The asset URI of a batch export.

    :param batch_export_id: the export's UUID.
    :param project_id: the PostHog project (environment) id.
    :param host: the PostHog host, with or without ``https://`` (``eu.posthog.com``, ``127.0.0.1:8010``).
    """
    project = check_project_id(project_id)
    if project == "@current":
        raise ValueError("Invalid project_id '@current': an asset URI needs the project's numeric id.")
    authority = _netloc(host) if isinstance(host, str) else ""
    if not _HOST.match(authority):
        raise ValueError(f"Invalid host {host!r}: expected a PostHog host such as 'eu.posthog.com'.")
    return f"{SCHEME}://{authority}/{project}/batch_exports/{check_uuid('batch_export_id', batch_export_id)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler for the ``posthog`` scheme: check the form and normalise case."""
    match = _PATH.match(uri.path)
    if uri.scheme != SCHEME:
        problem = f"its scheme is not {SCHEME}"
    elif not uri.netloc:
        problem = "it has no host"
    elif uri.query:
        problem = "it has a query string"
    elif match is None:
        problem = "its path is not /<project_id>/batch_exports/<UUID>"
    else:
        try:
            return urlsplit(
                batch_export_uri(match["batch_export_id"], project_id=match["project_id"], host=uri.netloc)
            )
        except ValueError as error:
            problem = str(error)
    raise ValueError(f"Invalid PostHog asset URI {uri.geturl()!r}: {problem}; expected {URI_FORM}.")


def parse_uri(uri: str) -> dict[str, str]:
    """``{"host", "project_id", "batch_export_id"}`` from a PostHog asset URI (checked)."""
    parts = sanitize_uri(urlsplit(uri))
    match = _PATH.match(parts.path)
    assert match is not None
    return {"host": parts.netloc, **match.groupdict()}


def create_asset(*, batch_export_id: str, project_id: int | str, host: str, **kwargs: Any) -> Asset:
    """Airflow's asset factory for the ``posthog`` scheme: an Asset without a watcher."""
    from airflow.sdk import Asset

    return Asset(uri=batch_export_uri(batch_export_id, project_id=project_id, host=host), **kwargs)


def batch_export_asset(
    batch_export_id: str,
    *,
    project_id: int | str,
    host: str,
    statuses: str | Sequence[str] = ("Completed",),
    poll_interval: float = 60,
    posthog_conn_id: str = "posthog_default",
    shared_poll: bool = True,
    name: str | None = None,
    group: str = "posthog",
    extra: dict[str, Any] | None = None,
) -> Asset:
    """The Asset of a PostHog batch export, updated each time one of its runs reaches ``statuses``.

    Each asset event's ``extra["payload"]`` is the run, as the run event trigger fires it.

    :param batch_export_id: the export's UUID.
    :param project_id: the PostHog project id the export belongs to (also what the watcher reads).
    :param host: the PostHog host of the connection, for the URI (``eu.posthog.com``).
    :param statuses: run statuses that update the asset.
    :param poll_interval: seconds between polls of PostHog.
    :param posthog_conn_id: the connection the watcher uses.
    :param shared_poll: share one read of the project's exports list with the triggerer's other waits.
    :param name: the asset name; default: its URI.
    :param group: the asset group.
    :param extra: the asset's own extra.
    """
    from airflow.sdk import Asset, AssetWatcher

    from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunEventTrigger

    uri = batch_export_uri(batch_export_id, project_id=project_id, host=host)
    trigger = PostHogBatchExportRunEventTrigger(
        batch_export_id,
        statuses=statuses,
        poll_interval=poll_interval,
        posthog_conn_id=posthog_conn_id,
        project_id=project_id,
        shared_poll=shared_poll,
    )
    watcher_name = f"posthog_runs_{'_'.join(trigger.statuses).lower()}_{trigger.batch_export_id}"
    watcher = AssetWatcher(name=watcher_name, trigger=trigger)
    return Asset(name=name or uri, uri=uri, group=group, extra=extra or {}, watchers=[watcher])


def batch_export_outlet_extra(
    batch_export_id: str, runs: Iterable[Mapping[str, Any]], *, backfill_id: str | None = None
) -> dict[str, Any]:
    """The extra of an asset event about some runs of a batch export: their ids, statuses, span, records.

    :param batch_export_id: the export's UUID.
    :param runs: runs as PostHog or the run sensor returns them.
    :param backfill_id: the backfill the runs belong to, if any.
    """
    items = list(runs)
    starts = [run["data_interval_start"] for run in items if run.get("data_interval_start")]
    ends = [run["data_interval_end"] for run in items if run.get("data_interval_end")]
    return {
        "batch_export_id": check_uuid("batch_export_id", batch_export_id),
        "backfill_id": backfill_id,
        "run_ids": [run["id"] for run in items],
        "statuses": sorted({run["status"] for run in items if run.get("status")}),
        # ISO 8601 strings in UTC from PostHog sort in time order.
        "data_interval_start": min(starts) if starts else None,
        "data_interval_end": max(ends) if ends else None,
        "records_completed": _total(items, "records_completed"),
    }


def attach_outlet_extras(context: Mapping[str, Any], extra: Mapping[str, Any]) -> int:
    """Add ``extra`` to the asset event of each Asset (not alias) the running task has as an outlet.

    :param context: the task's context (``task`` and ``outlet_events`` are read).
    :param extra: e.g. :func:`batch_export_outlet_extra`.
    :return: how many outlets got the extra.
    """
    events = context.get("outlet_events")
    if events is None:
        return 0
    from airflow.sdk import Asset

    outlets = getattr(context.get("task"), "outlets", None) or []
    assets = [outlet for outlet in outlets if isinstance(outlet, Asset)]
    for asset in assets:
        events[asset].extra.update(dict(extra))
    return len(assets)


log = logging.getLogger(__name__)

#: Destination types that write no dataset OpenLineage can name.
NO_DATASET = frozenset({"HTTP", "Workflows", "NoOp", "FileDownload"})
_REDSHIFT_HOST = re.compile(
    r"^(?P<cluster>[^.]+)\.[^.]+\.(?P<region>[a-z0-9-]+)\.redshift(-serverless)?\.amazonaws\.com$"
)


class MissingLineageDetail(ValueError):
    """The export's GET lacks a detail its destination's dataset name needs."""


#: Destination details PostHog keeps in the export's integration, which GET does not return.
_INTEGRATION_KEYS = frozenset({"project_id", "account", "server_hostname", "storage_account"})


def _path(prefix: Any) -> str:
    return str(prefix or "").strip("/") or "/"


def destination_dataset_name(
    destination: Mapping[str, Any], integration_config: Mapping[str, Any] | None = None
) -> tuple[str, str] | None:
    """``(namespace, name)`` of the dataset a destination writes, or None when it writes none.

    :param destination: ``{"type", "config"}`` as GET returns it.
    :param integration_config: details PostHog keeps in the export's integration, which GET does not return.
    :raises MissingLineageDetail: when a detail the name needs is in neither.
    """
    kind = str(destination.get("type"))
    config = {**(destination.get("config") or {}), **(integration_config or {})}

    def need(key: str) -> str:
        if config.get(key) in (None, ""):
            where = f"; pass integration_config={{{key!r}: ...}}" if key in _INTEGRATION_KEYS else ""
            raise MissingLineageDetail(f"{kind} destination without {key!r}{where}")
        return str(config[key])

    if kind in NO_DATASET:
        return None
    table_name = config.get("table_name") or "events"
    if kind in ("S3", "AwsS3", "S3Compatible"):
        return f"s3://{need('bucket_name')}", _path(config.get("prefix"))
    if kind == "BigQuery":
        return "bigquery", f"{need('project_id')}.{need('dataset_id')}.{config.get('table_id') or 'events'}"
    if kind == "Snowflake":
        return f"snowflake://{need('account').lower()}", f"{need('database')}.{need('schema')}.{table_name}"
    if kind in ("Postgres", "Redshift"):
        host = need("host").lower()
        table = f"{need('database')}.{config.get('schema') or 'public'}.{table_name}"
        match = _REDSHIFT_HOST.match(host) if kind == "Redshift" else None
        authority = f"{match['cluster']}.{match['region']}" if match else host
        port = config.get("port") or (5432 if kind == "Postgres" else 5439)
        return f"{kind.lower()}://{authority}:{port}", table
    if kind == "Databricks":
        workspace = _netloc(need("server_hostname"))
        return f"databricks://{workspace}", ".".join(need(key) for key in ("catalog", "schema", "table_name"))
    if kind == "AzureBlob":
        account, container = need("storage_account"), need("container_name")
        return f"wasbs://{container}@{account}.dfs.core.windows.net", _path(config.get("prefix"))
    raise MissingLineageDetail(f"unknown destination type {kind!r}")


def _total(runs: list[Mapping[str, Any]], key: str) -> int | None:
    values = [run[key] for run in runs if type(run.get(key)) is int]  # not a bool
    return sum(values) if values else None


@functools.cache
def _facets() -> tuple[type[Any], type[Any]]:
    # Defined on first use: they need the openlineage extra. Fields are camelCase, as OpenLineage's.
    from attrs import define, field
    from openlineage.client.facet_v2 import JobFacet, RunFacet

    @define
    class PostHogBatchExportJobFacet(JobFacet):
        """The PostHog batch export a task acts on."""

        batchExportId: str
        name: str | None = None
        model: str | None = None
        destinationType: str | None = None
        interval: str | None = None
        projectId: str | None = None

    @define
    class PostHogBatchExportRunsRunFacet(RunFacet):
        """The batch export runs (and backfill) a task started or waited for."""

        backfillId: str | None = None
        runs: list[dict[str, Any]] = field(factory=list)
        recordsCompleted: int | None = None

    for facet in (PostHogBatchExportJobFacet, PostHogBatchExportRunsRunFacet):
        facet.__qualname__ = facet.__name__
    return PostHogBatchExportJobFacet, PostHogBatchExportRunsRunFacet


def batch_export_lineage(
    export: Mapping[str, Any],
    runs: Iterable[Mapping[str, Any]] = (),
    *,
    host: str,
    project_id: int | str | None = None,
    backfill_id: str | None = None,
    integration_config: Mapping[str, Any] | None = None,
) -> OperatorLineage:
    """The OpenLineage of a batch export's runs (needs the ``openlineage`` extra).

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

    from airflow_provider_phenv.waits import run_summary

    job_facet, runs_facet = _facets()
    items = list(runs)
    project = project_id if project_id not in (None, "") else export.get("team_id")
    model = export.get("model") or "events"
    destination = export.get("destination") or {}
    records = _total(items, "records_completed")
    try:
        target = destination_dataset_name(destination, integration_config)
    except MissingLineageDetail as error:
        log.warning("OpenLineage: no output dataset for batch export %s: %s.", export.get("id"), error)
        target = None
    statistics = OutputStatisticsOutputDatasetFacet(rowCount=records, size=_total(items, "bytes_exported"))
    outputs = [OutputDataset(*target, outputFacets={"outputStatistics": statistics})] if target else []
    return OperatorLineage(
        inputs=[InputDataset(f"posthog://{_netloc(host)}", f"{project}.{model}")],  # the data it reads
        outputs=outputs,
        job_facets={
            "posthogBatchExport": job_facet(
                batchExportId=str(export.get("id")),
                name=export.get("name"),
                model=model,
                destinationType=destination.get("type"),
                interval=export.get("interval"),
                projectId=str(project),
            )
        },
        run_facets={
            "posthogBatchExportRuns": runs_facet(
                backfillId=backfill_id, runs=[run_summary(run) for run in items], recordsCompleted=records
            )
        },
    )


class PostHogLineageMixin:
    """Gives an operator ``get_openlineage_facets_on_complete``, from what it recorded while running.

    ``execute`` calls :meth:`record_posthog_lineage` (plain values only); an operator may set
    ``lineage_integration_config`` (see :func:`destination_dataset_name`).
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
        """Keep what :meth:`get_openlineage_facets_on_complete` needs."""
        self._posthog_lineage = {
            "export": dict(export),
            "runs": [dict(run) for run in runs],
            "host": host,
            "project_id": project_id,
            "backfill_id": backfill_id,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        if not self._posthog_lineage:
            return None
        integration_config = getattr(self, "lineage_integration_config", None)
        return batch_export_lineage(**self._posthog_lineage, integration_config=integration_config)


def asset_to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """Airflow's OpenLineage converter for ``posthog://`` assets: the batch export as a dataset."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = parse_uri(asset.uri)
    return Dataset(
        namespace=f"posthog://{parts['host']}",
        name=f"{parts['project_id']}.batch_exports.{parts['batch_export_id']}",
    )
