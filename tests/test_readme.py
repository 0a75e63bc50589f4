"""The README's code comes from the example DAGs the end-to-end tests run, so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples_match_example_dags():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- example: example_dags/") == 2
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
