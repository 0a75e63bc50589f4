"""
Provision a PostHog dashboard and its collaborators as code.

The dashboard is created once and made to match on every later run (``if_exists="update"``); each
collaborator is added by its own mapped task, and one who already has access counts as success.
Re-running the DAG therefore changes nothing that is already in place.

The defaults match the seed data of the bundled emulator; pass your own ``collaborators`` (user
UUIDs) in the run's config to use it against PostHog.
"""

from __future__ import annotations

# [START howto_posthog_dashboard_provisioning]
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
)

with DAG(
    dag_id="posthog_dashboard_provisioning",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "dashboard_name": Param("Pipeline health", type="string"),
        "collaborators": Param(
            ["01900000-0000-7000-8000-0000000000a2", "01900000-0000-7000-8000-0000000000a3"],
            type="array",
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["posthog", "example"],
) as dag:
    dashboard = PostHogCreateDashboardOperator(
        task_id="create_dashboard",
        name="{{ params.dashboard_name }}",
        description="Provisioned by Airflow.",
        restriction_level=37,  # only collaborators can edit: needed to add collaborators
        if_exists="update",  # an existing dashboard with this name is made to match
    )

    @task
    def collaborators(params: dict | None = None) -> list[str]:
        return list(params["collaborators"]) if params else []

    added = PostHogAddDashboardCollaboratorOperator.partial(
        task_id="add_collaborator",
        dashboard_id="{{ ti.xcom_pull(task_ids='create_dashboard')['id'] }}",
    ).expand(user_uuid=collaborators())
    dashboard >> added
# [END howto_posthog_dashboard_provisioning]
