"""CUDA smoke check of the search and retrain paths (run on a GPU machine, ~1 minute).

Runs a first- and a second-order DARTS search epoch and a retrain epoch on digits upscaled
to 32×32 with bf16 autocast, fp16 autocast and channels_last, with CUDA's sync-debug mode
warning on host synchronisation, and prints what each produced.

    PYTHONPATH=src python3 scripts/gpu_check.py OUT_DIR
"""

import json
import sys
import time
import warnings
from pathlib import Path

import torch

from nasforge.config import load_config
from nasforge.search.loop import run_search
from nasforge.spaces.darts.genotype import load_genotype
from nasforge.train import run_train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check")
assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name())
base = ["data.upscale=32", "run.progress=false", "search.epochs=1", "search.channels=16",
        "search.layers=8", "train.epochs=1", "train.channels=36", "train.layers=20"]
report = {}
for name, extra in [("first_bf16", []), ("second_bf16", ["search.order=second"]),
                    ("first_fp16", ["run.amp=fp16"]), ("first_fp32", ["run.amp=fp32"])]:
    cfg = load_config("demo", [*base, *extra])
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_search(cfg, out / name, force=True)
    torch.cuda.synchronize()
    report[name] = {"val_acc": res["val_acc"], "seconds": time.perf_counter() - t0,
                    "warnings": sorted({str(w.message)[:120] for w in caught})[:5]}
    print(name, report[name], flush=True)

cfg = load_config("demo", base)
t0 = time.perf_counter()
res = run_train(cfg, load_genotype("DARTS_V2"), out / "train", force=True)
report["train_bf16_darts_v2"] = {"test_acc": res["test_acc"], "params_m": res["params_m"],
                                 "seconds": time.perf_counter() - t0}
print("train", report["train_bf16_darts_v2"], flush=True)

torch.cuda.set_sync_debug_mode("warn")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run_search(load_config("demo", [*base, "search.epochs=2"]), out / "sync", force=True)
torch.cuda.set_sync_debug_mode(0)
syncs = {}
for w in caught:
    key = str(w.message)[:80]
    syncs[key] = syncs.get(key, 0) + 1
report["sync_warnings_2_epochs"] = syncs
print("syncs", syncs)
(out / "report.json").write_text(json.dumps(report, indent=2))
