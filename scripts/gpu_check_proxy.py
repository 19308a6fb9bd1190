"""CUDA check of the proxy-data paths (run on a GPU machine, about a minute).

Entropy scoring with bf16 autocast and channels_last, greedy k-center on 50K × 64-d
features on the device (and its agreement with the CPU on a smaller set), P1 selection of
5K of 50K, and a search on an on-the-fly P1 proxy. Prints and writes a JSON report.

    PYTHONPATH=src python3 scripts/gpu_check_proxy.py OUT_DIR [--device cuda]
"""

import argparse
import json
import time
from pathlib import Path

import torch

from nasforge.config import load_config
from nasforge.proxy.scoring import score_entropy
from nasforge.proxy.selectors import greedy_k_center, k_center_radius, select
from nasforge.search.loop import run_search

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", default="gpu-check-proxy")
ap.add_argument("--device", default="cuda")
ap.add_argument("--n", type=int, default=50_000)
ap.add_argument("--k", type=int, default=5_000)
args = ap.parse_args()
out = Path(args.out)
dev = torch.device(args.device)
if dev.type == "cuda":
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
report: dict = {"device": str(dev), "torch": torch.__version__}

# 1. entropy scoring on the device (bf16 autocast where CUDA)
cfg = load_config("demo", ["data.upscale=32", "entropy.epochs=3", "entropy.milestones=[2,3]",
                           "run.progress=false", f"run.device={args.device}"])
t0 = time.perf_counter()
res = score_entropy(cfg, out / "digits.tsv", force=True)
report["entropy"] = {k: res[k] for k in ("train_acc", "test_acc", "mean_entropy", "examples")}
report["entropy"]["seconds"] = time.perf_counter() - t0
print("entropy", report["entropy"], flush=True)

# 2. greedy k-center: 50K x 64 on the device; CPU agreement on 5K x 64
gen = torch.Generator().manual_seed(0)
feats = torch.randn(args.n, 64, generator=gen)
greedy_k_center(feats[:2000], 10, torch.Generator().manual_seed(0), dev)  # warm-up
sync()
t0 = time.perf_counter()
centres = greedy_k_center(feats, args.k, torch.Generator().manual_seed(0), dev)
sync()
report["k_center"] = {"n": args.n, "k": args.k, "seconds": time.perf_counter() - t0,
                      "unique": int(centres.unique().numel()),
                      "radius": k_center_radius(feats, centres)}
small = feats[:5000]
a = greedy_k_center(small, 500, torch.Generator().manual_seed(1), "cpu")
b = greedy_k_center(small, 500, torch.Generator().manual_seed(1), dev)
report["k_center"]["cpu_device_same_first_100"] = bool(torch.equal(a[:100], b[:100]))
report["k_center"]["radius_cpu_vs_device"] = [k_center_radius(small, a), k_center_radius(small, b)]
print("k-center", report["k_center"], flush=True)

# 3. P1: 5K of 50K
ent = torch.rand(args.n, generator=gen, dtype=torch.float64) ** 4 * 2.3
t0 = time.perf_counter()
idx = select("p1", args.k, entropy=ent, seed=0, bin_width=0.5)
report["p1_ms"] = 1000 * (time.perf_counter() - t0)
assert idx.numel() == args.k
print("p1 ms", report["p1_ms"], flush=True)

# 4. a search on an on-the-fly P1 proxy from the list of step 1
cfg = load_config("demo", ["data.upscale=32", "search.epochs=2", "run.progress=false",
                           f"run.device={args.device}", "proxy.method=p1", "proxy.size=0.3",
                           f"proxy.entropy={out / 'digits.tsv'}"])
t0 = time.perf_counter()
res = run_search(cfg, out / "search", force=True)
report["search_p1"] = {"val_acc": res["val_acc"], "cost": res["cost"],
                       "seconds": time.perf_counter() - t0}
print("search", report["search_p1"], flush=True)
(out / "report.json").write_text(json.dumps(report, indent=2, default=str))
