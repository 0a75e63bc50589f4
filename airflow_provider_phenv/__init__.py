"""Apache Airflow provider for PostHog's project (environments) API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _modules(*names: str) -> list[dict[str, Any]]:
    return [{"integration-name": "PostHog", "python-modules": [f"{__name__}.{name}" for name in names]}]


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-phenv",
        "name": "PostHog",
        "description": "Pause, unpause and test PostHog batch exports, provision dashboards, "
        "and wait on batch export logs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "PostHog",
                "external-doc-url": "https://posthog.com/docs/api",
                "tags": ["service"],
            }
        ],
        "hooks": _modules("hooks.posthog"),
        "operators": _modules("operators.batch_exports", "operators.dashboards"),
        "sensors": _modules("sensors.batch_exports"),
        "triggers": _modules("triggers.batch_exports"),
        "connection-types": [
            {
                "connection-type": "posthog",
                "hook-class-name": "airflow_provider_phenv.hooks.posthog.PostHogHook",
                "hook-name": "PostHog",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"host": "PostHog host", "password": "Personal API key"},
                    "placeholders": {
                        "host": "https://us.posthog.com or https://eu.posthog.com or your own",
                        "password": "phx_...",
                        "project_id": "12345",
                        "api_prefix": "projects",
                        "timeout": "30",
                        "max_retries": "5",
                    },
                },
                "conn-fields": {
                    "project_id": {
                        "label": "Project ID",
                        "description": "Default project (environment) id for every call, or @current.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "api_prefix": {
                        "label": "API prefix",
                        "description": "projects (default, PostHog's canonical path) or environments "
                        "(deprecated, still served).",
                        "schema": {
                            "type": "string",
                            "enum": ["environments", "projects"],
                            "default": "projects",
                        },
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "How long to wait for PostHog to answer one request.",
                        "schema": {"type": ["number", "null"], "minimum": 1, "default": 30},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries on 429, 5xx and dropped connections, with backoff.",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "default": 5},
                    },
                },
            }
        ],
        "asset-uris": [
            {
                "schemes": ["posthog"],
                "handler": "airflow_provider_phenv.lineage.sanitize_uri",
                "factory": "airflow_provider_phenv.lineage.create_asset",
                "to_openlineage_converter": "airflow_provider_phenv.lineage.asset_to_openlineage",
            }
        ],
        "extra-links": [
            "airflow_provider_phenv.links.PostHogBackfillLink",
            "airflow_provider_phenv.links.PostHogBatchExportLink",
            "airflow_provider_phenv.links.PostHogDashboardLink",
        ],
    }
