#!/usr/bin/env bash
# One short check of the single-GPU fast paths (about 2-3 minutes on an H200):
#   1. `nasforge bench step` at the thesis configuration (C=16, 8 cells, batch 64, 32x32)
#      with bf16, fp32 and fp16 (GradScaler) autocast, channels_last; plain vs batched
#      mixed ops for DARTS, PC-DARTS and GDAS in both layouts, bf16 and fp32
#      (bench/bench_mixed_op.py: img/s, ratio to plain, peak memory);
#   2. host synchronisations in a DARTS search step (CUDA sync-debug mode; expects none);
#   3. a tiny real search (digits upscaled to 32x32) with run.amp=bf16 and channels_last;
#   4. zero-cost proxy scores on CUDA against the CPU (tests/zc/test_score.py);
#   5. SpikingJelly's neuron kernel on CUDA (fails if it falls back to the torch reference),
#      the SNN super-network multi-step vs single-step benchmark and a 1-epoch
#      `snn supernet` with bf16;
#   6. 1-GPU NCCL DDP: bench/ddp_smoke.py and a 1-process `nasforge search` under torchrun.
# Prints PASS/FAIL/SKIP per check and exits 1 if any failed. Record its output in
# bench/README.md.
#
#   bash bench/gpu_check.sh           # on a machine with a GPU
#   bash bench/gpu_check.sh --cpu     # the same checks, tiny, on the CPU (tests this script)
#
# Python: $PYTHON, else .venv/bin/python, else python3. Optional: GPU_CHECK_COMPILE=1 also
# times `bench step --compile` (compilation takes minutes).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CPU=0
[ "${1:-}" = "--cpu" ] && CPU=1
if [ $CPU = 1 ]; then
  DEV=cpu; BACKEND=gloo
  STEP="--channels 4 --layers 3 --nodes 2 --batch 8 --resolution 8 --steps 2 --warmup 1"
  SEARCH_SETS=(--set search.channels=4 --set search.layers=3 --set search.nodes=2
               --set search.batch_size=32)
  SNN="--channels 4 --timesteps 2 --batch 8 --steps 1 --rounds 1"
else
  DEV=cuda; BACKEND=nccl
  STEP="--channels 16 --layers 8 --batch 64 --resolution 32 --steps 10 --warmup 3"
  SEARCH_SETS=(--set search.channels=16 --set search.layers=8 --set data.upscale=32)
  SNN="--channels 16 --timesteps 8 --batch 64 --steps 5 --rounds 2"
fi
NF=("$PY" -m nasforge.cli)
FAILED=0

run() {  # run NAME CMD...: print its output's tail, then PASS or FAIL
  local name=$1; shift
  echo "== $name: $*"
  local out rc
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v -e "Triton not available" | tail -n 25
  if [ $rc = 0 ] && [[ $name == "bench step"* ]]; then  # the JSON contract of `bench step`
    printf '%s\n' "$out" | tail -n 1 | "$PY" -c 'import json, math, sys
r = json.loads(sys.stdin.read())
assert set(r) == {"imgs_per_s", "step_s"}, r
assert all(math.isfinite(v) and v > 0 for v in r.values()), r' || rc=1
  fi
  if [ $rc = 0 ]; then echo "PASS $name"; else echo "FAIL $name (exit $rc)"; FAILED=1; fi
}

echo "== machine"
"$PY" - "$DEV" <<'EOF'
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda)
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --cpu")
    print(torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
EOF
[ $? = 0 ] || { echo "FAIL machine"; exit 1; }

# 1. the core benchmark
for amp in bf16 fp32 fp16; do
  run "bench step $amp" "${NF[@]}" bench step --device $DEV --amp $amp $STEP --json
done
run "bench step bf16 NCHW" "${NF[@]}" bench step --device $DEV --amp bf16 $STEP \
    --no-channels-last --json
# plain vs batched mixed ops (issue 16): img/s, ratio to plain, peak memory per step
if [ $CPU = 1 ]; then
  MIXED="--channels 4 --layers 3 --batch 8 --resolution 8 --rounds 1 --threads 1"
else
  MIXED="--resolution 32 --rounds 3 --steps 5"
fi
for amp in bf16 fp32; do
  [ $CPU = 1 ] && [ $amp = bf16 ] && continue
  run "plain vs batched $amp" "$PY" bench/bench_mixed_op.py --device $DEV --amp $amp $MIXED \
      --channels-last --algos darts,pcdarts,gdas
done
if [ "${GPU_CHECK_COMPILE:-0}" = 1 ]; then
  run "bench step bf16 compiled" "${NF[@]}" bench step --device $DEV --amp bf16 $STEP \
      --compile --warmup 3 --json
fi

# 2. host synchronisations in one DARTS step (expect none), and in a sparse one (GDAS)
run "syncs per DARTS step" "$PY" bench/sync_count.py --device $DEV --amp bf16 --max 0
run "syncs per GDAS step (reported)" "$PY" bench/sync_count.py --algo gdas --device $DEV

# 3. a real search: bf16 + channels_last
run "search bf16 channels_last" "${NF[@]}" search --dataset digits --device $DEV \
    --out "$TMP/search" --no-progress --set search.epochs=1 --set run.amp=bf16 \
    --set run.channels_last=true "${SEARCH_SETS[@]}"

# 4. zero-cost proxies on the device (the CUDA test is skipped on the CPU)
run "zc proxies cuda vs cpu" "$PY" -m pytest -q -p no:cacheprovider tests/zc/test_score.py \
    -k "cuda or device"

# 5. spiking networks on the device
if [ $CPU = 1 ]; then
  echo "SKIP neuron kernel (CPU: SpikingJelly runs its torch reference)"
else
  run "neuron kernel" "$PY" - <<'EOF'
import torch
from nasforge.snn.neuron import neuron_implementation
name = neuron_implementation(torch.device("cuda"))
print("SpikingJelly PLIF kernel on CUDA:", name)
raise SystemExit(0 if name in ("cuda", "triton") else "fell back to the torch reference")
EOF
fi
run "snn step multi vs single" "$PY" bench/bench_snn_step.py --device $DEV $SNN
run "snn supernet bf16" "${NF[@]}" snn supernet --dataset digits --device $DEV \
    --channels 4 --timesteps 2 --epochs 1 --out "$TMP/sn" --no-progress --set run.amp=bf16

# 6. DDP on one device
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node=1)
run "ddp smoke $BACKEND" "${TORCHRUN[@]}" bench/ddp_smoke.py --backend $BACKEND --device $DEV
run "ddp search" "${TORCHRUN[@]}" -m nasforge.cli search --dataset digits --device $DEV \
    --out "$TMP/ddp" --no-progress --set search.epochs=1 "${SEARCH_SETS[@]}"

if [ $FAILED = 0 ]; then echo "PASS gpu_check ($DEV)"; else echo "FAIL gpu_check ($DEV)"; fi
exit $FAILED
