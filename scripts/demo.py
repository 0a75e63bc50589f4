"""
Run the example DAGs end to end with ``airflow dags test`` and show what changed in PostHog.

Without settings it starts the bundled PostHog emulator, so no account is needed. With
``POSTHOG_HOST``, ``POSTHOG_API_KEY``, ``POSTHOG_PROJECT_ID`` and ``POSTHOG_BATCH_EXPORT_ID`` set,
the same DAGs run against that PostHog instead (``POSTHOG_COLLABORATORS``, a comma-separated list
of user UUIDs, and ``POSTHOG_DASHBOARD_NAME`` are optional there).

Run it through ``scripts/demo.sh``, which prepares the virtual environment first.
Exits non-zero when a DAG run fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAGS = (
    "posthog_batch_export_maintenance",
    "posthog_backfill",
    "posthog_export_downstream",
    "posthog_dashboard_provisioning",
)
DAG_TIMEOUT = 300


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="phenv-demo-airflow-"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
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
        os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = env["AIRFLOW_CONN_POSTHOG_DEFAULT"]
        _step("Preparing a throw-away Airflow home with SQLite", home)
        _run([str(BIN / "airflow"), "db", "migrate"], env, quiet=True)
        before = _snapshot(target)
        failed = []
        for dag_id in DAGS:
            _step("Running DAG", dag_id)
            conf = json.dumps(target["conf"].get(dag_id, {}))
            command = [str(BIN / "airflow"), "dags", "test", dag_id]
            if dag_id == "posthog_export_downstream":
                command.append(_two_hours_ago())  # an hourly interval PostHog has exported by now
            command += ["-c", conf]
            code = _run(command, env, timeout=DAG_TIMEOUT)
            print(f"    {dag_id}: {'success' if code == 0 else f'FAILED (exit code {code})'}")
            if code != 0:
                failed.append(dag_id)
        _report(before, _snapshot(target))
        return 1 if failed else 0
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _real_posthog() -> dict:
    required = ("POSTHOG_HOST", "POSTHOG_PROJECT_ID", "POSTHOG_BATCH_EXPORT_ID")
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        sys.exit(f"POSTHOG_API_KEY is set, so the demo runs against PostHog; also set {', '.join(missing)}.")
    collaborators = [part.strip() for part in os.environ.get("POSTHOG_COLLABORATORS", "").split(",")]
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
                "collaborators": [uuid for uuid in collaborators if uuid],
            },
        },
    }


def _start_emulator() -> tuple[subprocess.Popen, dict]:
    from airflow_provider_phenv.emulator import SEED

    _step("Starting the bundled PostHog emulator", "(no account needed)")
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_phenv.emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"(http://\S+)\s+api_key=(\S+)\s+project_id=(\S+)", line)
    if not match:
        process.terminate()
        sys.exit(f"The emulator did not start: {line!r}")
    print("    " + line.strip().split("  ")[0])
    url, api_key, project_id = match.groups()
    return process, {
        "host": url,
        "api_key": api_key,
        "project_id": project_id,
        "batch_export_id": SEED.s3_export_id,
        "conf": {"posthog_batch_export_maintenance": {}, "posthog_dashboard_provisioning": {}},
    }


def _snapshot(target: dict) -> dict:
    """What the DAGs touch, read through the provider's own hook."""
    from airflow_provider_phenv.hooks.posthog import PostHogHook

    name = target["conf"]["posthog_dashboard_provisioning"].get("dashboard_name", "Pipeline health")
    with PostHogHook() as hook:
        export = hook.get_batch_export(target["batch_export_id"])
        backfills = hook.list_batch_export_backfills(target["batch_export_id"])
        dashboards = [d for d in hook.list_dashboards(search=name) if d["name"] == name]
        collaborators = {
            d["id"]: [c["user"]["email"] for c in hook.list_dashboard_collaborators(d["id"])]
            for d in dashboards
        }
        return {
            "export": {key: export.get(key) for key in ("id", "name", "paused", "last_paused_at")},
            "backfills": [
                {key: backfill.get(key) for key in ("id", "status", "start_at", "end_at", "progress")}
                for backfill in backfills
            ],
            "dashboards": [
                {"id": d["id"], "name": d["name"], "url": hook.ui_url(None, f"dashboard/{d['id']}")}
                for d in dashboards
            ],
            "collaborators": collaborators,
        }


def _report(before: dict, after: dict) -> None:
    _step("What changed in PostHog", "")
    export = after["export"]
    print(f"    batch export {export['id']} ({export['name']}):")
    print(f"      paused: {before['export']['paused']} -> {export['paused']}")
    print(f"      last paused at: {before['export']['last_paused_at']} -> {export['last_paused_at']}")
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
        print(f"      collaborators: {', '.join(sorted(after['collaborators'][dashboard['id']])) or 'none'}")


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
