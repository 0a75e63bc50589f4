"""
The provider's custom OpenLineage facets; imported only when lineage is built (openlineage extra).

Like the OpenLineage provider's own Airflow facets, they keep the base facet's schema URL.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field
from openlineage.client.facet_v2 import JobFacet, RunFacet


@define
class PostHogBatchExportJobFacet(JobFacet):
    """The PostHog batch export a task acts on."""

    # Facet fields are camelCase, as OpenLineage writes them.
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
