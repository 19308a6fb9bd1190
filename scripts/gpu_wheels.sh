#!/usr/bin/env bash
# Download the wheels a lent GPU machine lacks into .whl/ (ignored by git), for
# bench/gpu_run.sh. The device image has torch, numpy, scipy, scikit-learn, pyyaml, tqdm
# and matplotlib but not SpikingJelly, whose logger needs loguru. Run once, here:
#   bash scripts/gpu_wheels.sh
# then, with the device tool: run(command="bash bench/gpu_run.sh", carry=[".whl"]).
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PY=${PYTHON:-python3}
SJ=$("$PY" -c "import importlib.metadata as m; print(m.version('spikingjelly'))" 2>/dev/null \
     || echo 2.0.0)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 -d .whl "spikingjelly==$SJ" loguru
ls -1 .whl
