"""
Provision a PostHog dashboard and who may edit it, as code, in PostHog's current access model.

The dashboard is created once and made to match on every later run (``if_exists="update"``).
``editors`` may edit it and everyone else in the project may only view it: the task writes only
the access rules that differ, so a re-run changes nothing that is already in place. A dashboard on
PostHog's legacy model (restriction level 37, collaborators) uses ``collaborators=[...]`` instead;
see the README for which to use when.

The defaults match the seed data of the bundled emulator; pass your own ``editors`` (user emails
or UUIDs) in the run's config to use it against PostHog. The organization needs PostHog's
access-control feature, and the key the scopes ``access_control:write``, ``organization:read``
and ``organization_member:read``: the task fails before any write without them.
"""

from __future__ import annotations

# [START howto_posthog_dashboard_provisioning]
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_phenv.operators.dashboards import PostHogCreateDashboardOperator

with DAG(
    dag_id="posthog_dashboard_provisioning",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "dashboard_name": Param("Pipeline health", type="string"),
        "editors": Param(["alice@example.com", "bob@example.com"], type="array"),
    },
    render_template_as_native_obj=True,  # editors renders as a list, not its text
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["posthog", "example"],
) as dag:
    PostHogCreateDashboardOperator(
        task_id="create_dashboard",
        name="{{ params.dashboard_name }}",
        description="Provisioned by Airflow.",
        if_exists="update",  # an existing dashboard with this name is made to match
        editors="{{ params.editors }}",  # these people edit ...
        default_access="viewer",  # ... and everyone else views
    )
# [END howto_posthog_dashboard_provisioning]
