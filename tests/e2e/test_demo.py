"""
The README's main command, ``scripts/demo.py`` (what ``scripts/demo.sh`` runs once the virtual
environment exists): both example DAGs through ``airflow dags test`` in a throw-away Airflow home.
The run against a given PostHog is in ``test_demo_given_posthog.py``: a file to itself, so that
the two demo runs can go to two workers.
"""

from __future__ import annotations

import re

from tests.helpers.processes import run_demo


def test_demo_runs_both_dags_against_its_own_emulator():
    done = run_demo()
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
