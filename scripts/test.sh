#!/usr/bin/env bash
# The test command: create the virtual environment if needed, lint and type-check, run every test.
# Arguments go to pytest, e.g. scripts/test.sh -k retries
#   AIRFLOW_VERSION=3.1.8 VENV=.venv-3.1 scripts/test.sh    # against another Airflow release
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest "$@"
