"""
Keeps the benchmarks working: ``scripts/bench.sh --smoke`` (tiny sizes, about 90 s) must not crash.

It needs ``.venv-bench`` (Airflow plus apache-airflow-providers-http), which ``scripts/bench.sh``
creates on first use. The test runs only where that venv exists or ``PHENV_BENCH_SMOKE=1`` asks for
it (then bench.sh builds the venv first, ~15 s more); ``PHENV_BENCH_SMOKE=0`` skips it. Missed
floors do not fail it: the numbers of a smoke run mean nothing, only that every item still runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.processes import run_ok

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


ASKED = os.environ.get("PHENV_BENCH_SMOKE")


@pytest.mark.skipif(
    ASKED == "0" or (ASKED != "1" and not BENCH_PYTHON.exists()),
    reason="no .venv-bench (run scripts/bench.sh once, or set PHENV_BENCH_SMOKE=1), or PHENV_BENCH_SMOKE=0",
)
def test_bench_smoke_runs_every_item(tmp_path):
    # The benchmark makes its own Airflow home and connections; the test session's must not leak in.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "PYTEST"))}
    run_ok(ROOT / "scripts" / "bench.sh", "--smoke", "--out", tmp_path, cwd=ROOT, env=env)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["errors"] == {}
    assert {figure["item"] for figure in results["figures"]} == set(range(1, 14))
    assert results["meta"]["smoke"] is True
    assert "| # | figure |" in (tmp_path / "BENCHMARKS.md").read_text()
