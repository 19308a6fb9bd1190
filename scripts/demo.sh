#!/usr/bin/env bash
# Quick start 1: set up and run the end-to-end demo (proxy data, BtNAS search, retrain, then
# AutoSNN, on the embedded digits; about 8 min on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nasforge demo --out "${1:-demo-run}" --force
