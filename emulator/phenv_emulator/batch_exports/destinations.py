"""Batch export destinations: config schemas, validation and secret stripping.

Schemas follow the newest ``service.py`` (02b1f511) input dataclasses, and validation the two
places PostHog checks a destination (docs/posthog-api.md §5):

- ``BatchExportDestinationSerializer.validate`` (``presentation/views/batch_export/destinations.py``)
  checks the request's config alone: unknown keys, missing required keys (not on PATCH), and the
  type of every key declared with a plain type. A key declared ``X | None`` is not type-checked.
  Its errors sit under ``destination.non_field_errors``, so their ``attr`` is
  ``destination__non_field_errors``.
- ``BatchExportSerializer.validate_destination`` (``presentation/views/batch_export/exports.py``)
  checks the destination against the export: the type cannot change, the integration each type
  needs and its kind, the HTTP URL, the Workflows flag. Its errors have ``attr`` ``destination``.

Integration-backed types keep their credentials in the integration; inline AWS keys are unknown
config fields. Legacy inline-credential Postgres, Redshift and BigQuery exports keep their secret
keys, which responses strip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..web.errors import ApiError, permission_denied, validation_error

#: ``BaseBatchExportInputs`` fields: accepted in any config, never type-checked (they are not
#: among the destination's own fields, which the serializer checks).
BASE_FIELDS = frozenset(
    {
        "batch_export_id",
        "team_id",
        "interval",
        "timezone",
        "data_interval_end",
        "exclude_events",
        "include_events",
        "is_backfill",
        "is_earliest_backfill",
        "backfill_details",
        "batch_export_model",
        "batch_export_schema",
        "integration_id",
    }
)
#: How an integration requirement treats an update that sends no ``integration``.
REQUIRED, REQUIRED_KEEPS_STORED, ON_CREATE, STICKY, OPTIONAL = (
    "required",
    "required (an update without one keeps the stored one)",
    "on create",
    "sticky",
    "optional",
)


@dataclass(frozen=True)
class Destination:
    """What the emulator knows about one destination type.

    :param fields: every declared config key and its type (str, int or bool; ``dict`` for the
        structured ones). Responses turn stringified int and bool values back into their type.
    :param required: config keys without a default: required on create (and PUT).
    :param log_name: the name PostHog's run logs use ("Batch exporting range ... to <log_name>: ...").
    :param log_target: builds the "<where>" part of that log line from the config and the run's
        ``"<start>-<end>"`` interval text.
    :param unchecked: keys declared ``X | None`` (or with a non-class annotation): PostHog's
        serializer checks no type for them.
    :param secrets: config keys never returned in responses (``BatchExportDestination.secret_fields``).
    :param integration: when the type needs an ``integration`` (one of the constants above).
    :param integration_kind: the kind that integration must have, with the refusal's text.
    :param label: how the "Integration is required for <label> batch exports" text names the type.
    :param object_storage: writes files: a new export gets ``legacy_parquet_extension: false``.
    """

    fields: dict[str, type]
    required: tuple[str, ...]
    log_name: str
    log_target: Callable[[dict[str, Any], str], str]
    unchecked: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    integration: str = OPTIONAL
    integration_kind: tuple[str, str] | None = None
    label: str = ""
    object_storage: bool = False


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


# The options of the destinations that write files (S3FamilyBaseInputs, AzureBlobBatchExportInputs).
_FILE_FIELDS: dict[str, type] = {
    "prefix": str,
    "compression": str,
    "file_format": str,
    "max_file_size_mb": int,
    "legacy_parquet_extension": bool,
}
_FILE_UNCHECKED = frozenset({"compression", "max_file_size_mb"})
_NOT_AWS_S3 = "Integration provided is not an AWS S3 integration (got kind='{kind}')"


def _s3_destination(kind: str, **extra_fields: type) -> Destination:
    """AwsS3 and S3Compatible: a bucket reached through an integration of the type's own kind."""
    return Destination(
        fields={"bucket_name": str, "region": str, **_FILE_FIELDS, **extra_fields},
        required=("bucket_name", "region", "prefix"),
        log_name="S3",
        log_target=_s3_key,
        unchecked=_FILE_UNCHECKED | {"encryption", "kms_key_id"},
        integration=REQUIRED_KEEPS_STORED,
        integration_kind=(kind, _NOT_AWS_S3),
        object_storage=True,
    )


