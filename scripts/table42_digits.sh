#!/usr/bin/env bash
# Table 4.2 at CPU scale: DARTS and BtNAS searched on digits, each derived with top-k for
# k in {10,12,14,16}, every ExtCell retrained with the darts-digits protocol. Prints a table.
# Usage: bash scripts/table42_digits.sh [OUT_DIR]   (about 20 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/table42-digits}"
NF=".venv/bin/nasforge"
mkdir -p "$OUT"
for algo in darts btnas; do
  cfg=darts-digits; [ "$algo" = btnas ] && cfg=btnas-digits
  [ -f "$OUT/$algo/results.json" ] || \
    $NF search --algo "$algo" --config "$cfg" --no-progress --force --out "$OUT/$algo" >/dev/null
  for k in 10 12 14 16; do
    g="$OUT/$algo-k$k.txt"
    $NF derive "$OUT/$algo" --rule topk --k "$k" --out "$g" >/dev/null || { echo "$algo k=$k: no valid cell"; continue; }
    [ -f "$OUT/$algo-k$k-train/results.json" ] || \
      $NF train --genotype "$g" --config darts-digits --no-progress --force --out "$OUT/$algo-k$k-train" >/dev/null
  done
done
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| algorithm | k=10 | k=12 | k=14 | k=16 |")
print("|---|---|---|---|---|")
for algo in ("darts", "btnas"):
    cells = []
    for k in (10, 12, 14, 16):
        f = out / f"{algo}-k{k}-train" / "results.json"
        if f.is_file():
            r = json.loads(f.read_text())
            g = (out / f"{algo}-k{k}.txt").read_text()
            cells.append(f"{r['test_acc']:.2f} ({r['params_m']:.3f}M)")
        else:
            cells.append("–")
    print(f"| {algo} | " + " | ".join(cells) + " |")
PY
