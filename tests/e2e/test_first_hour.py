"""
A new user's first hour, run as they would: the README's walk-through pasted into a fresh shell,
and the README's pytest snippet in a fresh project using the provider's pytest plugin (which also
shows a 404 ending a task with ``retries=3`` after one try).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
UNKNOWN_EXPORT = "01900000-0000-7000-8000-00000000dead"

NO_RETRY_DAG = f'''
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator

with DAG(
    dag_id="no_retry",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={{"retries": 3, "retry_delay": timedelta(seconds=0)}},
) as dag:
    PostHogPauseBatchExportOperator(task_id="pause", batch_export_id="{UNKNOWN_EXPORT}")
'''

NO_RETRY_TEST = """
from dags.no_retry import dag


def test_a_404_ends_the_task_after_one_try(posthog_emulator):
    run = dag.test()
    [ti] = run.get_task_instances()
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    pauses = [r.status for r in posthog_emulator.requests if r.path.endswith("/pause/")]
    assert pauses == [404]
"""


def _fresh_env(home: Path) -> dict[str, str]:
    """A shell as a new user has it: the virtualenv on PATH, no Airflow or PostHog settings."""
    return {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        # The checkout under test, ahead of whatever copy the virtualenv has installed.
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
    }


def _blocks(marker: str, language: str) -> list[tuple[str, str]]:
    pattern = rf"<!-- {marker}(?:: (\S+))? -->\n```{language}\n(.*?)```\n"
    return [(match.group(1) or "", match.group(2)) for match in re.finditer(pattern, README, re.DOTALL)]


def test_readme_walkthrough_works_in_a_fresh_shell(tmp_path):
    [(_, script)] = _blocks("walkthrough", "bash")
    # Its own process group, so an emulator left behind by a failing step is stopped too.
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=_fresh_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = shell.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
    done = subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:] + _tail(tmp_path / "my_pause.log")
    assert "export AIRFLOW_CONN_POSTHOG_DEFAULT=" in done.stdout
    assert "alice@example.com  member" in done.stdout
    assert "Connection success!" in done.stdout
    assert "my_pause: success" in done.stdout
    assert "S3 events export paused: True" in done.stdout
    assert "BigQuery events export paused: False" in done.stdout


def test_readme_pytest_snippet_runs_in_a_fresh_project(tmp_path):
    [(_, script)] = _blocks("walkthrough", "bash")
    dag_file = re.search(r"cat > dags/my_pause.py <<'PY'\n(.*?)^PY$", script, re.DOTALL | re.MULTILINE)
    assert dag_file is not None
    files = {"dags/my_pause.py": dag_file.group(1), **dict(_blocks("pytest-file", "python"))}
    assert set(files) == {"dags/my_pause.py", "conftest.py", "tests/test_my_pause.py"}
    files["dags/no_retry.py"] = NO_RETRY_DAG
    files["tests/test_no_retry.py"] = NO_RETRY_TEST
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=_fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "2 passed" in done.stdout


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""