def _sql_destination(log_name: str, kind: tuple[str, str], **extra_fields: type) -> Destination:
    """Postgres and Redshift: a table reached through an integration, or inline credentials on
    exports created before integrations existed (user and password are secret)."""
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
        unchecked=frozenset({"user", "host", "password", "mode", "copy_inputs"}),
        secrets=frozenset({"user", "password", "aws_access_key_id", "aws_secret_access_key"}),
        # Required on create in today's PostHog; not enforced yet (docs/posthog-api.md §5).
        integration=OPTIONAL,
        integration_kind=kind,
    )


DESTINATIONS: dict[str, Destination] = {
    "AwsS3": _s3_destination("aws-s3", encryption=str, kms_key_id=str),
    "S3Compatible": _s3_destination("s3-compatible", use_virtual_style_addressing=bool),
    "Snowflake": Destination(
        fields={"database": str, "warehouse": str, "schema": str, "table_name": str, "role": str},
        required=("database", "warehouse", "schema"),
        log_name="Snowflake",
        log_target=_dotted(("database", ""), ("schema", ""), ("table_name", "events")),
        unchecked=frozenset({"role"}),
        secrets=frozenset({"user", "password", "private_key", "private_key_passphrase"}),
        integration=REQUIRED_KEEPS_STORED,
    ),
    "Postgres": _sql_destination(
        "PostgreSQL",
        ("postgresql", "Integration is not a PostgreSQL integration."),
        has_self_signed_cert=bool,
    ),
    # An export that uses an integration cannot drop back to inline credentials.
    "Redshift": replace(
        _sql_destination(
            "Redshift",
            ("aws-redshift", "Integration is not a Redshift integration."),
            properties_data_type=str,
            mode=str,
            copy_inputs=dict,
        ),
        integration=STICKY,
    ),
    "BigQuery": Destination(
        fields={
            "dataset_id": str,
            "table_id": str,
            "project_id": str,
            "private_key": str,
            "private_key_id": str,
            "token_uri": str,
            "client_email": str,
            "use_json_type": bool,
        },
        required=("dataset_id",),
        log_name="BigQuery",
        log_target=_dotted(("project_id", ""), ("dataset_id", ""), ("table_id", "events")),
        unchecked=frozenset({"project_id", "private_key", "private_key_id", "token_uri", "client_email"}),
        secrets=frozenset({"private_key", "private_key_id", "client_email", "token_uri"}),
        integration=REQUIRED,
        integration_kind=(
            "google-cloud-service-account",
            "Integration is not a Google Cloud service account integration.",
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
        integration=REQUIRED,
        integration_kind=("databricks", "Integration is not a Databricks integration."),
    ),
    "AzureBlob": Destination(
        fields={"container_name": str, **_FILE_FIELDS},
        required=("container_name",),
        log_name="Azure Blob Storage",
        log_target=_dotted(("container_name", "")),
        unchecked=_FILE_UNCHECKED,
        integration=REQUIRED,
        integration_kind=("azure-blob", "Integration is not an Azure Blob integration."),
        label="Azure Blob",
        object_storage=True,
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
        fields={
            "data_interval_start": str,
            "batch_export_run_id": str,
            "file_format": str,
            "max_file_size_mb": int,
            "compression": str,
            "expires_in_seconds": int,
            "main_activity_timeout_seconds": int,
            "stage_activity_timeout_seconds": int,
        },
        required=(),
        log_name="FileDownload",
        log_target=lambda config, interval: "",
        unchecked=frozenset(
            {
                "data_interval_start",
                "batch_export_run_id",
                "max_file_size_mb",
                "compression",
                "main_activity_timeout_seconds",
                "stage_activity_timeout_seconds",
            }
        ),
    ),
}
ALL_TYPES = ("S3", *DESTINATIONS)
HTTP_DESTINATION_URLS = ("https://us.i.posthog.com/batch/", "https://eu.i.posthog.com/batch/")
DEPRECATED_S3 = (
    "The 'S3' destination type is deprecated and can no longer be used. "
    "Use 'AwsS3' for AWS S3, or 'S3Compatible' for S3-compatible storage."
)
LEGACY_PARQUET = (
    "'legacy_parquet_extension' can only stay on for an export that already writes the compression codec "
    "into its Parquet file names. It cannot be turned on for a new export, or turned back on once an export "
    "moved to the standard '.parquet' extension."
)
STICKY_INTEGRATION = (
    "Cannot remove the integration from a Redshift batch export that uses one. "
    "Re-send its `integration` to keep it (or a different one to swap)."
)


def _config_error(detail: str) -> ApiError:
    # Raised in the nested destination serializer's validate(), so drf-exceptions-hog joins the keys.
    return validation_error(detail, attr="destination__non_field_errors")


def _destination_error(detail: str) -> ApiError:
    # Raised in BatchExportSerializer.validate_destination, a field validator of ``destination``.
    return validation_error(detail, attr="destination")


def validate_destination(
    raw: Any,
    *,
    existing: dict[str, Any] | None,
    integrations: dict[int, dict[str, Any]],
    flags: set[str],
    partial: bool = False,
) -> dict[str, Any]:
    """Validate a request's ``destination`` and return the stored form ``{type, config, integration}``.

    :param raw: the ``destination`` value from the request body.
    :param existing: the stored destination when updating or re-testing an export (then the type
        cannot change and the config merges over the stored one); None on create.
    :param integrations: the integrations of the team, by id.
    :param flags: the team's feature flags (``backfill-workflows-destination`` gates Workflows).
    :param partial: PATCH semantics: missing config keys are not required.
    """
    if not isinstance(raw, dict):
        raise validation_error(
            f"Invalid data. Expected a dictionary, but got {type(raw).__name__}.",
            attr="destination__non_field_errors",
        )
    # The nested serializer's fields, in its field order: type, config, integration.
    if "type" not in raw:
        if existing is None:
            raise validation_error("This field is required.", code="required", attr="destination__type")
        raw = {**raw, "type": existing["type"]}
    kind = raw["type"]
    if kind not in ALL_TYPES:
        raise validation_error(
            f'"{kind}" is not a valid choice.', code="invalid_choice", attr="destination__type"
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
    given = "integration" in raw or "integration_id" in raw
    integration_id = _integration_field(raw.get("integration", raw.get("integration_id")), integrations)
    if kind == "S3":
        raise _config_error(DEPRECATED_S3)
    spec = DESTINATIONS[kind]
    config = _check_config(spec, body_config, partial=partial)
    # BatchExportSerializer.validate_destination, in PostHog's order.
    if existing is not None and kind != existing["type"]:
        raise _destination_error(
            f"Cannot change destination type from '{existing['type']}' to '{kind}'. "
            "Delete this batch export and create a new one with the new destination type."
        )
    stored_config = existing["config"] if existing is not None else {}
    if config.get("legacy_parquet_extension") is True and not _writes_legacy_parquet_names(stored_config):
        raise _destination_error(LEGACY_PARQUET)
    merged = _merge(stored_config, config)
    if kind == "HTTP" and merged.get("url") and merged["url"] not in HTTP_DESTINATION_URLS:
        raise _destination_error(f"Invalid destination URL: {merged['url']}")
    stored_integration = existing.get("integration") if existing is not None else None
    if not given and spec.integration == REQUIRED_KEEPS_STORED:
        integration_id = stored_integration
    _check_integration(spec, kind, integration_id, integrations, existing, stored_integration)
    if kind == "Workflows" and "backfill-workflows-destination" not in flags:
        raise permission_denied("Backfilling Workflows is not enabled for this team.")
    if existing is None and spec.object_storage:
        # New exports write the standard ".parquet" names (_set_default_parquet_extension).
        merged.setdefault("legacy_parquet_extension", False)
    if not given and existing is not None:
        integration_id = stored_integration
    return {"type": kind, "config": merged, "integration": integration_id}


def _integration_field(value: Any, integrations: dict[int, dict[str, Any]]) -> int | None:
    """The team-scoped primary key field: another team's integration does not exist."""
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).isdigit() or int(value) not in integrations:
        raise validation_error(
            f'Invalid pk "{value}" - object does not exist.',
            code="does_not_exist",
            attr="destination__integration",
        )
    return int(value)


def _check_integration(
    spec: Destination,
    kind: str,
    integration_id: int | None,
    integrations: dict[int, dict[str, Any]],
    existing: dict[str, Any] | None,
    stored_integration: int | None,
) -> None:
    if spec.integration == STICKY and existing is not None and stored_integration and integration_id is None:
        raise _destination_error(STICKY_INTEGRATION)
    needed = spec.integration in (REQUIRED, REQUIRED_KEEPS_STORED) or (
        spec.integration == ON_CREATE and existing is None
    )
    if integration_id is None:
        if needed:
            raise _destination_error(f"Integration is required for {spec.label or kind} batch exports")
        return
    if spec.integration_kind is not None:
        expected, refusal = spec.integration_kind
        actual = integrations[integration_id]["kind"]
        if actual != expected:
            raise _destination_error(refusal.format(kind=actual))


def _writes_legacy_parquet_names(stored: dict[str, Any]) -> bool:
    """Whether a stored config already writes the codec into its Parquet file names."""
    value = stored.get("legacy_parquet_extension")
    if value is None:
        # Exports from before the setting keep the old names when they write compressed Parquet.
        return stored.get("file_format") == "Parquet" and stored.get("compression") is not None
    return value is True or str(value).lower() == "true"


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``recursive_dict_merge``: nested dicts merge, anything else is replaced."""
    merged = {**old, **new}
    for key, value in merged.items():
        if isinstance(value, dict):
            old_value, new_value = old.get(key), new.get(key)
            merged[key] = _merge(
                old_value if isinstance(old_value, dict) else {},
                new_value if isinstance(new_value, dict) else {},
            )
    return merged


def stored_config_for_test(destination: dict[str, Any]) -> dict[str, Any]:
    """The stored config ``run_test_step`` merges under the request's: declared keys only."""
    spec = DESTINATIONS.get(destination["type"])
    known = (set(spec.fields) if spec else set()) | BASE_FIELDS
    return {key: value for key, value in destination["config"].items() if key in known}


def _check_config(spec: Destination, config: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The nested serializer's ``validate``: unknown keys, then required keys, then types."""
    unknown = sorted(key for key in config if key not in spec.fields and key not in BASE_FIELDS)
    if unknown:
        raise _config_error("Configuration has unknown field/s: " + ", ".join(f"'{key}'" for key in unknown))
    checked = dict(config)
    for key, expected in spec.fields.items():
        if key not in config:
            if key in spec.required and not partial:
                raise _config_error(f"Configuration missing required field: '{key}'")
            continue
        if key not in spec.unchecked:
            checked[key] = _coerce(config[key], expected)
    return checked


def _coerce(value: Any, expected: type) -> Any:
    """PostHog's ``isinstance`` check, converting only str to bool and str to int."""
    if isinstance(value, expected):
        return value
    if isinstance(value, str) and expected is bool:
        return value.lower() in _TRUE_STRINGS
    if isinstance(value, str) and expected is int:
        try:
            return int(value)
        except ValueError:
            pass
    raise _config_error(
        f"Configuration has invalid type: got '{type(value).__name__}', expected '{expected.__name__}'"
    )


# ``posthog.utils.str_to_bool``: these read as True, any other string as False (never an error).
_TRUE_STRINGS = frozenset({"y", "yes", "t", "true", "on", "1"})


def public_destination(destination: dict[str, Any]) -> dict[str, Any]:
    """The destination as responses show it: secret keys removed (at any depth), and stringified
    int and bool values turned back into their declared type (``coerce_config_to_declared_types``)."""
    spec = DESTINATIONS.get(destination["type"])
    secrets = spec.secrets if spec else frozenset({"aws_access_key_id", "aws_secret_access_key"})
    config = _without(destination["config"], secrets)
    if spec is not None:
        for key, value in config.items():
            declared = spec.fields.get(key)
            if isinstance(value, str) and declared is bool:
                config[key] = value.strip().lower() == "true"
            elif isinstance(value, str) and declared is int:
                with contextlib.suppress(ValueError):  # left as stored, as PostHog does
                    config[key] = int(value)
    return {"type": destination["type"], "config": config, "integration": destination.get("integration")}


def _without(config: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    return {
        key: _without(value, secrets) if isinstance(value, dict) else value
        for key, value in config.items()
        if key not in secrets
    }
