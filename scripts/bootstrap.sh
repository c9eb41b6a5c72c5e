#!/usr/bin/env bash
# Install what the project needs on a fresh machine (Python 3.11, Java 17+, Maven present):
# a virtual environment in .venv with the package and its tools, and Debian's Prometheus.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "bootstrap: Python 3.11 is required (found $("$python_bin" --version 2>&1))." >&2
  exit 1
fi
command -v java >/dev/null 2>&1 || { echo "bootstrap: install Java 17+ (e.g. apt-get install openjdk-17-jre-headless)." >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "bootstrap: install Maven (e.g. apt-get install maven)." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev,compiled]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# kustomize (built from the Go module proxy) renders k8s/ in the tests; skipped without Go.
if command -v go >/dev/null 2>&1; then
  bash scripts/install-kustomize.sh || echo "bootstrap: kustomize not installed; the k8s render tests will skip" >&2
fi

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian's prometheus package"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "bootstrap: install Prometheus first: sudo apt-get install prometheus" >&2
    exit 1
  fi
fi
