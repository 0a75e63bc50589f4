"""Without the openlineage extra: the lineage and assets modules import, DAG parsing pays nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A fresh interpreter importing Airflow: about 1.5 s, so it runs in the --all tier.
pytestmark = pytest.mark.slow

PROBE = """
import importlib.abc, json, sys

# The OpenLineage client and provider cannot be imported (Airflow may still read the provider's
# metadata through its entry point, as it does for any installed distribution).
class NoOpenLineage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        blocked = name.split(".")[0] == "openlineage" or (
            name.startswith("airflow.providers.openlineage.") and not name.endswith(".get_provider_info")
        )
        if blocked:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoOpenLineage())
from airflow_provider_phenv.lineage import PostHogLineageMixin, batch_export_asset

class Operator(PostHogLineageMixin):
    pass

operator = Operator()
operator.record_posthog_lineage({"id": "x", "model": "events"}, [], host="us.posthog.com")
asset = batch_export_asset("01900000-0000-7000-8000-0000000000e1", project_id=1, host="us.posthog.com")
ours = ("openlineage.", "airflow.providers.openlineage.")
loaded = sorted(
    name for name in sys.modules
    if (name == "openlineage" or name.startswith(ours)) and not name.endswith(".get_provider_info")
)
print(json.dumps({"uri": asset.uri, "loaded": loaded}))
"""


def test_everything_but_building_lineage_works_without_openlineage():
    output = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout
    result = json.loads(output.splitlines()[-1])
    assert result == {
        "uri": "posthog://us.posthog.com/1/batch_exports/01900000-0000-7000-8000-0000000000e1",
        "loaded": [],
    }
