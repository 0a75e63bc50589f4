"""Batch export destinations: config schemas, validation and secret stripping.

Schemas follow the newest ``service.py`` dataclasses (docs/posthog-api.md §5, §12.1): S3-family,
BigQuery, Snowflake and Databricks exports need an ``integration`` and reject inline credentials.

Integration-backed types keep their credentials in the integration, and inline keys are rejected
as unknown config fields, so only Postgres, Redshift and HTTP have secret config keys to strip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..web.errors import ApiError, permission_denied, validation_error


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
    """

    fields: dict[str, type]
    required: tuple[str, ...]
    log_name: str
    log_target: Callable[[dict[str, Any], str], str]
    secrets: frozenset[str] = frozenset()
    needs_integration: bool = False


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


# The options of the destinations that write files: S3, S3-compatible storage and Azure Blob Storage.
_FILE_FIELDS: dict[str, type] = {
    "prefix": str,
    "compression": str,
    "file_format": str,
    "max_file_size_mb": int,
}


def _s3_destination(**extra_fields: type) -> Destination:
    """AwsS3 and S3Compatible: a bucket reached through an integration."""
    return Destination(
        fields={
            "bucket_name": str,
            "region": str,
            **_FILE_FIELDS,
            "legacy_parquet_extension": bool,
            **extra_fields,
        },
        required=("bucket_name", "region", "prefix"),
        log_name="S3",
        log_target=_s3_key,
        needs_integration=True,
    )


def _sql_destination(log_name: str, **extra_fields: type) -> Destination:
    """Postgres and Redshift: a table reached with a user and password, which are secret."""
    return Destination(
        fields={
            "database": str,
            "schema": str,
            "table_name": str,
            "user": str,
            "host": str,
            "port": int,
            "password": str,
            **extra_fields,
        },
        required=("database",),
        log_name=log_name,
        log_target=_dotted(("database", ""), ("schema", "public"), ("table_name", "events")),
        secrets=frozenset({"user", "password"}),
    )


DESTINATIONS: dict[str, Destination] = {
    "AwsS3": _s3_destination(encryption=str, kms_key_id=str),
    "S3Compatible": _s3_destination(endpoint_url=str, use_virtual_style_addressing=bool),
    "Snowflake": Destination(
        fields={"database": str, "warehouse": str, "schema": str, "table_name": str, "role": str},
        required=("database", "warehouse", "schema"),
        log_name="Snowflake",
        log_target=_dotted(("database", ""), ("schema", ""), ("table_name", "events")),
        needs_integration=True,
    ),
    "Postgres": _sql_destination("PostgreSQL", has_self_signed_cert=bool),
    "Redshift": _sql_destination("Redshift", properties_data_type=str, mode=str, copy_inputs=dict),
    "BigQuery": Destination(
        fields={"dataset_id": str, "table_id": str, "project_id": str, "use_json_type": bool},
        required=("dataset_id",),
        log_name="BigQuery",
        log_target=_dotted(("project_id", ""), ("dataset_id", ""), ("table_id", "events")),
        needs_integration=True,
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
    ),
    "AzureBlob": Destination(
        fields={"container_name": str, **_FILE_FIELDS},
        required=("container_name",),
        log_name="Azure Blob Storage",
        log_target=_dotted(("container_name", "")),
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
