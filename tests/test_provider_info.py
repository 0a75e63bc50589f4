"""Airflow discovers the package, its connection type and the connection form's metadata."""

from __future__ import annotations

import subprocess
import sys

import airflow_provider_phenv


def test_provider_info_names_the_distribution():
    info = airflow_provider_phenv.get_provider_info()
    assert info["package-name"] == "airflow-provider-phenv"
    assert info["versions"] == [airflow_provider_phenv.__version__]


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


def test_providers_manager_discovers_connection_type_and_ui_fields():
    # A fresh interpreter: ProvidersManager caches what it found, and the test must see what an
    # installed Airflow sees through the entry point, not what this process imported.
    code = """
from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
pm = ProvidersManager()
provider = pm.providers["airflow-provider-phenv"]
hook = ProvidersManagerTaskRuntime().hooks["posthog"]
behaviour = pm.field_behaviours["posthog"]
widgets = sorted(k for k in pm.connection_form_widgets if k.startswith("extra__posthog__"))
print("RESULT", provider.version, hook.hook_class_name, hook.connection_id_attribute_name, hook.hook_name)
labels = behaviour["relabeling"]
print("RESULT", sorted(behaviour["hidden_fields"]), labels["host"], labels["password"])
print("RESULT", widgets)
"""
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = [line.removeprefix("RESULT ") for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines[0] == (
        f"{airflow_provider_phenv.__version__} airflow_provider_phenv.hooks.posthog.PostHogHook "
        "posthog_conn_id PostHog"
    )
    assert lines[1] == "['login', 'port', 'schema'] PostHog host Personal API key"
    assert lines[2] == str(
        [f"extra__posthog__{name}" for name in ("api_prefix", "max_retries", "project_id", "timeout")]
    )
