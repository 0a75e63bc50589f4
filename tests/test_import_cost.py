"""Parsing a DAG that uses the provider must not load what only a running task needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A fresh interpreter importing Airflow: about 1.4 s, so it runs in the --all tier.
pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import airflow.sdk
before = set(sys.modules)
from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator
from airflow_provider_phenv.operators.dashboards import PostHogCreateDashboardOperator
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# requests (~30 ms) is needed only when a task talks to PostHog; the trigger machinery only when
# the sensor defers.
DEFERRED_UNTIL_RUN = (
    "requests",
    "urllib3",
    "airflow.triggers.base",
    "airflow_provider_phenv.triggers.batch_exports",
)


def test_dag_parsing_does_not_import_requests_or_the_trigger():
    output = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout
    added = json.loads(output.splitlines()[-1])
    assert "airflow_provider_phenv.sensors.batch_exports" in added
    assert [name for name in DEFERRED_UNTIL_RUN if name in added] == []


ASSET_PROBE = """
import json, sys
import airflow.sdk
before = set(sys.modules)
from airflow_provider_phenv.lineage import batch_export_asset
from airflow_provider_phenv.lineage import PostHogLineageMixin
asset = batch_export_asset("01900000-0000-7000-8000-0000000000e1", project_id=1, host="us.posthog.com")
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# A watched asset needs its trigger when the DAG is parsed, but neither requests (the sync hook's
# transport) nor anything of OpenLineage, which only the lineage listener loads after a task.
NOT_FOR_ASSETS = ("requests", "urllib3", "openlineage")


def test_dag_parsing_with_a_watched_asset_does_not_import_requests_or_openlineage():
    output = subprocess.run(
        [sys.executable, "-c", ASSET_PROBE], check=True, capture_output=True, text=True
    ).stdout
    added = json.loads(output.splitlines()[-1])
    assert "airflow_provider_phenv.triggers.batch_exports" in added
    assert [name for name in added if name.split(".")[0] in NOT_FOR_ASSETS or name in NOT_FOR_ASSETS] == []
    # Airflow itself reads every installed provider's metadata (get_provider_info) to find the URI
    # handler of an asset's scheme; nothing else of the OpenLineage provider may load.
    openlineage = [name for name in added if name.startswith("airflow.providers.openlineage.")]
    assert [name for name in openlineage if not name.endswith(".get_provider_info")] == []
