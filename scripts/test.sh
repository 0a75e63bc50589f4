#!/usr/bin/env bash
# The test command: create the virtual environment if needed, lint and type-check, run the tests.
#   scripts/test.sh                  # fast tier (~35 s on 2 cores): ruff, mypy, every test not marked slow
#   scripts/test.sh --all            # every tier (~10 min on 2 cores): adds the e2e DAG runs, the scheduler/
#                                    # triggerer run, packaging, the connection-form UI checks, the
#                                    # benchmark smoke run and the single slow tests
# Other arguments go to pytest: scripts/test.sh -k retries, scripts/test.sh --all -k demo.
# The tiers are pytest markers (e2e, packaging, ui, bench, slow; see tests/conftest.py), so plain
# pytest behaves the same, and naming a slow test file on the command line runs it.
#   AIRFLOW_VERSION=3.1.8 VENV=.venv-3.1 scripts/test.sh --all    # against another Airflow release
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
VENV=${VENV:-.venv}
# Bytecode caches, pytest's rewritten test modules among them: with PYTHONDONTWRITEBYTECODE set
# (some machines set it), every run and every Airflow subprocess recompiles the tests and sources.
unset PYTHONDONTWRITEBYTECODE
"$VENV/bin/ruff" check .
# mypy runs beside pytest: the tests spend most of their time waiting on sockets and timers.
mypy_log=$(mktemp)
trap 'rm -f "$mypy_log"' EXIT
"$VENV/bin/mypy" >"$mypy_log" 2>&1 &
mypy_pid=$!
# pytest exits 5 when no test was collected or all were deselected, so "nothing ran" fails too.
# A test stuck for 10 minutes prints every thread's stack (faulthandler), and a run that takes
# longer than 40 minutes is stopped: a hang fails CI with a trace instead of eating its time.
status=0
# The tests run in one worker process per core (pytest-xdist), a test file to a worker: most of their
# time is spent waiting. `scripts/test.sh -n 0` runs them in this process (for -s or --pdb).
timeout --signal=INT --kill-after=60 2400 \
  "$VENV/bin/python" -m pytest -o faulthandler_timeout=600 -n auto --dist loadfile "$@" || status=$?
if ! wait "$mypy_pid"; then
  [ "$status" -ne 0 ] || status=1  # a type error fails the run even when every test passed
fi
cat "$mypy_log"
exit "$status"
