"""Extra links from a task to PostHog's web app, from a URL the operator kept (docs/airflow-internals.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import BaseOperator


class _PostHogLink(BaseOperatorLink):
    url_attribute: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return getattr(operator, self.url_attribute, None) or ""


class PostHogBatchExportLink(_PostHogLink):
    """Opens the batch export the task worked on."""

    name = "PostHog batch export"
    url_attribute = "batch_export_url"


class PostHogDashboardLink(_PostHogLink):
    """Opens the dashboard the task created, reused or shared."""

    name = "PostHog dashboard"
    url_attribute = "dashboard_url"


def backfill_ui_path(batch_export_id: str) -> str:
    """Where PostHog's web app lists a batch export's backfills and runs, below ``/project/<id>/``."""
    return f"batch_exports/{batch_export_id}#backfills"


class PostHogBackfillLink(_PostHogLink):
    """Opens the batch export's backfills and runs, where the task's backfill is listed."""

    name = "PostHog backfill"
    url_attribute = "backfill_url"
