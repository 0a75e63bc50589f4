"""Airflow discovers the package, its connection type and the connection form's metadata."""

from __future__ import annotations

import subprocess
import sys

import airflow
import pytest

import airflow_provider_phenv

AIRFLOW_VERSION = tuple(int(part) for part in airflow.__version__.split(".")[:2])


def test_provider_info_names_the_distribution():
    info = airflow_provider_phenv.get_provider_info()
    assert info["package-name"] == "airflow-provider-phenv"
    assert info["versions"] == [airflow_provider_phenv.__version__]


def test_hook_offers_the_same_form_to_airflow_3_1():
    from airflow_provider_phenv.hooks.posthog import PostHogHook

    behaviour = PostHogHook.get_ui_field_behaviour()
    declared = airflow_provider_phenv.get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared["hidden-fields"] == ["login", "schema", "port"]
    assert behaviour["relabeling"] == {"host": "PostHog host", "password": "Personal API key"}


def test_every_listed_module_and_class_imports():
    import importlib

    info = airflow_provider_phenv.get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in [*info["extra-links"], info["connection-types"][0]["hook-class-name"]]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


# The two ProvidersManager checks start a fresh interpreter (about 1.3 s each): --all tier. The
# packaging tests check discovery again from an installed wheel and sdist.
@pytest.mark.slow
def test_providers_manager_discovers_the_package_and_connection_type():
    # A fresh interpreter: ProvidersManager caches what it found, and the test must see what an
    # installed Airflow sees through the entry point, not what this process imported.
    code = """
from airflow.providers_manager import ProvidersManager
try:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    hooks = ProvidersManagerTaskRuntime().hooks
except ImportError:  # Airflow < 3.2
    hooks = ProvidersManager().hooks
hook = hooks["posthog"]
print("RESULT", ProvidersManager().providers["airflow-provider-phenv"].version)
print("RESULT", hook.hook_class_name, hook.connection_id_attribute_name, hook.hook_name)
"""
    assert _results(code) == [
        airflow_provider_phenv.__version__,
        "airflow_provider_phenv.hooks.posthog.PostHogHook posthog_conn_id PostHog",
    ]


@pytest.mark.slow
@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 2), reason="Airflow < 3.2 reads no form metadata from provider info"
)
def test_providers_manager_reads_the_connection_form_metadata():
    code = """
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
behaviour = pm.field_behaviours["posthog"]
widgets = sorted(k for k in pm.connection_form_widgets if k.startswith("extra__posthog__"))
labels = behaviour["relabeling"]
print("RESULT", sorted(behaviour["hidden_fields"]), labels["host"], labels["password"])
print("RESULT", widgets)
"""
    assert _results(code) == [
        "['login', 'port', 'schema'] PostHog host Personal API key",
        str([f"extra__posthog__{name}" for name in ("api_prefix", "max_retries", "project_id", "timeout")]),
    ]


def _results(code: str) -> list[str]:
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [line.removeprefix("RESULT ") for line in output.splitlines() if line.startswith("RESULT ")]
