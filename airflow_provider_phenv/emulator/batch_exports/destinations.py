"""Batch export destinations: config schemas, validation, secret stripping and destination tests.

Schemas follow the newest ``service.py`` dataclasses (docs/posthog-api.md §5, §12.1): S3-family,
BigQuery, Snowflake and Databricks exports need an ``integration`` and reject inline credentials.

Destination tests are simulated deterministically. A step passes unless the config value it
checks contains the word ``missing`` (case-insensitive), e.g. ``bucket_name="my-missing-bucket"``
fails "Check S3 bucket exists" with PostHog's own message. Steps PostHog skips for
integration-backed credentials (BigQuery impersonation) report ``Skipped``. Step names and
messages are PostHog's own for S3, BigQuery and Snowflake; the Databricks and Azure Blob ones
follow the same pattern (only "Verify Databricks catalog" was confirmed).

Integration-backed types keep their credentials in the integration, and inline keys are rejected
as unknown config fields, so only Postgres, Redshift and HTTP have secret config keys to strip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..web.errors import ApiError, permission_denied, server_error, validation_error

FAILING_MARKER = "missing"
NOT_CONFIGURED = "The test step cannot run as it's not configured."


@dataclass(frozen=True)
class DestinationTestStep:
    """One destination test step.

    :param name: PostHog's step name.
    :param description: PostHog's step description.
    :param checks: the config key whose value decides the outcome; None means always passes.
    :param failure: the failure message; ``{value}`` is the checked value.
    :param skipped: when set, the step always reports ``Skipped`` with this message.
    """

    name: str
    description: str
    checks: str | None = None
    failure: str = ""
    skipped: str | None = None


@dataclass(frozen=True)
class Destination:
    """What the emulator knows about one destination type.

    :param fields: every accepted config key and its JSON type.
    :param required: config keys that must be present on create.
    :param secrets: config keys never returned in responses.
    :param needs_integration: whether ``integration``/``integration_id`` is required.
    :param log_name: the name PostHog's run logs use ("Batch exporting range ... to <log_name>: ...").
    :param log_target: builds the "<where>" part of that log line from the config and the run's
        ``"<start>-<end>"`` interval text.
    :param test_steps: the steps of ``batch_exports/test``; empty when the type has no test.
    """

    fields: dict[str, type]
    required: tuple[str, ...]
    log_name: str
    log_target: Callable[[dict[str, Any], str], str]
    secrets: frozenset[str] = frozenset()
    needs_integration: bool = False
    test_steps: tuple[DestinationTestStep, ...] = field(default=())


def _dotted(*keys_with_defaults: tuple[str, str]) -> Callable[[dict[str, Any], str], str]:
    """A log target like ``database.schema.table`` read from the config, with defaults."""
    return lambda config, _interval: ".".join(
        str(config.get(key) or default) for key, default in keys_with_defaults
    )


def _s3_key(config: dict[str, Any], interval: str) -> str:
    """The object key PostHog logs: ``<prefix>/<start>-<end>.<extension>``."""
    prefix = str(config.get("prefix") or "").strip("/")
    extension = "parquet" if config.get("file_format") == "Parquet" else "jsonl"
    if config.get("compression") == "gzip":
        extension += ".gz"
    return f"{prefix}/{interval}.{extension}" if prefix else f"{interval}.{extension}"


_BUCKET_STEP = DestinationTestStep(
    "Check S3 bucket exists",
    "Ensure the configured S3 bucket exists and that we have the required permissions to access it.",
    checks="bucket_name",
    failure="Bucket '{value}' does not exist or we don't have permissions to use it",
)
_S3_FIELDS: dict[str, type] = {
    "bucket_name": str,
    "region": str,
    "prefix": str,
    "compression": str,
    "file_format": str,
    "max_file_size_mb": int,
    "legacy_parquet_extension": bool,
}


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


DESTINATIONS: dict[str, Destination] = {
    "AwsS3": Destination(
        fields={**_S3_FIELDS, "encryption": str, "kms_key_id": str},
        required=("bucket_name", "region", "prefix"),
        log_name="S3",
        log_target=_s3_key,
        needs_integration=True,
        test_steps=(
            DestinationTestStep(
                "Ensure we can assume provided AWS role",
                "Ensure the configured AWS role ARN exists and that we have the required trust relationship "
                "to assume it.",
            ),
            _BUCKET_STEP,
        ),
    ),
    "S3Compatible": Destination(
        fields={**_S3_FIELDS, "endpoint_url": str, "use_virtual_style_addressing": bool},
        required=("bucket_name", "region", "prefix"),
        log_name="S3",
        log_target=_s3_key,
        needs_integration=True,
        test_steps=(_BUCKET_STEP,),
    ),
    "Snowflake": Destination(
        fields={"database": str, "warehouse": str, "schema": str, "table_name": str, "role": str},
        required=("database", "warehouse", "schema"),
        log_name="Snowflake",
        log_target=_dotted(("database", ""), ("schema", ""), ("table_name", "events")),
        needs_integration=True,
        test_steps=(
            DestinationTestStep(
                "Establish connection to Snowflake",
                "Attempt to establish a Snowflake connection with the provided configuration values.",
            ),
            _snowflake_step("warehouse"),
            _snowflake_step("database"),
            _snowflake_step("schema"),
        ),
    ),
    "Postgres": Destination(
        fields={
            "database": str,
            "schema": str,
            "table_name": str,
            "user": str,
            "host": str,
            "port": int,
            "password": str,
            "has_self_signed_cert": bool,
        },
        required=("database",),
        log_name="PostgreSQL",
        log_target=_dotted(("database", ""), ("schema", "public"), ("table_name", "events")),
        secrets=frozenset({"user", "password"}),
    ),
    "Redshift": Destination(
        fields={
            "database": str,
            "user": str,
            "password": str,
            "host": str,
            "schema": str,
            "table_name": str,
            "port": int,
            "properties_data_type": str,
            "mode": str,
            "copy_inputs": dict,
        },
        required=("database",),
        log_name="Redshift",
        log_target=_dotted(("database", ""), ("schema", "public"), ("table_name", "events")),
        secrets=frozenset({"user", "password"}),
    ),
    "BigQuery": Destination(
        fields={"dataset_id": str, "table_id": str, "project_id": str, "use_json_type": bool},
        required=("dataset_id",),
        log_name="BigQuery",
        log_target=_dotted(("project_id", ""), ("dataset_id", ""), ("table_id", "events")),
        needs_integration=True,
        test_steps=(
            DestinationTestStep(
                "Impersonate BigQuery service account",
                "Confirm we can impersonate a BigQuery service account.",
                skipped="Using credentials without impersonation, skipping test",
            ),
            DestinationTestStep(
                "Verify BigQuery service account ownership",
                "Confirm that the current PostHog organization owns a BigQuery service account by ensuring "
                "its "
                "organization ID is set as part of the service account description.",
                skipped="Using credentials without impersonation, ownership is assumed",
            ),
            _bigquery_step("project", "project_id"),
            _bigquery_step("dataset", "dataset_id"),
            DestinationTestStep(
                "Verify BigQuery table",
                "Ensure the configured BigQuery table already exists or that we have the required "
                "permissions "
                "to create it. Additionally, when creating a table, we will attempt to delete it.",
            ),
        ),
    ),
    "Databricks": Destination(
        fields={
            "http_path": str,
            "catalog": str,
            "schema": str,
            "table_name": str,
            "use_variant_type": bool,
            "use_automatic_schema_evolution": bool,
        },
        required=("http_path", "catalog", "schema", "table_name"),
        log_name="Databricks",
        log_target=_dotted(("catalog", ""), ("schema", ""), ("table_name", "")),
        needs_integration=True,
        test_steps=(_databricks_step("catalog"), _databricks_step("schema")),
    ),
    "AzureBlob": Destination(
        fields={
            "container_name": str,
            "prefix": str,
            "compression": str,
            "file_format": str,
            "max_file_size_mb": int,
        },
        required=("container_name",),
        log_name="Azure Blob Storage",
        log_target=_dotted(("container_name", "")),
        test_steps=(
            DestinationTestStep(
                "Verify Azure Blob Storage container",
                "Ensure the configured container exists and that we have the required permissions to "
                "access it.",
                checks="container_name",
                failure="Container '{value}' does not exist or we don't have permissions to use it",
            ),
        ),
    ),
    "HTTP": Destination(
        fields={"url": str, "token": str},
        required=("url", "token"),
        log_name="HTTP",
        log_target=_dotted(("url", "")),
        secrets=frozenset({"token"}),
    ),
    "Workflows": Destination(
        fields={"hog_function_id": str},
        required=("hog_function_id",),
        log_name="Workflows",
        log_target=_dotted(("hog_function_id", "")),
    ),
    "NoOp": Destination(
        fields={"arg": str}, required=(), log_name="NoOp", log_target=lambda config, interval: ""
    ),
    "FileDownload": Destination(
        fields={}, required=(), log_name="FileDownload", log_target=lambda config, interval: ""
    ),
}
ALL_TYPES = ("S3", *DESTINATIONS)
HTTP_DESTINATION_URLS = ("https://us.i.posthog.com/batch/", "https://eu.i.posthog.com/batch/")
DEPRECATED_S3 = (
    "The 'S3' destination type is deprecated and can no longer be used. "
    "Use 'AwsS3' for AWS S3, or 'S3Compatible' for S3-compatible storage."
)


def _destination_error(detail: str) -> ApiError:
    # Raised in the nested destination serializer's validate(), so drf-exceptions-hog joins the keys.
    return validation_error(detail, attr="destination__non_field_errors")


def validate_destination(
    raw: Any,
    *,
    existing: dict[str, Any] | None,
    integration_ids: set[int],
    flags: set[str],
) -> dict[str, Any]:
    """Validate a request's ``destination`` and return the stored form ``{type, config, integration}``.

    :param raw: the ``destination`` value from the request body.
    :param existing: the stored destination when updating or re-testing an export (then the type
        cannot change and required keys may come from the stored config); None on create.
    :param integration_ids: integration ids that belong to the team.
    :param flags: the team's feature flags (``backfill-workflows-destination`` gates Workflows).
    """
    if not isinstance(raw, dict):
        raise validation_error(
            f"Invalid data. Expected a dictionary, but got {type(raw).__name__}.",
            attr="destination__non_field_errors",
        )
    if "type" not in raw:
        if existing is None:
            raise validation_error("This field is required.", code="required", attr="destination__type")
        raw = {**raw, "type": existing["type"]}
    kind = raw["type"]
    if kind not in ALL_TYPES:
        raise validation_error(
            f'"{kind}" is not a valid choice.', code="invalid_choice", attr="destination__type"
        )
    if kind == "S3":
        raise _destination_error(DEPRECATED_S3)
    if existing is not None and kind != existing["type"]:
        # PostHog's tests only assert the "Cannot change destination type" prefix.
        raise _destination_error(
            f"Cannot change destination type from '{existing['type']}' to '{kind}'. "
            "Create a new batch export with the new destination type instead."
        )
    if existing is None and "config" not in raw:
        raise validation_error("This field is required.", code="required", attr="destination__config")
    body_config = raw.get("config", {})
    if not isinstance(body_config, dict):
        raise validation_error(
            f'Expected a dictionary of items but got type "{type(body_config).__name__}".',
            code="not_a_dict",
            attr="destination__config",
        )
    spec = DESTINATIONS[kind]
    config = {**(existing["config"] if existing else {}), **body_config}
    config = _check_config(spec, config)
    if kind == "Workflows" and "backfill-workflows-destination" not in flags:
        raise permission_denied("Workflows batch exports are not enabled for this team.")
    if kind == "HTTP" and config["url"] not in HTTP_DESTINATION_URLS:
        raise _destination_error(f"Invalid destination URL: {config['url']}")
    if "integration" in raw or "integration_id" in raw:
        integration = raw.get("integration") or raw.get("integration_id")
    else:
        integration = existing["integration"] if existing else None
    if integration is not None:
        if (
            isinstance(integration, bool)
            or not str(integration).isdigit()
            or int(integration) not in integration_ids
        ):
            raise validation_error(
                f'Invalid pk "{integration}" - object does not exist.',
                code="does_not_exist",
                attr="destination__integration",
            )
        integration = int(integration)
    elif spec.needs_integration:
        raise _destination_error(f"Integration is required for {kind} batch exports")
    return {"type": kind, "config": config, "integration": integration}


def _check_config(spec: Destination, config: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(key for key in config if key not in spec.fields)
    if unknown:
        raise _destination_error(
            "Configuration has unknown field/s: " + ", ".join(f"'{key}'" for key in unknown)
        )
    for key in spec.required:
        if key not in config:
            raise _destination_error(f"Configuration missing required field: '{key}'")
    return {key: _coerce(value, spec.fields[key]) for key, value in config.items()}


def _coerce(value: Any, expected: type) -> Any:
    """PostHog only coerces str to bool and str to int; anything else must already match."""
    if value is None or (isinstance(value, expected) and not (expected is int and isinstance(value, bool))):
        return value
    if isinstance(value, str) and expected is bool and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, str) and expected is int and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _destination_error(
        f"Configuration has invalid type: got '{type(value).__name__}', expected '{expected.__name__}'"
    )


def public_destination(destination: dict[str, Any]) -> dict[str, Any]:
    """The destination as responses show it: secret config keys removed."""
    secrets = DESTINATIONS[destination["type"]].secrets
    return {
        "type": destination["type"],
        "config": {key: value for key, value in destination["config"].items() if key not in secrets},
        "integration": destination.get("integration"),
    }


def describe_test_steps(kind: str) -> list[dict[str, Any]]:
    """The ``steps`` of ``batch_exports/test`` for a type (empty when the type has no test)."""
    spec = DESTINATIONS.get(kind)
    steps = spec.test_steps if spec else ()
    return [{"name": step.name, "description": step.description, "result": None} for step in steps]


def run_test_step(destination: dict[str, Any], step: int) -> dict[str, Any]:
    """Run one simulated test step against a validated destination.

    :param destination: the stored form returned by :func:`validate_destination`.
    :param step: the step index.
    :raises ApiError: 500 when the type has no test or the step does not exist (PostHog raises
        ValueError / IndexError there, which surface as unhandled 500s).
    """
    steps = DESTINATIONS[destination["type"]].test_steps
    if not 0 <= step < len(steps):
        raise server_error()
    test = steps[step]
    value = destination["config"].get(test.checks) if test.checks else None
    result: dict[str, str | None]
    if test.skipped is not None:
        result = {"status": "Skipped", "message": test.skipped}
    elif test.checks and value in (None, ""):
        result = {"status": "Failed", "message": NOT_CONFIGURED}
    elif test.checks and FAILING_MARKER in str(value).lower():
        result = {"status": "Failed", "message": test.failure.format(value=value)}
    else:
        result = {"status": "Passed", "message": None}
    return {"name": test.name, "description": test.description, "result": result}
