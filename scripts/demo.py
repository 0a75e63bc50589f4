"""
Run the example DAGs end to end with ``airflow dags test`` and show what changed in PostHog.
Then (against the emulator) start a real scheduler, triggerer, dag-processor and api-server and
show ``posthog_export_events`` running once for each batch export run the emulator finishes
(about 35 s more; ``DEMO_EVENTS=0`` skips it). ``DEMO_DAGS``, a comma-separated list of DAG ids
from ``DAGS``, runs only those DAGs (in their usual order); by default all of them run.

Without settings it starts the bundled PostHog emulator, so no account is needed. With
``POSTHOG_HOST``, ``POSTHOG_API_KEY``, ``POSTHOG_PROJECT_ID`` and ``POSTHOG_BATCH_EXPORT_ID`` set,
the same DAGs run against that PostHog instead (``POSTHOG_DASHBOARD_EDITORS``, a comma-separated
list of user emails or UUIDs, and ``POSTHOG_DASHBOARD_NAME`` are optional there).

Run it through ``scripts/demo.sh``, which prepares the virtual environment first.
Exits non-zero when a DAG run fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

# Airflow 3.1 warns about its own deprecated imports and SQLAlchemy options while the demo reads
# PostHog through the hook; they are not the provider's and would drown the summary.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAGS = (
    "posthog_batch_export_maintenance",
    "posthog_backfill",
    "posthog_export_downstream",
    "posthog_dashboard_provisioning",
)
DAG_TIMEOUT = 300
# What each DAG does and how long it usually takes against the emulator on a 2-core machine.
DAG_STEPS = {
    "posthog_batch_export_maintenance": "pause, test the destination, unpause with a backfill and wait "
    "for it; ~15-20 s",
    "posthog_backfill": "backfill three hours and wait for the backfill; ~10-15 s",
    "posthog_export_downstream": "wait for the export of an hourly interval, then load it; ~10-15 s",
    "posthog_dashboard_provisioning": "create or match the dashboard: 2 editors, others view; ~10-15 s",
}
# The demo reads PostHog through its own connection without extras: Airflow masks every extra
# value of a connection it reads, and warns about a value too short to mask, such as project id 1.
DEMO_CONN_ID = "posthog_demo_reader"


def main() -> int:
    dags = _chosen_dags()
    home = Path(tempfile.mkdtemp(prefix="phenv-demo-airflow-"))
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    # This process reads PostHog through the provider's hook too: same throw-away home, never ~/airflow.
    os.environ.update(settings)
    env = {**os.environ, **settings}
    emulator = None
    try:
        if os.environ.get("POSTHOG_API_KEY"):
            target = _real_posthog()
        else:
            emulator, target = _start_emulator()
        env["AIRFLOW_CONN_POSTHOG_DEFAULT"] = json.dumps(
            {
                "conn_type": "posthog",
                "host": target["host"],
                "password": target["api_key"],
                "extra": {"project_id": target["project_id"]},
            }
        )
        os.environ[f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "posthog", "host": target["host"], "password": target["api_key"]}
        )
        _step("Preparing a throw-away Airflow home with SQLite (airflow db migrate, ~5-10 s):", home)
        started = time.monotonic()
        code = _run([str(BIN / "airflow"), "db", "migrate"], env, quiet=True)
        if code != 0:
            sys.exit(f"airflow db migrate failed (exit code {code}).")
        print(f"    done in {time.monotonic() - started:.0f} s")
        # The events demo's own home starts from this database, before the DAG runs write to it.
        migrated = home / "migrated.db"
        shutil.copyfile(home / "airflow.db", migrated)
        before = _snapshot(target)
        failed = []
        for dag_id in dags:
            _step(f"Running DAG {dag_id} ({DAG_STEPS[dag_id]})", "")
            conf = json.dumps(target["conf"].get(dag_id, {}))
            command = [str(BIN / "airflow"), "dags", "test", dag_id]
            if dag_id == "posthog_export_downstream":
                command.append(_two_hours_ago())  # an hourly interval PostHog has exported by now
            command += ["-c", conf]
            started = time.monotonic()
            code = _run(command, env, timeout=DAG_TIMEOUT)
            outcome = "success" if code == 0 else f"FAILED (exit code {code})"
            print(f"    {dag_id}: {outcome} in {time.monotonic() - started:.0f} s")
            if code != 0:
                failed.append(dag_id)
        _report(before, _snapshot(target), _destination_test(home))
        events = emulator is not None and os.environ.get("DEMO_EVENTS", "1") != "0"
        if events and not _events_demo(home / "events", target, migrated):
            failed.append("posthog_export_events")
        return 1 if failed else 0
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _chosen_dags() -> tuple[str, ...]:
    """The DAGs ``DEMO_DAGS`` names, in the order of ``DAGS``; every DAG when it is unset or empty."""
    named = [name.strip() for name in os.environ.get("DEMO_DAGS", "").split(",") if name.strip()]
    unknown = sorted(set(named) - set(DAGS))
    if unknown:
        sys.exit(f"DEMO_DAGS names unknown DAG(s) {', '.join(unknown)}; expected some of {', '.join(DAGS)}.")
    return tuple(dag_id for dag_id in DAGS if dag_id in named) if named else DAGS


def _real_posthog() -> dict:
    required = ("POSTHOG_HOST", "POSTHOG_PROJECT_ID", "POSTHOG_BATCH_EXPORT_ID")
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        sys.exit(f"POSTHOG_API_KEY is set, so the demo runs against PostHog; also set {', '.join(missing)}.")
    editors = [part.strip() for part in os.environ.get("POSTHOG_DASHBOARD_EDITORS", "").split(",")]
    _step("Using PostHog at", os.environ["POSTHOG_HOST"])
    return {
        "host": os.environ["POSTHOG_HOST"],
        "api_key": os.environ["POSTHOG_API_KEY"],
        "project_id": os.environ["POSTHOG_PROJECT_ID"],
        "batch_export_id": os.environ["POSTHOG_BATCH_EXPORT_ID"],
        "conf": {
            "posthog_batch_export_maintenance": {"batch_export_id": os.environ["POSTHOG_BATCH_EXPORT_ID"]},
            "posthog_backfill": {"batch_export_id": os.environ["POSTHOG_BATCH_EXPORT_ID"]},
            "posthog_export_downstream": {"batch_export_id": os.environ["POSTHOG_BATCH_EXPORT_ID"]},
            "posthog_dashboard_provisioning": {
                "dashboard_name": os.environ.get("POSTHOG_DASHBOARD_NAME", "Pipeline health"),
                "editors": [person for person in editors if person],
            },
        },
    }


def _start_emulator() -> tuple[subprocess.Popen, dict]:
    from phenv_emulator import SEED

    sys.path.insert(0, str(ROOT))
    from tests.helpers.airflow_stack import spawn_emulator

    _step("Starting the bundled PostHog emulator", "(no account needed, ~1 s)")
    try:
        process, banner, url, api_key, project_id = spawn_emulator()
    except RuntimeError as error:
        sys.exit(str(error))
    print("    " + banner.split("  ")[0])
    return process, {
        "host": url,
        "api_key": api_key,
        "project_id": project_id,
        "batch_export_id": SEED.s3_export_id,
        "conf": {"posthog_batch_export_maintenance": {}, "posthog_dashboard_provisioning": {}},
    }


def _events_demo(home: Path, target: dict, migrated: Path, runs: int = 2) -> bool:
    """Data-aware scheduling: a DAG on a batch export asset runs once per run PostHog finishes."""
    sys.path.insert(0, str(ROOT))
    import httpx

    from tests.helpers.airflow_stack import (
        EVENTS_DAG,
        airflow_env,
        backfill_runs,
        events_dags,
        finish_a_run,
        start_airflow,
        wait_done,
        watcher_polls,
    )
    from tests.helpers.processes import Processes, wait_for

    _step(
        f"Running DAG {EVENTS_DAG} (scheduled on a batch export asset, under a real scheduler and "
        "triggerer: once per run the emulator finishes; ~35-45 s)",
        "",
    )
    started = time.monotonic()
    url, key, project, export_id = (
        target["host"],
        target["api_key"],
        target["project_id"],
        target["batch_export_id"],
    )
    # A home of its own: the DAG runs above registered every example DAG, paused.
    logs = home / "components"
    logs.mkdir(parents=True)
    processes = Processes(logs, airflow_env(home, events_dags(home), url, key, project))
    processes.env["POSTHOG_BATCH_EXPORT_ID"] = export_id
    try:
        # The DAGs above read runs too: only the watcher's reads may count from here on.
        httpx.delete(f"{url}/_emulator/requests").raise_for_status()
        client = start_airflow(processes, str(BIN / "airflow"), migrated)
        wait_for("the DAG", lambda: client.get(f"/api/v2/dags/{EVENTS_DAG}").status_code == 200, 120)
        wait_for("the watcher", lambda: watcher_polls(url, export_id) >= 2, 120)
        print(f"    watching batch export {export_id}: runs that finished before now do not count")
        for number in range(1, runs + 1):
            backfill = finish_a_run(url, key, project, export_id, hours_ago=number + 1)
            run = wait_for(
                "the run to finish",
                lambda backfill=backfill: next(
                    (
                        r
                        for r in backfill_runs(url, key, project, export_id, backfill)
                        if r["status"] == "Completed"
                    ),
                    None,
                ),
                60,
            )
            print(f"    PostHog finished run {run['id']} ({run['records_completed']} records)")
            dag_run = wait_done(client, number)[-1]
            payloads = ", ".join(p["run_id"] for p in dag_run["payloads"] or [])
            print(
                f"      -> {EVENTS_DAG} run {dag_run['dag_run_id']}: {dag_run['state']}, read run {payloads}"
            )
        took = time.monotonic() - started
        print(f"    {EVENTS_DAG}: {runs} DAG runs for {runs} finished runs in {took:.0f} s")
        return True
    except (AssertionError, RuntimeError) as error:
        print(f"    {EVENTS_DAG}: FAILED ({error})")
        for name in ("scheduler", "triggerer"):
            print(processes.output(name)[-3000:])
        return False
    finally:
        processes.stop_all()


def _snapshot(target: dict) -> dict:
    """What the DAGs touch, read through the provider's own hook."""
    from airflow_provider_phenv.hooks.posthog import PostHogHook
    from airflow_provider_phenv.operators.dashboards import access_rules

    name = target["conf"]["posthog_dashboard_provisioning"].get("dashboard_name", "Pipeline health")
    project = target["project_id"]
    export_id = target["batch_export_id"]
    with PostHogHook(DEMO_CONN_ID) as hook:
        export = hook.get_batch_export(export_id, project_id=project)
        backfills = hook.list_batch_export_backfills(export_id, project_id=project)
        dashboards = [d for d in hook.list_dashboards(search=name, project_id=project) if d["name"] == name]
        emails = {m["id"]: m["user"].get("email") for m in hook.list_organization_members(project_id=project)}
        access = {}
        for d in dashboards:
            rules = hook.list_dashboard_access_controls(d["id"], project_id=project)
            default, members = access_rules(rules)
            access[d["id"]] = {
                "default": default or rules.get("default_access_level"),
                "members": {emails.get(member, member): level for member, level in members.items()},
            }
        return {
            "export": {key: export.get(key) for key in ("id", "name", "paused", "last_paused_at")},
            "backfills": [
                {key: backfill.get(key) for key in ("id", "status", "start_at", "end_at", "progress")}
                for backfill in backfills
            ],
            "dashboards": [
                {
                    "id": d["id"],
                    "name": d["name"],
                    "restriction_level": d.get("restriction_level"),
                    "url": hook.ui_url(project, f"dashboard/{d['id']}"),
                }
                for d in dashboards
            ],
            "access": access,
        }


