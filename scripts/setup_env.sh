#!/usr/bin/env bash
# Create .venv with everything mono_metric needs (system library included). Idempotent: reinstalls
# only when pyproject.toml or this script changed. Usage: bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
stamp="$VENV/.installed-$(cat pyproject.toml scripts/setup_env.sh scripts/system_deps.sh | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
bash scripts/system_deps.sh "$PY"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0      # the CPU build; CUDA users may install their own
"$VENV/bin/python" -m pip install --quiet -e '.[test]'
rm -f "$VENV"/.installed-*
touch "$stamp"
