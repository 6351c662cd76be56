#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv, then run pytest. Usage: bash scripts/test.sh [pytest options]
# Without options it runs the default suite (tests marked slow excluded: long loops, 160-case fuzzing, many
# kill points, the report in Chromium); `bash scripts/test.sh -m slow` runs those, `bash scripts/test.sh tests/`
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if [ $# -eq 0 ]; then
    set -- -m "not slow"
fi
exec .venv/bin/python -m pytest -q "$@"
