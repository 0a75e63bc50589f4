#!/usr/bin/env bash
# The main job: run the example DAGs end to end against the bundled PostHog emulator (or against
# PostHog when POSTHOG_HOST, POSTHOG_API_KEY, POSTHOG_PROJECT_ID and POSTHOG_BATCH_EXPORT_ID are set)
# and print what changed in PostHog. Creates the virtual environment on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> Checking the virtual environment .venv (the first run creates it: ~15-60 s)"
scripts/venv.sh
exec .venv/bin/python scripts/demo.py "$@"
