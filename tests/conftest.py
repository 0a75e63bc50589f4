"""
Shared test setup: an isolated Airflow home, the PostHog emulator on a free port, a
``posthog_default`` connection pointing at it, and the two test tiers.

The environment is set before anything imports Airflow, so no test touches ~/airflow.

Tiers. A test is *slow* when it carries one of ``SLOW_MARKERS``: the directories in
``DIRECTORY_MARKERS`` mark every test in them, and single slow tests elsewhere carry
``@pytest.mark.slow``. Plain ``pytest`` (and ``scripts/test.sh``) deselects slow tests; they run
when any of these holds:

- ``--all`` is given (``scripts/test.sh --all``, what CI runs);
- ``-m`` is given: the marker expression decides alone (``pytest -m e2e``, ``pytest -m "not ui"``);
- the command line names the test's file, or a node in it (``pytest tests/e2e/test_demo.py``,
  ``pytest tests/test_provider_info.py::test_x``), or a directory inside a slow directory
  (``pytest tests/e2e``): naming a slow test is asking for it.

Naming a directory that only contains some slow tests (``pytest tests``) still leaves those out;
the summary line says how many were deselected.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import sys
import tempfile
from pathlib import Path

from phenv_emulator.testing import remove_at_exit  # imports no Airflow: AIRFLOW_HOME is still open

ROOT = Path(__file__).resolve().parent.parent
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="phenv-airflow-home-")
    atexit.register(remove_at_exit, os.environ["AIRFLOW_HOME"], os.getpid())
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")

import pytest  # noqa: E402

from tests.helpers.emulator import connection_json  # noqa: E402

# Every test under these directories (relative to tests/) gets the marker.
DIRECTORY_MARKERS = {
    "e2e": "e2e",
    "e2e_scheduler": "e2e",
    "packaging": "packaging",
    "ui": "ui",
    "benchmarks": "bench",
}
SLOW_MARKERS = frozenset({"e2e", "packaging", "ui", "bench", "slow"})
TESTS = Path(__file__).resolve().parent
_DESELECTED = pytest.StashKey[int]()
_COLLECTED = pytest.StashKey[list]()
_SUMMARY = pytest.StashKey[tuple]()


def pytest_configure(config):
    # e2e and packaging are declared in pyproject.toml; the other tiers here, next to their rule.
    for line in (
        "ui: starts Airflow's api-server or CLI to check the connection form (tests/ui)",
        "bench: runs the benchmarks at their smoke size (tests/benchmarks)",
        "slow: a single test elsewhere that takes about a second or more (a subprocess importing Airflow)",
        "posthog(source, endpoint): a conformance case and the PostHog test it is from (tests/conformance)",
    ):
        config.addinivalue_line("markers", line)


def pytest_addoption(parser):
    parser.addoption(
        "--all",
        action="store_true",
        dest="phenv_all",
        help="run every tier, including the slow tests (markers: " + ", ".join(sorted(SLOW_MARKERS)) + ")",
    )
    parser.addoption(
        "--conformance-report",
        action="store_true",
        help="after the run, count the collected conformance cases per endpoint and PostHog test file",
    )


def _named_on_command_line(config) -> tuple[set[Path], list[Path]]:
    """The files named on the command line, and the named directories inside a slow directory."""
    files: set[Path] = set()
    slow_dirs: list[Path] = []
    slow_roots = [TESTS / name for name in DIRECTORY_MARKERS]
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path.is_file():
            files.add(path)
        elif path.is_dir() and any(path == root or root in path.parents for root in slow_roots):
            slow_dirs.append(path)
    return files, slow_dirs


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.path.resolve()
        if TESTS in path.parents and path.relative_to(TESTS).parts[0] in DIRECTORY_MARKERS:
            item.add_marker(DIRECTORY_MARKERS[path.relative_to(TESTS).parts[0]])
    config.stash[_COLLECTED] = list(items)
    if config.getoption("phenv_all") or config.getoption("markexpr"):
        return
    files, slow_dirs = _named_on_command_line(config)
    keep, slow = [], []
    for item in items:
        path = item.path.resolve()
        named = path in files or any(folder in path.parents for folder in slow_dirs)
        is_slow = any(item.get_closest_marker(name) for name in SLOW_MARKERS)
        (slow if is_slow and not named else keep).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = keep
        config.stash[_DESELECTED] = len(slow)
    config.stash[_COLLECTED] = list(items)


def _conformance_counts(items) -> dict[str, dict[str, int]]:
    """Conformance cases per endpoint and per PostHog test file."""
    counts: dict[str, dict[str, int]] = {"endpoint": {}, "PostHog test file": {}}
    for item in items:
        mark = item.get_closest_marker("posthog")
        if mark is None:
            continue
        source = mark.kwargs["source"].split("::")[0]  # the PostHog test file, not one test of it
        for name, key in (("endpoint", mark.kwargs["endpoint"]), ("PostHog test file", source)):
            counts[name][key] = counts[name].get(key, 0) + 1
    return counts


def pytest_sessionfinish(session):
    # An xdist worker collects and deselects; the controller prints the summary (pytest_testnodedown).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["phenv_deselected"] = session.config.stash.get(_DESELECTED, 0)
        workeroutput["phenv_conformance"] = _conformance_counts(session.config.stash.get(_COLLECTED, []))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # Every worker collects the same tests: the first one to finish speaks for all.
    output = getattr(node, "workeroutput", {})
    if "phenv_deselected" in output and _SUMMARY not in node.config.stash:
        node.config.stash[_SUMMARY] = (output["phenv_deselected"], output["phenv_conformance"])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    summary = config.stash.get(_SUMMARY, None)
    if summary is None:  # no xdist workers: this process collected
        summary = (config.stash.get(_DESELECTED, 0), _conformance_counts(config.stash.get(_COLLECTED, [])))
    count, conformance = summary
    if config.getoption("conformance_report"):
        terminalreporter.write_sep("-", f"conformance cases: {sum(conformance['endpoint'].values())}")
        for name, counts in conformance.items():
            for key, cases in sorted(counts.items()):
                terminalreporter.write_line(f"{cases:4d}  {name} {key}")
    if count:
        terminalreporter.write_line(
            f"{count} slow tests deselected (e2e, packaging, ui, bench, slow): "
            "scripts/test.sh --all (or pytest --all) runs them"
        )


@pytest.fixture(scope="session")
def emulator_server():
    """One emulator for the whole session; tests get it reset through ``emulator``."""
    from phenv_emulator import PostHogEmulator

    server = PostHogEmulator(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server):
    """The emulator with its seed data restored, no faults and an empty request log."""
    emulator_server.reset()
    return emulator_server


#: How late a backfill's row shows after PostHog's 201 in the provider's tests: late, as in
#: PostHog, but shorter than the emulator's realistic default, to keep the tests quick. The
#: emulator's and the conformance tests keep the emulator's own default.
ROW_DELAY = 0.1


@pytest.fixture(autouse=True)
def late_backfill_rows(request):
    if "emulator" in request.fixturenames and request.path.parent.name not in ("emulator", "conformance"):
        request.getfixturevalue("emulator").state.set_switches(backfill_row_delay=ROW_DELAY)


@pytest.fixture
def in_order_logs(emulator):
    """The emulator with log entries visible exactly at their timestamps.

    Today's PostHog (and so the emulator by default) reveals entries a few seconds late and out of
    order (docs/posthog-api.md §6.3); a test whose expectation depends on the order asks for this.
    """
    emulator.state.set_switches(log_delay=0)
    return emulator


@pytest.fixture
def build(request, emulator) -> str:
    """The emulator playing one PostHog build: ``"today"`` or an older-build switch's name.

    Parametrize it indirectly with ``tests.helpers.builds.builds(...)``; unparametrized it is today's.
    """
    name = getattr(request, "param", "today")
    emulator.state.set_switches([] if name == "today" else [name])
    return name


@pytest.fixture
def posthog_conn(emulator, monkeypatch) -> None:
    """Point ``posthog_default`` at the (reset) emulator. Tests that use the emulator itself ask
    for ``emulator`` as well: one name per thing."""
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection_json(emulator))


@pytest.fixture(scope="session")
def airflow_cli() -> str:
    """The ``airflow`` command of the virtual environment running the tests."""
    path = shutil.which("airflow", path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip("the airflow command is not installed next to this Python")
    return path


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory, airflow_cli) -> Path:
    """A database ``airflow db migrate`` made, to copy into the Airflow home of each test that starts
    Airflow's components (:func:`tests.helpers.airflow_stack.prepare_db`): one migration per run,
    shared by the xdist workers, whose base temporary directories have the run's one parent."""
    from tests.helpers.airflow_stack import prepare_db

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    database = root / "migrated-airflow.db"
    with open(root / "migrated-airflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the one migrating
        if not database.exists():
            home = root / "migrated-airflow-home"
            env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
            env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
            prepare_db(env, airflow_cli)
            (home / "airflow.db").replace(database)
    return database


def pytest_unconfigure(config):
    # After Airflow has run DAGs in-process, interpreter shutdown spends seconds in garbage
    # collection of objects that are about to vanish anyway; freezing them skips that work.
    import gc

    gc.freeze()
