#!/usr/bin/env bash
# The benchmark command: this provider next to apache-airflow-providers-http, against the bundled
# emulator on 127.0.0.1, in its own virtual environment (.venv-bench).
#   scripts/bench.sh            # full run (~15 min): writes benchmarks/results.json and BENCHMARKS.md
#   scripts/bench.sh --smoke    # tiny sizes (~90 s), results in a temp dir; fails only on a crash
# The provider is installed NON-editable, from a copy of the current tree, on every run: the import
# cost (item 1) is then measured on what `pip install` gives users, with compiled bytecode, and
# never on sources that PYTHONDONTWRITEBYTECODE keeps recompiling.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-.venv-bench}
# The same Airflow release as the project venv, read from scripts/venv.sh so the two never drift.
AIRFLOW_VERSION=${AIRFLOW_VERSION:-$(sed -n 's/^AIRFLOW_VERSION=\${AIRFLOW_VERSION:-\([0-9.]*\)}$/\1/p' scripts/venv.sh)}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.installed-$AIRFLOW_VERSION-$(cksum < pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # (grep drops pip's notes about package index folders that this machine's pip.conf may name)
  "$VENV/bin/python" -m pip install -q --upgrade pip uv 2>&1 | { grep -v "is ignored: it is neither" || true; }
  "$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" --compile-bytecode \
    "apache-airflow==$AIRFLOW_VERSION" apache-airflow-providers-http
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
# A copy keeps build/ and *.egg-info out of the work tree; --reinstall-package rebuilds it each run.
# The emulator (its own distribution, emulator/) is installed beside it, as scripts/venv.sh does.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r pyproject.toml README.md airflow_provider_phenv emulator "$src/"
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" --compile-bytecode --no-deps \
  --reinstall-package airflow-provider-phenv --reinstall-package airflow-provider-phenv-emulator \
  "$src" "$src/emulator"
exec "$VENV/bin/python" -m benchmarks --command "scripts/bench.sh${*:+ $*}" "$@"
