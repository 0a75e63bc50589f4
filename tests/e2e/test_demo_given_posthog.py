"""
``scripts/demo.py`` against a given PostHog (``POSTHOG_HOST`` and the rest set), pointed at the
emulator. Apart from ``tests/e2e/test_demo.py`` so that the two demo runs can go to two workers.
"""

from __future__ import annotations

from phenv_emulator import SEED

from tests.helpers.emulator import api_requests
from tests.helpers.processes import run_demo

UNKNOWN_USER = "01900000-0000-7000-8000-00000000dead"


def test_demo_against_a_given_posthog_exits_non_zero_when_a_dag_fails(emulator):
    # The "real PostHog" path, pointed at the emulator: an editor PostHog does not know fails the
    # provisioning DAG, and the command says so in its exit code. Only the two DAGs it checks run.
    done = run_demo(
        POSTHOG_HOST=emulator.url,
        POSTHOG_API_KEY=emulator.api_key,
        POSTHOG_PROJECT_ID=str(emulator.project_id),
        POSTHOG_BATCH_EXPORT_ID=SEED.s3_export_id,
        POSTHOG_DASHBOARD_EDITORS=f"{SEED.alice_uuid},{UNKNOWN_USER}",
        DEMO_DAGS="posthog_batch_export_maintenance,posthog_dashboard_provisioning",
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
