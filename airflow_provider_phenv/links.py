"""Extra links from a task to the PostHog web app.

The operator works out the URL while it runs (it knows the host, project and object id) and keeps
it on itself; Airflow 3 calls ``get_link`` in the worker when the task finishes and stores the
result in XCom, which is what the API server shows. No request to PostHog is needed for it.
"""

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
