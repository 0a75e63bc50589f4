"""
Item 1: what importing the operators and the sensor adds to DAG parsing, next to HttpOperator/HttpSensor.

Each run is a fresh interpreter (``-I``: no work tree on ``sys.path``, so the installed package is
measured) that imports ``airflow.sdk`` first, which every DAG file pays anyway, and then times only
the provider's imports. The two providers alternate so machine noise hits both alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.harness import Figure, median

IMPORTS = {
    "ours": (
        "from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator, "
        "PostHogTestBatchExportOperator, PostHogUnpauseBatchExportOperator\n"
        "from airflow_provider_phenv.operators.dashboards import PostHogAddDashboardCollaboratorOperator, "
        "PostHogCreateDashboardOperator\n"
        "from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor\n"
    ),
    "http": (
        "from airflow.providers.http.operators.http import HttpOperator\n"
        "from airflow.providers.http.sensors.http import HttpSensor\n"
    ),
}

# The probe prints one JSON line; a marker on stderr lets -X importtime output be cut at it.
PROBE = """
import json, sys, time
started = time.perf_counter()
import airflow.sdk
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator
sdk_seconds = time.perf_counter() - started
before = set(sys.modules)
sys.stderr.write("--- provider imports ---\\n")
started = time.perf_counter()
{imports}
seconds = time.perf_counter() - started
added = sorted(set(sys.modules) - before)
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({{"seconds": seconds, "sdk_seconds": sdk_seconds, "added": added, "rss_kb": rss_kb}}))
"""


def _env(home: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    return env


def probe(which: str, home: str, *, importtime: bool = False) -> tuple[dict[str, Any], str]:
    """One fresh interpreter: the probe's JSON and its stderr."""
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run(
        [sys.executable, "-I", *flags, "-c", PROBE.format(imports=IMPORTS[which])],
        cwd=home,  # not the work tree: -I already keeps it off sys.path, this is belt and braces
        env=_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def heaviest(stderr: str, own_prefix: str, top: int = 6) -> list[dict[str, Any]]:
    """
    Modules that a module of ``own_prefix`` imports directly, by cumulative import time.

    ``-X importtime`` prints children before their parent, indented by depth; walking the lines
    backwards, the parent of a line is the nearest earlier-printed line one level shallower.
    """
    lines = stderr.split("--- provider imports ---\n", 1)[-1].splitlines()
    rows = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append((depth, name.strip(), int(cumulative)))
    stack: list[tuple[int, str]] = []
    found = []
    for depth, name, cumulative in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        if parent and parent.startswith(own_prefix) and not name.startswith(own_prefix):
            found.append({"module": name, "imported_by": parent, "ms": cumulative / 1000})
        stack.append((depth, name))
    return sorted(found, key=lambda row: -row["ms"])[:top]


def run(runs: int) -> tuple[list[Figure], dict[str, Any]]:
    samples: dict[str, list[dict[str, Any]]] = {"ours": [], "http": []}
    with tempfile.TemporaryDirectory(prefix="phenv-bench-import-") as home:
        if runs >= 5:  # the first start warms the OS file cache for both (not worth it for smoke runs)
            probe("ours", home)
        for index in range(runs):
            order = ("ours", "http") if index % 2 == 0 else ("http", "ours")
            for which in order:
                samples[which].append(probe(which, home)[0])
        _, ours_trace = probe("ours", home, importtime=True)
        _, http_trace = probe("http", home, importtime=True)
    ms = {which: median([s["seconds"] * 1000 for s in rows]) for which, rows in samples.items()}
    modules = {which: median([len(s["added"]) for s in rows]) for which, rows in samples.items()}
    heavy = heaviest(ours_trace, "airflow_provider_phenv")
    details = {
        "runs": runs,
        "ms_samples": {w: [round(s["seconds"] * 1000, 2) for s in rows] for w, rows in samples.items()},
        "airflow_sdk_import_ms": median([s["sdk_seconds"] * 1000 for s in samples["ours"]]),
        "task_process_rss_mb": median([s["rss_kb"] / 1024 for s in samples["ours"]]),
        "modules_added": {w: rows[-1]["added"] for w, rows in samples.items()},
        "heaviest_imports_ours": heavy,
        "heaviest_imports_http": heaviest(http_trace, "airflow.providers.http"),
    }
    cause = ", ".join(f"{row['module']} {row['ms']:.1f} ms (from {row['imported_by']})" for row in heavy[:3])
    figures = [
        Figure(
            1,
            "DAG parsing: import time added on top of airflow.sdk (median)",
            round(ms["ours"], 1),
            "ms",
            round(ms["http"], 1),
            "<= 20 and <= HTTP",
            ms["ours"] <= 20 and ms["ours"] <= ms["http"],
            f"fresh interpreter, median of {runs}; heaviest: {cause}",
        ),
        Figure(
            1,
            "DAG parsing: modules added on top of airflow.sdk",
            int(modules["ours"]),
            "modules",
            int(modules["http"]),
            "<= HTTP",
            modules["ours"] <= modules["http"],
        ),
    ]
    return figures, details
