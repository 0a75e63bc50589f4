"""
The example DAGs end to end in a real Airflow (``dag.test()`` on SQLite) against the emulator.

They run in this pytest process, so Airflow's start-up cost is paid once. What counts is checked
on the emulator afterwards, not only the run's state, and the API key must appear in no task log
and no XCom.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from phenv_emulator import SEED

from tests.helpers.builds import COLLABORATOR_BUILDS, builds
from tests.helpers.emulator import api_requests, connection_json


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="session")
def dag_bag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def run_dag(airflow_db, dag_bag, emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))
    # A healthy run's wait is done in seconds; a broken one must fail the test, not wait 2 hours.
    for dag in dag_bag.dags.values():
        for task in dag.tasks:
            if hasattr(task, "timeout"):
                monkeypatch.setattr(task, "timeout", 45)

    def run(dag_id: str, conf: dict | None = None):
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        dag_run = dag_bag.dags[dag_id].test(run_conf=conf)
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        with create_session() as session:
            xcoms = {
                (row.task_id, row.map_index, row.key): row.value
                for row in session.query(XComModel).filter_by(dag_id=dag_id, run_id=dag_run.run_id)
            }
        return dag_run, states, xcoms

    return run


def _task_logs() -> str:
    logs = Path(os.environ["AIRFLOW_HOME"], "logs")
    return "\n".join(path.read_text(errors="replace") for path in logs.rglob("*.log"))


# The older builds whose switches touch this DAG's requests (429s, the environments prefix).
@pytest.mark.parametrize(
    "build",
    builds("no-retry-after", "environments-redirect"),
    indirect=True,
)
@pytest.mark.parametrize("paused_for", [0, 3600], ids=["short-pause", "hour-pause"])
def test_batch_export_maintenance(build, paused_for, run_dag, emulator, capfd):
    # PostHog backfills whole intervals only: a pause of seconds backfills nothing, a pause
    # recorded an hour early backfills one hourly run, which the unpause waits for.
    emulator.state.backdate_pauses(paused_for)
    if build == "no-retry-after":
        emulator.faults.add("status", status=429, retry_after=0, path="/backfills/", times=1)
    dag_run, states, xcoms = run_dag("posthog_batch_export_maintenance")
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}
    export = emulator.state.get_batch_export(SEED.s3_export_id)
    assert export["paused"] is False and export["last_paused_at"] is not None
    paths = [(r.method, r.path.split("/")[-2]) for r in api_requests(emulator) if r.method == "POST"]
    assert paths[0] == ("POST", "pause") and paths[-1] == ("POST", "unpause")
    # (On the build that redirects /api/environments/, the 307 hop carries out nothing.)
    unpause = [r for r in api_requests(emulator) if r.path.endswith("/unpause/") and r.status != 307]
    assert [r.body for r in unpause] == [{"backfill": True}]
    assert json.loads(json.dumps(xcoms[("unpause_export", -1, "return_value")])) == {
        "batch_export_id": SEED.s3_export_id,
        "paused": False,
    }
    # The unpause found the backfill PostHog started for the pause and waited for it by status.
    backfill_id = xcoms[("unpause_export", -1, "backfill_id")]
    assert backfill_id in emulator.state.backfills
    backfill_runs = [
        run for run in emulator.state.runs_of(SEED.s3_export_id) if run["backfill_id"] == backfill_id
    ]
    assert len(backfill_runs) == paused_for // 3600
    assert all(
        run["created_at"] + run["duration"] <= emulator.state.now() for run in backfill_runs
    )  # all ended
    assert xcoms[("pause_export", -1, "_link_PostHogBatchExportLink")].endswith(
        f"/project/1/batch_exports/{SEED.s3_export_id}"
    )
    _assert_key_nowhere(emulator, capfd, xcoms)


@pytest.mark.parametrize(
    "build",
    builds("no-retry-after", "environments-redirect"),
    indirect=True,
)
def test_backfill_waits_for_every_run(build, run_dag, emulator, capfd):
    emulator.state.set_run_outcome(SEED.s3_export_id, "completed", duration=0.5)
    if build == "no-retry-after":  # the wait's first read is throttled
        emulator.faults.add("status", status=429, retry_after=0, method="GET", path="/backfills/", times=1)
    dag_run, states, xcoms = run_dag("posthog_backfill")
    assert dag_run.state == "success", states
    result = xcoms[("backfill_export", -1, "return_value")]
    assert result["status"] == "Completed" and result["total_runs"] == result["finished_runs"] >= 1
    (post,) = [r for r in api_requests(emulator) if r.method == "POST" and r.status != 307]
    assert post.path.endswith("/backfills/")
    _assert_key_nowhere(emulator, capfd, xcoms)


def test_export_downstream_waits_for_the_interval(run_dag, emulator, capfd, dag_bag):
    from datetime import datetime, timedelta, timezone

    # An hour the seeded runs already exported: the run sensor's first poll in the worker decides.
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    dag_run = dag_bag.dags["posthog_export_downstream"].test(logical_date=hour)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    out, err = capfd.readouterr()
    assert "PostHog exported 1000 records in 1 run(s)." in out + err + _task_logs()


@pytest.mark.parametrize("build", COLLABORATOR_BUILDS, indirect=True)
def test_dashboard_provisioning_is_idempotent(build, run_dag, emulator, capfd):
    dag_run, states, xcoms = run_dag("posthog_dashboard_provisioning")
    assert dag_run.state == "success", states
    dashboards = [d for d in emulator.state.dashboards.values() if d["name"] == "Pipeline health"]
    assert len(dashboards) == 1
    created = xcoms[("create_dashboard", -1, "return_value")]
    assert created["created"] is True and created["id"] == dashboards[0]["id"]
    assert created["access"] == {
        "default": "viewer",
        "editors": ["alice@example.com", "bob@example.com"],
        "viewers": [],
    }
    rules = {
        rule["organization_member"]: rule["access_level"]
        for rule in emulator.state.access_controls
        if rule["resource_id"] == str(created["id"])
    }
    assert rules == {None: "viewer", SEED.alice_membership_id: "editor", SEED.bob_membership_id: "editor"}

    # A second run reuses the dashboard and writes nothing.
    emulator.clear_requests()
    dag_run, states, xcoms = run_dag("posthog_dashboard_provisioning")
    assert dag_run.state == "success", states
    assert xcoms[("create_dashboard", -1, "return_value")]["created"] is False
    assert len([d for d in emulator.state.dashboards.values() if d["name"] == "Pipeline health"]) == 1
    assert [r for r in emulator.requests if r.path.startswith("/api/") and r.method != "GET"] == []
    _assert_key_nowhere(emulator, capfd, xcoms)


def _assert_key_nowhere(emulator, capfd, xcoms):
    out, err = capfd.readouterr()
    assert "PostHog" in out + err + _task_logs()  # the task logs were captured at all
    assert emulator.api_key not in out + err
    assert emulator.api_key not in _task_logs()
    assert emulator.api_key not in json.dumps(list(xcoms.values()), default=str)
