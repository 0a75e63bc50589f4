"""Destination tests (``batch_exports/test`` and ``run_test_step``), simulated deterministically.

A step passes unless the config value it checks contains the word ``missing`` (case-insensitive),
e.g. ``bucket_name="my-missing-bucket"`` fails "Check S3 bucket exists" with PostHog's own message.
Steps PostHog skips for integration-backed credentials (BigQuery impersonation) report ``Skipped``,
and so does AwsS3's "assume role" step when the export's integration has no role ARN (§6.6; that
message is not confirmed from PostHog's source).
Step names and messages are PostHog's own for S3, BigQuery and Snowflake; the Databricks and Azure
Blob ones follow the same pattern (only "Verify Databricks catalog" was confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..web.errors import server_error

FAILING_MARKER = "missing"
NOT_CONFIGURED = "The test step cannot run as it's not configured."
NO_ROLE = "No AWS role ARN provided, skipping test"


@dataclass(frozen=True)
class DestinationTestStep:
    """One destination test step.

    :param name: PostHog's step name.
    :param description: PostHog's step description.
    :param checks: the config key whose value decides the outcome; None means always passes.
    :param failure: the failure message; ``{value}`` is the checked value.
    :param skipped: when set, the step always reports ``Skipped`` with this message.
    :param needs_role: the step reports ``Skipped`` (:data:`NO_ROLE`) without a role ARN.
    """

    name: str
    description: str
    checks: str | None = None
    failure: str = ""
    skipped: str | None = None
    needs_role: bool = False


_BUCKET_STEP = DestinationTestStep(
    "Check S3 bucket exists",
    "Ensure the configured S3 bucket exists and that we have the required permissions to access it.",
    checks="bucket_name",
    failure="Bucket '{value}' does not exist or we don't have permissions to use it",
)


def _snowflake_step(thing: str) -> DestinationTestStep:
    return DestinationTestStep(
        f"Verify Snowflake {thing}",
        f"Verify the configured Snowflake {thing} exists and we have the necessary permissions to use it.",
        checks=thing,
        failure=f"The configured {thing} '{{value}}' does not exist or we are missing 'USAGE' permissions "
        "on it.",
    )


def _bigquery_step(thing: str, key: str) -> DestinationTestStep:
    return DestinationTestStep(
        f"Verify BigQuery {thing}",
        f"Ensure the configured BigQuery {thing} exists and that we have the required permissions to "
        "access it.",
        checks=key,
        failure=f"{thing.capitalize()} '{{value}}' could not be found because it doesn't exist or we "
        "don't have permissions to use it",
    )


def _databricks_step(thing: str) -> DestinationTestStep:
    # Only "Verify Databricks catalog" was confirmed in PostHog's source; the others follow its pattern.
    return DestinationTestStep(
        f"Verify Databricks {thing}",
        f"Verify the configured Databricks {thing} exists and we have the necessary permissions to use it.",
        checks=thing,
        failure=f"The configured {thing} '{{value}}' does not exist or we are missing permissions on it.",
    )


# The steps of each destination type that has a test (the others answer 404 to ``test``).
TEST_STEPS: dict[str, tuple[DestinationTestStep, ...]] = {
    "AwsS3": (
        DestinationTestStep(
            "Ensure we can assume provided AWS role",
            "Ensure the configured AWS role ARN exists and that we have the required trust relationship "
            "to assume it.",
            needs_role=True,
        ),
        _BUCKET_STEP,
    ),
    "S3Compatible": (_BUCKET_STEP,),
    "Snowflake": (
        DestinationTestStep(
            "Establish connection to Snowflake",
            "Attempt to establish a Snowflake connection with the provided configuration values.",
        ),
        _snowflake_step("warehouse"),
        _snowflake_step("database"),
        _snowflake_step("schema"),
    ),
    "BigQuery": (
        DestinationTestStep(
            "Impersonate BigQuery service account",
            "Confirm we can impersonate a BigQuery service account.",
            skipped="Using credentials without impersonation, skipping test",
        ),
        DestinationTestStep(
            "Verify BigQuery service account ownership",
            "Confirm that the current PostHog organization owns a BigQuery service account by ensuring its "
            "organization ID is set as part of the service account description.",
            skipped="Using credentials without impersonation, ownership is assumed",
        ),
        _bigquery_step("project", "project_id"),
        _bigquery_step("dataset", "dataset_id"),
        DestinationTestStep(
            "Verify BigQuery table",
            "Ensure the configured BigQuery table already exists or that we have the required permissions "
            "to create it. Additionally, when creating a table, we will attempt to delete it.",
        ),
    ),
    "Databricks": (_databricks_step("catalog"), _databricks_step("schema")),
    "AzureBlob": (
        DestinationTestStep(
            "Verify Azure Blob Storage container",
            "Ensure the configured container exists and that we have the required permissions to access it.",
            checks="container_name",
            failure="Container '{value}' does not exist or we don't have permissions to use it",
        ),
    ),
}


def describe_test_steps(kind: str) -> list[dict[str, Any]]:
    """The ``steps`` of ``batch_exports/test`` for a type (empty when the type has no test)."""
    steps = TEST_STEPS.get(kind, ())
    return [{"name": step.name, "description": step.description, "result": None} for step in steps]


def run_test_step(destination: dict[str, Any], step: int, role_arn: str | None = None) -> dict[str, Any]:
    """Run one simulated test step against a validated destination.

    :param destination: the stored form returned by ``destinations.validate_destination``.
    :param step: the step index.
    :param role_arn: the AWS role ARN of the destination's integration, if any.
    :raises ApiError: 500 when the type has no test or the step does not exist (PostHog raises
        ValueError / IndexError there, which surface as unhandled 500s).
    """
    steps = TEST_STEPS.get(destination["type"], ())
    if not 0 <= step < len(steps):
        raise server_error()
    test = steps[step]
    value = destination["config"].get(test.checks) if test.checks else None
    result: dict[str, str | None]
    if test.skipped is not None:
        result = {"status": "Skipped", "message": test.skipped}
    elif test.needs_role and not role_arn:
        result = {"status": "Skipped", "message": NO_ROLE}
    elif test.checks and value in (None, ""):
        result = {"status": "Failed", "message": NOT_CONFIGURED}
    elif test.checks and FAILING_MARKER in str(value).lower():
        result = {"status": "Failed", "message": test.failure.format(value=value)}
    else:
        result = {"status": "Passed", "message": None}
    return {"name": test.name, "description": test.description, "result": result}
