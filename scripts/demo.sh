#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then run the offline demo. Usage: bash scripts/demo.sh [demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/mono-metric demo --overwrite "$@"   # the demo replaces its own earlier results (outputs/demo)
