"""The fixed seed data's ids, which tests rely on; :mod:`.seed_data` loads the records they name.

Layout:

- Organization ``SEED.organization_id`` ("Hedgebox Inc.", slug ``hedgebox``; product features
  ``access_control`` and ``role_based_access``) with project 1, whose environments are team 1
  (primary, same id as the project) and team 3. Team 2 is in another organization ("Other Org",
  ``access_control`` only).
- Users: the key owner (organization admin, so a project admin; creator of the seeded dashboards;
  current team 1), ``alice`` and ``bob`` (plain members), ``carol`` (member of the other
  organization only). Each membership has its own id (``SEED.*_membership_id``), distinct from the
  user's uuid: access-control rules name members by it (docs/posthog-api.md §7.4).
- Roles: ``SEED.role_id`` ("Engineering", bob is in it) in the main organization and
  ``SEED.other_role_id`` in the other one.
- Personal API key ``SEED.api_key`` (scopes ``["*"]``, owned by the key owner).
- Batch exports in team 1: AwsS3 (hourly), BigQuery (hourly), Postgres (hourly, every run fails),
  Snowflake (daily, paused), a Workflows export that the list hides, and the two oldest: an AwsS3
  daily export (Europe/Berlin at 02:00) and a BigQuery weekly one (Mondays at 06:00 in
  America/New_York). Each has a few past runs with their log lines; the hourly AwsS3 export also
  has ``old_run_id``, created 9 days ago: outside the 7-day window of the runs routes.
- Dashboards: three in team 1 (one restricted to collaborators, with alice as editor), one in
  team 3, and one in team 2 (another organization).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_KEY = "phx_emulator0000000000000000000000000000000000000"
# PostHog's OrganizationMembership levels (owners count as admins too).
MEMBER, ADMIN, OWNER = 1, 8, 15


@dataclass(frozen=True)
class Seed:
    """Fixed ids of the seed data (see the module docstring for how they relate)."""

    api_key: str = DEFAULT_API_KEY
    organization_id: str = "01900000-0000-7000-8000-000000000001"
    other_organization_id: str = "01900000-0000-7000-8000-000000000002"
    project_id: int = 1
    team_id: int = 1
    second_environment_id: int = 3
    other_team_id: int = 2
    owner_uuid: str = "01900000-0000-7000-8000-0000000000a1"
    alice_uuid: str = "01900000-0000-7000-8000-0000000000a2"
    bob_uuid: str = "01900000-0000-7000-8000-0000000000a3"
    carol_uuid: str = "01900000-0000-7000-8000-0000000000a4"
    owner_membership_id: str = "01900000-0000-7000-8000-0000000000b1"
    alice_membership_id: str = "01900000-0000-7000-8000-0000000000b2"
    bob_membership_id: str = "01900000-0000-7000-8000-0000000000b3"
    carol_membership_id: str = "01900000-0000-7000-8000-0000000000b4"
    role_id: str = "01900000-0000-7000-8000-0000000000c1"
    other_role_id: str = "01900000-0000-7000-8000-0000000000c2"
    s3_export_id: str = "01900000-0000-7000-8000-0000000000e1"
    bigquery_export_id: str = "01900000-0000-7000-8000-0000000000e2"
    postgres_export_id: str = "01900000-0000-7000-8000-0000000000e3"
    paused_export_id: str = "01900000-0000-7000-8000-0000000000e4"
    workflows_export_id: str = "01900000-0000-7000-8000-0000000000e5"
    daily_export_id: str = "01900000-0000-7000-8000-0000000000e6"
    weekly_export_id: str = "01900000-0000-7000-8000-0000000000e7"
    old_run_id: str = "01900000-0000-7000-8000-00000000a0d1"
    s3_integration_id: int = 101
    bigquery_integration_id: int = 102
    snowflake_integration_id: int = 103
    web_dashboard_id: int = 1
    product_dashboard_id: int = 2
    restricted_dashboard_id: int = 3
    second_environment_dashboard_id: int = 4
    other_organization_dashboard_id: int = 5


SEED = Seed()
