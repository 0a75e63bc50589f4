"""The README's code comes from the example DAGs the end-to-end tests run, so it cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples_match_example_dags():
    readme = (ROOT / "README.md").read_text()
    # Every example DAG is shown in the README.
    examples = sorted(path.name for path in (ROOT / "example_dags").glob("*.py"))
    assert sorted(set(re.findall(r"<!-- example: example_dags/(\S+) -->", readme))) == examples
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_readme.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_drift_is_detected(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_readme
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    stale = (ROOT / "README.md").read_text().replace('task_id="pause_export"', 'task_id="pause"', 1)
    assert sync_readme.synced(stale) == (ROOT / "README.md").read_text()
