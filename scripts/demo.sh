#!/usr/bin/env bash
# The whole system locally: install, stack up, data, model, dataflow, a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/fraud demo "$@"
