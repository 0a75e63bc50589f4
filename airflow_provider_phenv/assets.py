"""
PostHog batch exports as Airflow assets: the ``posthog`` URI scheme, an asset with its watcher for
DAG authors, and the asset-event extras tasks attach to their outlets.

URI form: ``posthog://<host>/<project_id>/batch_exports/<batch export UUID>``, e.g.
``posthog://eu.posthog.com/12345/batch_exports/0190...``. Airflow calls :func:`sanitize_uri` for
every asset with this scheme (registered in ``get_provider_info()["asset-uris"]``), so a malformed
URI fails when the DAG is parsed, with a message saying what is expected.

This module is imported whenever Airflow checks such a URI, so it imports nothing heavy at the
top: the trigger (and its HTTP client) only when :func:`batch_export_asset` builds a watcher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from airflow_provider_phenv.validation import check_project_id, check_uuid

if TYPE_CHECKING:
    from airflow.sdk import Asset

__all__ = [
    "SCHEME",
    "attach_outlet_extras",
    "batch_export_asset",
    "batch_export_outlet_extra",
    "batch_export_uri",
    "create_asset",
    "parse_uri",
    "sanitize_uri",
]

SCHEME = "posthog"
URI_FORM = f"{SCHEME}://<host>/<project_id>/batch_exports/<batch export UUID>"
_PATH = re.compile(r"^/(?P<project_id>[^/]+)/batch_exports/(?P<batch_export_id>[^/]+)$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def _host(host: str) -> str:
    """``eu.posthog.com`` from ``https://eu.posthog.com/`` or ``eu.posthog.com``; lower case."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"Invalid host {host!r}: expected a PostHog host such as 'eu.posthog.com'.")
    text = host.strip()
    netloc = urlsplit(text).netloc if "://" in text else text.rstrip("/")
    if not _HOST.match(netloc):
        raise ValueError(f"Invalid host {host!r}: expected a PostHog host such as 'eu.posthog.com'.")
    return netloc.lower()


def batch_export_uri(batch_export_id: str, *, project_id: int | str, host: str) -> str:
    """
    The asset URI of a batch export.

    :param batch_export_id: the export's UUID.
    :param project_id: the PostHog project (environment) id.
    :param host: the PostHog host, with or without ``https://`` (``us.posthog.com``,
        ``eu.posthog.com``, a self-hosted name, ``127.0.0.1:8010`` for the emulator).
    """
    project = check_project_id(project_id)
    if project == "@current":
        raise ValueError("Invalid project_id '@current': an asset URI needs the project's numeric id.")
    return (
        f"{SCHEME}://{_host(host)}/{project}/batch_exports/{check_uuid('batch_export_id', batch_export_id)}"
    )


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Airflow's URI handler for the ``posthog`` scheme: check the form and normalise case.

    :raises ValueError: naming the expected form, for a URI without a host, with a query, or
        whose path is not ``/<project_id>/batch_exports/<UUID>``.
    """
    text = uri.geturl()
    problem = None
    match = _PATH.match(uri.path)
    if not uri.netloc:
        problem = "it has no host"
    elif uri.query:
        problem = "it has a query string"
    elif match is None:
        problem = "its path is not /<project_id>/batch_exports/<UUID>"
    else:
        try:
            normalised = batch_export_uri(
                match["batch_export_id"], project_id=match["project_id"], host=uri.netloc
            )
        except ValueError as error:
            problem = str(error)
        else:
            return urlsplit(normalised)
    raise ValueError(f"Invalid PostHog asset URI {text!r}: {problem}; expected {URI_FORM}.")


def parse_uri(uri: str) -> dict[str, str]:
    """``{"host", "project_id", "batch_export_id"}`` from a PostHog asset URI (checked)."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise ValueError(f"Invalid PostHog asset URI {uri!r}: expected {URI_FORM}.")
    parts = sanitize_uri(parts)
    match = _PATH.match(parts.path)
    assert match is not None
    return {
        "host": parts.netloc,
        "project_id": match["project_id"],
        "batch_export_id": match["batch_export_id"],
    }


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
    """
    The Asset of a PostHog batch export, updated each time one of its runs reaches ``statuses``.

    A DAG with ``schedule=[asset]`` then runs once per such run (Airflow merges events that arrive
    within one scheduler loop into one DAG run: read every ``triggering_asset_events`` entry). Each
    asset event's ``extra["payload"]`` is the run: ``batch_export_id``, ``run_id``, ``status``,
    ``data_interval_start``, ``data_interval_end``, ``records_completed``, ``latest_error``.

    :param batch_export_id: the export's UUID.
    :param project_id: the PostHog project id the export belongs to (also what the watcher reads).
    :param host: the PostHog host of the connection, for the URI (``eu.posthog.com``).
    :param statuses: run statuses that update the asset.
    :param poll_interval: seconds between polls of PostHog.
    :param posthog_conn_id: the connection the watcher uses.
    :param shared_poll: on Airflow 3.3, share one poll with sibling watchers (see the trigger).
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
    watcher = AssetWatcher(
        name=f"posthog_runs_{'_'.join(trigger.statuses).lower()}_{trigger.batch_export_id}",
        trigger=trigger,
    )
    return Asset(name=name or uri, uri=uri, group=group, extra=extra or {}, watchers=[watcher])


# -- extras for the asset events a task emits ----------------------------------------------------


def batch_export_outlet_extra(
    batch_export_id: str,
    runs: Iterable[Mapping[str, Any]],
    *,
    backfill_id: str | None = None,
) -> dict[str, Any]:
    """
    The extra of an asset event about some runs of a batch export (plain JSON values).

    ``{"batch_export_id", "backfill_id", "run_ids", "statuses", "data_interval_start",
    "data_interval_end", "records_completed"}``: the interval spans every run's interval; records
    are summed over the runs that report them (None when none does).

    :param batch_export_id: the export's UUID.
    :param runs: runs as PostHog returns them (``id``, ``status``, ``data_interval_start``/``end``,
        ``records_completed``), or as the run sensor returns them.
    :param backfill_id: the backfill the runs belong to, if any.
    """
    items = list(runs)
    starts = [run["data_interval_start"] for run in items if run.get("data_interval_start")]
    ends = [run["data_interval_end"] for run in items if run.get("data_interval_end")]
    records = [run["records_completed"] for run in items if isinstance(run.get("records_completed"), int)]
    return {
        "batch_export_id": check_uuid("batch_export_id", batch_export_id),
        "backfill_id": backfill_id,
        "run_ids": [run["id"] for run in items],
        "statuses": sorted({run["status"] for run in items if run.get("status")}),
        # ISO 8601 strings in UTC from PostHog sort in time order.
        "data_interval_start": min(starts) if starts else None,
        "data_interval_end": max(ends) if ends else None,
        "records_completed": sum(records) if records else None,
    }


def attach_outlet_extras(context: Mapping[str, Any], extra: Mapping[str, Any]) -> int:
    """
    Add ``extra`` to the asset event of each Asset the running task declares as an outlet.

    For operators and sensors to call at the end of ``execute`` (or ``execute_complete``). Asset
    aliases are left alone. Returns how many outlets got the extra (0 when the task has none).

    :param context: the task's context (``task`` and ``outlet_events`` are read).
    :param extra: e.g. :func:`batch_export_outlet_extra`.
    """
    task = context.get("task")
    outlets = getattr(task, "outlets", None) or []
    events = context.get("outlet_events")
    if events is None:
        return 0
    from airflow.sdk import Asset

    count = 0
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra.update(dict(extra))
            count += 1
    return count
