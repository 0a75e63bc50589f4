"""
The README's main command, ``scripts/demo.py`` (what ``scripts/demo.sh`` runs once the virtual
environment exists): both example DAGs through ``airflow dags test`` in a throw-away Airflow home.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from phenv_emulator import SEED

from tests.conftest import ROOT
from tests.helpers.emulator import api_requests

UNKNOWN_USER = "01900000-0000-7000-8000-00000000dead"


def _demo(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "POSTHOG"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_demo_runs_both_dags_against_its_own_emulator():
    done = _demo()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "posthog_batch_export_maintenance: success" in out
    assert "posthog_dashboard_provisioning: success" in out
    assert "posthog_backfill: success" in out and "posthog_export_downstream: success" in out
    assert ": Completed, " in out  # the backfills the DAGs started, by status
    assert "'Pipeline health' (created)" in out
    assert "everyone else: - -> viewer" in out
    assert "alice@example.com: - -> editor" in out and "bob@example.com: - -> editor" in out
    # Each slow step says how long it takes; the summary says what happened, test results included.
    slow = [line for line in out.splitlines() if line.startswith(("==> Running", "==> Preparing"))]
    assert len(slow) == 6 and all(re.search(r"~\d+(-\d+)? s", line) for line in slow)
    assert re.search(r"paused at \S+, then unpaused with a backfill: running before -> running again", out)
    assert "destination test: 2 of 2 steps passed or skipped" in out
    assert "'Check S3 bucket exists': Passed" in out
    assert "restriction level 21" in out
    # No spurious warnings (Airflow warns once when a connection extra is too short to mask).
    assert "Skipping masking" not in out + done.stderr
    # (Airflow 3.1's own deprecation warnings, printed from its site-packages, are not the demo's.)
    ours = [line for line in (out + done.stderr).splitlines() if "site-packages" not in line]
    assert not [line for line in ours if "warning" in line.lower()], out + done.stderr
    assert re.search(r"posthog_export_events: 2 DAG runs for 2 finished runs in \d+ s", out)


def test_demo_against_a_given_posthog_exits_non_zero_when_a_dag_fails(emulator):
    # The "real PostHog" path, pointed at the emulator: an editor PostHog does not know fails the
    # provisioning DAG, and the command says so in its exit code.
    done = _demo(
        POSTHOG_HOST=emulator.url,
        POSTHOG_API_KEY=emulator.api_key,
        POSTHOG_PROJECT_ID=str(emulator.project_id),
        POSTHOG_BATCH_EXPORT_ID=SEED.s3_export_id,
        POSTHOG_DASHBOARD_EDITORS=f"{SEED.alice_uuid},{UNKNOWN_USER}",
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "posthog_batch_export_maintenance: success" in done.stdout
    assert "posthog_dashboard_provisioning: FAILED" in done.stdout
    assert emulator.api_key not in done.stdout + done.stderr
    sent = {(record.method, record.path) for record in api_requests(emulator)}
    assert (
        "POST",
        f"/api/projects/{emulator.project_id}/batch_exports/{SEED.s3_export_id}/pause/",
    ) in sent
