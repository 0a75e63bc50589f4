"""
What a task that waited for batch export runs tells Airflow about them once they completed: the
asset-event extra of each Asset it declares as an outlet, and (with the ``openlineage`` extra) the
datasets the OpenLineage listener reports for it.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_phenv.assets import attach_outlet_extras, batch_export_outlet_extra
from airflow_provider_phenv.lineage import PostHogLineageMixin

if TYPE_CHECKING:
    from airflow_provider_phenv.hooks.posthog import PostHogHook


@functools.cache
def openlineage_installed() -> bool:
    """Whether the OpenLineage provider is there to ask for lineage (the ``openlineage`` extra)."""
    return importlib.util.find_spec("airflow.providers.openlineage") is not None


def report_runs(
    task: Any,
    context: Mapping[str, Any],
    hook: PostHogHook,
    batch_export_id: str,
    project_id: str | None,
    runs: list[dict[str, Any]],
    *,
    backfill_id: str | None = None,
    export: Mapping[str, Any] | None = None,
) -> None:
    """
    Attach the runs to the task's outlets and record its lineage.

    :param task: the operator or sensor (lineage is recorded when it is a ``PostHogLineageMixin``).
    :param context: the task's context.
    :param hook: the task's sync hook, to read the export when lineage needs it.
    :param batch_export_id: the export's UUID.
    :param project_id: the project, or None for the connection's.
    :param runs: the completed runs (``run_summary`` of each).
    :param backfill_id: the backfill the runs belong to, if any.
    :param export: the export as GET returns it, if the task has read it already.
    """
    attach_outlet_extras(context, batch_export_outlet_extra(batch_export_id, runs, backfill_id=backfill_id))
    if isinstance(task, PostHogLineageMixin) and openlineage_installed():
        # The destination's dataset name comes from the export: one read when the task has none.
        export = export or hook.get_batch_export(batch_export_id, project_id=project_id)
        task.record_posthog_lineage(
            export,
            runs,
            host=hook.settings.base_url,
            project_id=project_id or hook.settings.project_id,
            backfill_id=backfill_id,
        )
