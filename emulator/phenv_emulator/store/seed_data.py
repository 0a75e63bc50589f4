"""The records :meth:`.state.EmulatorState.reset` loads: what :mod:`.seed` describes, with its ids."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from ..batch_exports.backfills import INTERVALS, align_to_interval
from ..batch_exports.runs import RunOutcome
from .records import ACCESS_CONTROL, ROLE_BASED_ACCESS, Records, user_record
from .seed import ADMIN, MEMBER, SEED

_RUN_NAMESPACE = uuid.UUID(SEED.organization_id)


def populate(state: Records, now: datetime) -> None:
    """Load the seed records into an empty ``state``.

    :param state: the store to fill.
    :param now: the reset moment; seeded history is laid out in the hours before it.
    """
    # The last whole hour that ended at least an hour ago: seeded runs start a minute after their
    # interval ends, so anchoring on the current hour would put them (and their log lines) in the
    # future during the first minute of every hour.
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    created = hour - timedelta(days=60)
    for organization_id, name, slug, features in (
        (SEED.organization_id, "Hedgebox Inc.", "hedgebox", [ACCESS_CONTROL, ROLE_BASED_ACCESS]),
        (SEED.other_organization_id, "Other Org", "other-org", [ACCESS_CONTROL]),
    ):
        state.add_organization(name, slug=slug, features=features, organization_id=organization_id)
        state.organizations[organization_id]["created_at"] = created
    for team_id, project_id, organization_id, name in (
        (SEED.team_id, SEED.project_id, SEED.organization_id, "Hedgebox (production)"),
        (SEED.second_environment_id, SEED.project_id, SEED.organization_id, "Hedgebox (staging)"),
        (SEED.other_team_id, SEED.other_team_id, SEED.other_organization_id, "Other project"),
    ):
        state.teams[team_id] = {
            "id": team_id,
            "project_id": project_id,
            "organization_id": organization_id,
            "name": name,
            "flags": set(),
        }
    users = (
        (SEED.owner_uuid, SEED.owner_membership_id, "Hedgy", SEED.organization_id, ADMIN, SEED.team_id),
        (SEED.alice_uuid, SEED.alice_membership_id, "Alice", SEED.organization_id, MEMBER, SEED.team_id),
        (SEED.bob_uuid, SEED.bob_membership_id, "Bob", SEED.organization_id, MEMBER, SEED.team_id),
        (
            SEED.carol_uuid,
            SEED.carol_membership_id,
            "Carol",
            SEED.other_organization_id,
            MEMBER,
            SEED.other_team_id,
        ),
    )
    for number, (user_uuid, membership_id, first_name, organization_id, level, current_team_id) in enumerate(
        users, start=1
    ):
        email = f"{first_name.lower()}@example.com"
        state.users[user_uuid] = user_record(number, user_uuid, first_name, email, current_team_id)
        membership = state.add_membership(organization_id, user_uuid, level, membership_id=membership_id)
        # Joined in seed order, so the members list (newest first) is stable.
        membership["joined_at"] = membership["updated_at"] = created + timedelta(hours=number)
    state.roles[SEED.role_id] = {
        "id": SEED.role_id,
        "name": "Engineering",
        "organization_id": SEED.organization_id,
        "members": {SEED.bob_uuid},
    }
    state.roles[SEED.other_role_id] = {
        "id": SEED.other_role_id,
        "name": "Other Org admins",
        "organization_id": SEED.other_organization_id,
        "members": {SEED.carol_uuid},
    }
    state.add_api_key(["*"], SEED.owner_uuid, label="Emulator (all access)", key=state.default_api_key)
    for integration_id, kind in (
        (SEED.s3_integration_id, "aws-s3"),
        (SEED.bigquery_integration_id, "google-cloud-service-account"),
        (SEED.snowflake_integration_id, "snowflake"),
    ):
        state.integrations[integration_id] = {"id": integration_id, "kind": kind, "team_id": SEED.team_id}
    _seed_batch_exports(state, hour)
    _seed_dashboards(state, hour)


def _seed_batch_exports(state: Records, hour: datetime) -> None:
    # Two hours ago, but never before today's midnight (UTC; ``hour`` is an hour back, so yesterday's
    # in the first hour of a day): the daily export's pause stays within one interval at any time.
    paused_at = max(hour - timedelta(hours=2), (hour + timedelta(hours=1)).replace(hour=0))
    created = hour - timedelta(days=30)
    # Each export's id, creation (hours after ``created``), name, destination and other fields.
    exports: tuple[tuple[str, int, str, dict[str, Any], dict[str, Any]], ...] = (
        (SEED.s3_export_id, 0, "S3 events export", _s3("hedgebox-events", "us-east-1", "posthog/events"), {}),
        (SEED.bigquery_export_id, 1, "BigQuery events export", _bigquery("posthog"), {}),
        (
            SEED.postgres_export_id,
            2,
            "Postgres warehouse export",
            {
                "type": "Postgres",
                "config": {
                    "host": "db.internal.example",
                    "port": 5432,
                    "database": "analytics",
                    "schema": "public",
                    "table_name": "posthog_events",
                    "user": "posthog",
                    "password": "emulator-secret",
                },
            },
            {},
        ),
        (
            SEED.paused_export_id,
            3,
            "Snowflake nightly export (paused)",
            {
                "type": "Snowflake",
                "config": {"database": "ANALYTICS", "warehouse": "COMPUTE_WH", "schema": "POSTHOG"},
                "integration": SEED.snowflake_integration_id,
            },
            {"interval": "day", "paused": True, "last_paused_at": paused_at, "last_updated_at": paused_at},
        ),
        (
            SEED.workflows_export_id,
            4,
            "Workflows backfill",
            {"type": "Workflows", "config": {"hog_function_id": "01900000-0000-7000-8000-0000000000f1"}},
            {},
        ),
        (
            SEED.daily_export_id,
            -2,
            "S3 daily export (Berlin)",
            _s3("hedgebox-daily", "eu-central-1", "posthog/daily"),
            {"interval": "day", "timezone": "Europe/Berlin", "offset_hour": 2},
        ),
        (
            SEED.weekly_export_id,
            -1,
            "BigQuery weekly export (New York)",
            _bigquery("weekly"),
            {"interval": "week", "timezone": "America/New_York", "offset_day": 1, "offset_hour": 6},
        ),
    )
    for export_id, hours, name, destination, fields in exports:
        state.add_batch_export(
            name, destination, export_id=export_id, created_at=created + timedelta(hours=hours), **fields
        )
    state.run_outcomes[SEED.postgres_export_id] = RunOutcome(outcome="failed")
    # A few past runs (and their log lines) per export, so logs and runs are never empty.
    history = {
        SEED.s3_export_id: _intervals_before(hour, timedelta(hours=1), 3),
        SEED.bigquery_export_id: _intervals_before(hour, timedelta(hours=1), 2),
        SEED.postgres_export_id: _intervals_before(hour, timedelta(hours=1), 2),
        SEED.paused_export_id: _intervals_before(hour - timedelta(days=1), timedelta(days=1), 1),
    }
    for export_id in (SEED.daily_export_id, SEED.weekly_export_id):
        # The last whole interval of the export's own schedule (timezone, offsets).
        export = state.batch_exports[export_id]
        end = align_to_interval(hour, export)
        history[export_id] = [(end - INTERVALS[export["interval"]], end)]
    for export_id, intervals in history.items():
        for number, (start, end) in enumerate(intervals):
            state.start_run(
                export_id,
                start,
                end,
                created_at=end + timedelta(minutes=1),
                run_id=str(uuid.uuid5(_RUN_NAMESPACE, f"{export_id}/{number}")),
            )
    # Older than the 7 days the runs routes look back by default.
    old_end = hour - timedelta(days=9)
    state.start_run(
        SEED.s3_export_id,
        old_end - timedelta(hours=1),
        old_end,
        created_at=old_end + timedelta(minutes=1),
        run_id=SEED.old_run_id,
    )


def _s3(bucket_name: str, region: str, prefix: str) -> dict[str, Any]:
    return {
        "type": "AwsS3",
        "config": {
            "bucket_name": bucket_name,
            "region": region,
            "prefix": prefix,
            "compression": "gzip",
            "file_format": "JSONLines",
        },
        "integration": SEED.s3_integration_id,
    }


def _bigquery(dataset_id: str) -> dict[str, Any]:
    return {
        "type": "BigQuery",
        "config": {"project_id": "hedgebox-analytics", "dataset_id": dataset_id, "table_id": "events"},
        "integration": SEED.bigquery_integration_id,
    }


def _intervals_before(end: datetime, length: timedelta, count: int) -> list[tuple[datetime, datetime]]:
    """``count`` consecutive data intervals ending at ``end``, oldest first."""
    return [(end - length * (k + 1), end - length * k) for k in reversed(range(count))]


def _seed_dashboards(state: Records, hour: datetime) -> None:
    created = hour - timedelta(days=10)
    for dashboard_id, team_id, name, pinned, restriction_level, insights in (
        (SEED.web_dashboard_id, SEED.team_id, "Web analytics", True, 21, ["Pageviews", "Visitors"]),
        (SEED.product_dashboard_id, SEED.team_id, "Product metrics", False, 21, ["Weekly active users"]),
        (SEED.restricted_dashboard_id, SEED.team_id, "Board metrics", False, 37, ["Revenue"]),
        (SEED.second_environment_dashboard_id, SEED.second_environment_id, "Staging checks", False, 21, []),
        (SEED.other_organization_dashboard_id, SEED.other_team_id, "Other org dashboard", False, 21, []),
    ):
        dashboard = state.add_dashboard(
            name,
            team_id=team_id,
            pinned=pinned,
            restriction_level=restriction_level,
            created_by=SEED.carol_uuid if team_id == SEED.other_team_id else SEED.owner_uuid,
            tiles=state.new_tiles(insights),
        )
        # Ids are handed out in order from 1 after a reset, so they match the SEED constants.
        assert dashboard["id"] == dashboard_id
        dashboard["created_at"] = created + timedelta(hours=dashboard_id)
    state.add_collaborator(SEED.restricted_dashboard_id, SEED.alice_uuid)
