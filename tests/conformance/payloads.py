"""Bodies and records the conformance cases share: PostHog's test fixtures, restated as data.

PostHog's API tests build their objects with factories (``create_team``, ``Integration.objects
.create``); here the same objects go into the emulator's store, and everything else goes through HTTP.
"""

from __future__ import annotations

import copy
from typing import Any

from phenv_emulator import SEED, PostHogEmulator

#: ``products/batch_exports/backend/tests/api`` uses this bucket in most of its S3 cases.
S3_CONFIG: dict[str, Any] = {
    "bucket_name": "my-production-s3-bucket",
    "region": "us-east-1",
    "prefix": "posthog-events/",
}
DATABRICKS_CONFIG: dict[str, Any] = {
    "http_path": "my-http-path",
    "catalog": "my-catalog",
    "schema": "my-schema",
    "table_name": "my-table-name",
}


def aws_s3(**config: Any) -> dict[str, Any]:
    """An AwsS3 destination on the seeded aws-s3 integration (new AwsS3 exports need one)."""
    return {"type": "AwsS3", "config": {**S3_CONFIG, **config}, "integration": SEED.s3_integration_id}


def export_body(destination: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A create body: PostHog's ``my-production-s3-bucket-destination`` export, hourly by default."""
    body: dict[str, Any] = {
        "name": "my-production-s3-bucket-destination",
        "destination": copy.deepcopy(destination or aws_s3()),
        "interval": "hour",
    }
    body.update(fields)
    return body


def add_integration(emulator: PostHogEmulator, kind: str, team_id: int = SEED.team_id) -> int:
    """Store an integration (``aws-s3``, ``s3-compatible``, ``databricks``, ...) and return its id."""
    state = emulator.state
    with state.lock:
        integration_id = max(state.integrations, default=100) + 1
        state.integrations[integration_id] = {"id": integration_id, "kind": kind, "team_id": team_id}
    return integration_id


def add_team(emulator: PostHogEmulator, team_id: int, project_id: int) -> int:
    """Store a team of the seeded organization in a project of its own (PostHog's ``create_team``)."""
    state = emulator.state
    with state.lock:
        state.teams[team_id] = {
            "id": team_id,
            "project_id": project_id,
            "organization_id": SEED.organization_id,
            "name": f"Team {team_id}",
            "flags": set(),
        }
    return team_id
