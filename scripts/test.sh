#!/usr/bin/env bash
# The test command: create the virtual environment if needed, lint, and run every test.
# Arguments go to pytest, e.g. scripts/test.sh -k retries
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
