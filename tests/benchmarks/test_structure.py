"""
Keeps the structure benchmark (item 10) working, in the project venv: it needs no ``.venv-bench``.

It builds a wheel and starts a fresh interpreter, about 12 s (tests/benchmarks is the bench tier).
Its floors on module and line counts are reported, not asserted here; what is asserted is what the
benchmark itself treats as a bug: an emulator file in the wheel, an import from the hooks up into
the waits or the tasks, and a pause that does not reach PostHog.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.processes import run_ok

ROOT = Path(__file__).resolve().parents[2]


def test_structure_benchmark_runs_and_finds_no_upward_arrow():
    out = run_ok(sys.executable, "-m", "benchmarks.structure", cwd=ROOT, timeout=300)
    assert "emulator files: 0" in out
    assert "upward arrows from the hooks: none" in out
    assert "/pause/'" in out
    assert "airflow_provider_phenv.operators.batch_exports" in out
