#!/usr/bin/env bash
# Refreshes docs/connection-form.png (the README's picture of Airflow's Add Connection form with
# PostHog chosen). Not run in CI. Needs Debian's chromium and chromium-driver packages; prepares
# .venv (scripts/venv.sh) and a separate .venv-docs with Selenium on first use. See the .py file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
exec "${PYTHON:-python3}" scripts/screenshot_connection_form.py "$@"
