#!/usr/bin/env bash
# The whole device check in one call of the device tool, on a lent GPU machine:
#   bash scripts/gpu_wheels.sh                      # here, once: wheels into .whl/
#   run(command="bash bench/gpu_run.sh", carry=[".whl"], timeout_s=540)
# Installs the carried wheels (SpikingJelly and loguru, absent from the device image) into
# /tmp/site, then runs bench/gpu_check.sh with the machine's python3 and writes its full
# log to $OUT/gpu_check.log (what comes back). Arguments go on to gpu_check.sh
# (`PYTHON=.venv/bin/python bash bench/gpu_run.sh --cpu` rehearses it here).
set -u -o pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
LOG="${OUT:-${TMPDIR:-/tmp}}/gpu_check.log"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$LOG"
bash bench/gpu_check.sh "$@" 2>&1 | tee -a "$LOG"
