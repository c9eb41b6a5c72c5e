#!/usr/bin/env bash
# The test command: lint, type-check, then every test (unit, integration on the real local
# stack started once for the run, end to end). pytest's "no tests ran" (exit 5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export FRAUD_STATE_DIR="${FRAUD_STATE_DIR:-$PWD/.fraud-test}"
.venv/bin/ruff check .
.venv/bin/mypy .
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test: pytest ran no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
