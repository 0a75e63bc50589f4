#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and installs the provider
# with its test tools, and the PostHog emulator (its own distribution, in emulator/) beside it. Everything the tests and the demo need is installed here, so a fresh
# machine needs nothing but Python 3.10+.
#   AIRFLOW_VERSION=3.1.8 VENV=.venv-3.1 scripts/venv.sh   # another Airflow release
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.installed-$AIRFLOW_VERSION-$(cat pyproject.toml emulator/pyproject.toml scripts/venv.sh | cksum | cut -d' ' -f1)"
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# (grep drops pip's notes about package index folders that this machine's pip.conf may name)
"$VENV/bin/python" -m pip install -q --upgrade pip uv 2>&1 | { grep -v "is ignored: it is neither" || true; }
# uv resolves and installs about ten times faster than pip. Bytecode is compiled up front
# because PYTHONDONTWRITEBYTECODE may be set, which would make every import recompile.
# Airflow 3.1 sets an attribute on cryptography's MultiFernet, which cryptography 51 (written in
# Rust) refuses: every connection read fails once a fernet key is set. 3.1 gets the last release
# that allows it.
extra=()
case "$AIRFLOW_VERSION" in 3.1.*) extra=("cryptography<51") ;; esac
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" --compile-bytecode \
  "apache-airflow==$AIRFLOW_VERSION" -e ".[test]" -e ./emulator "${extra[@]}"
rm -f "$VENV"/.installed-*
touch "$stamp"