def _destination_test(home: Path) -> list[dict] | None:
    """The steps the maintenance DAG's destination test returned (its XCom), if it ran."""
    try:
        with sqlite3.connect(home / "airflow.db") as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                "ORDER BY timestamp DESC LIMIT 1",
                ("posthog_batch_export_maintenance", "test_destination"),
            ).fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    value = json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]
    return value if isinstance(value, list) else None


def _report(before: dict, after: dict, steps: list[dict] | None) -> None:
    _step("What changed in PostHog (before -> after)", "")
    export, old = after["export"], before["export"]
    print(f"    batch export {export['id']} ({export['name']}):")
    if export["last_paused_at"] != old["last_paused_at"]:
        now = "paused" if export["paused"] else "running again"
        print(
            f"      paused at {export['last_paused_at']}, then unpaused with a backfill: "
            f"{'paused' if old['paused'] else 'running'} before -> {now} after"
        )
    else:
        print(f"      not paused by this run (paused: {old['paused']} -> {export['paused']})")
    if steps is not None:
        passed = sum(1 for step in steps if step.get("status") in ("Passed", "Skipped"))
        print(f"      destination test: {passed} of {len(steps)} steps passed or skipped")
        for step in steps:
            message = f": {step['message']}" if step.get("message") else ""
            print(f"        step {step.get('step')} {step.get('name')!r}: {step.get('status')}{message}")
    old_backfills = {backfill["id"] for backfill in before["backfills"]}
    for backfill in after["backfills"]:
        if backfill["id"] not in old_backfills:
            runs = (backfill["progress"] or {}).get("total_runs", "?")
            print(
                f"      backfill {backfill['id']} {backfill['start_at']} - {backfill['end_at']}: "
                f"{backfill['status']}, {runs} run(s)"
            )
    old_ids = {d["id"] for d in before["dashboards"]}
    for dashboard in after["dashboards"]:
        state = "existed before" if dashboard["id"] in old_ids else "created"
        print(f"    dashboard {dashboard['id']} {dashboard['name']!r} ({state}): {dashboard['url']}")
        old = before["access"].get(dashboard["id"], {"default": None, "members": {}})
        new = after["access"][dashboard["id"]]
        print(f"      restriction level {dashboard['restriction_level']}; access (before -> after):")
        print(f"        everyone else: {old['default'] or '-'} -> {new['default']}")
        for person in sorted({*old["members"], *new["members"]}):
            print(f"        {person}: {old['members'].get(person, '-')} -> {new['members'].get(person, '-')}")


def _two_hours_ago() -> str:
    from datetime import datetime, timedelta, timezone

    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    return hour.isoformat()


def _step(title: str, detail: object) -> None:
    print(f"==> {title} {detail}".rstrip(), flush=True)


def _run(command: list[str], env: dict, *, quiet: bool = False, timeout: int = 120) -> int:
    """Run a command; its output goes to a log file and is shown only when it fails."""
    with tempfile.TemporaryFile("w+") as log:
        try:
            finished = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            code = finished.returncode
        except subprocess.TimeoutExpired:
            code = 124
        if code != 0 or (not quiet and os.environ.get("DEMO_VERBOSE")):
            log.seek(0)
            print(log.read()[-20000:])
        return code


if __name__ == "__main__":
    sys.exit(main())
