"""
The built wheel and sdist install into a clean virtual environment and register with Airflow.

This is what users get from ``pip install``: no editable install, no source tree on the path, so
package data (``py.typed``) must be inside the wheel. The emulator is its own distribution
(``emulator/``), which the provider's wheel does not carry: Airflow workers never install it.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.processes import run_ok

ROOT = Path(__file__).resolve().parents[2]


def _uv_install(python: Path, *requirements: str | Path) -> None:
    """Install into the venv of ``python`` with uv (installed with the test tools), which resolves
    in seconds; the tests pin the same Airflow as the test run."""
    run_ok(sys.executable, "-m", "uv", "pip", "install", "-q", "--python", python, *requirements)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run_ok(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT)
    run_ok(sys.executable, "-m", "build", "--wheel", "--outdir", out / "emulator", ROOT / "emulator")
    return out


def test_wheel_holds_the_package_data(dist):
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_provider_phenv/py.typed" in names
    assert not [name for name in names if "emulator" in name or name.endswith("testing.py")]
    assert all(name.startswith(("airflow_provider_phenv/", "airflow_provider_phenv-")) for name in names)
    emulator = zipfile.ZipFile(next((dist / "emulator").glob("*.whl"))).namelist()
    assert "phenv_emulator/__main__.py" in emulator and "phenv_emulator/testing.py" in emulator
    assert not [name for name in emulator if name.startswith("airflow_provider_phenv/")]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "apache_airflow_provider" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert next(dist.glob("*.tar.gz")).name.startswith("airflow_provider_phenv-")


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_installs_into_a_clean_venv_and_registers(dist, tmp_path, kind):
    import airflow

    venv = tmp_path / "venv"
    run_ok(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    artifact = next(dist.glob(f"*.{kind}"))
    _uv_install(python, f"apache-airflow=={airflow.__version__}", artifact)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    listed = run_ok(venv / "bin" / "airflow", "providers", "list", "-o", "plain", cwd=tmp_path, env=env)
    assert re.search(r"airflow-provider-phenv\s+.*0\.\d+\.\d+", listed), listed
    hooks = run_ok(venv / "bin" / "airflow", "providers", "hooks", "-o", "plain", cwd=tmp_path, env=env)
    assert re.search(r"posthog\s+airflow_provider_phenv\.hooks\.posthog\.PostHogHook", hooks), hooks
    location = run_ok(
        python, "-c", "import airflow_provider_phenv as p; print(p.__file__)", cwd=tmp_path, env=env
    )
    assert str(venv) in location
    # The emulator installs beside it, as the README says, and serves from the command line.
    _uv_install(python, *(dist / "emulator").glob("*.whl"))
    usage = run_ok(python, "-m", "phenv_emulator", "--help", cwd=tmp_path, env=env)
    assert "--port" in usage
