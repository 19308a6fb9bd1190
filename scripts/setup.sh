#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install nasforge with every optional dependency.
# torch is pinned in the same pip command so the resolver keeps the CPU build on CPU machines.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3.13 python3; do
      if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
    done
  fi
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "nasforge needs Python >= 3.11"'
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  "torch==${NASFORGE_TORCH:-2.13.0}" -e ".[all]"
