#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv, then run pytest. Usage: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
