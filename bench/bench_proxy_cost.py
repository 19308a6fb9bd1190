"""Search wall time on 10%, 20%, 50% and 100% of the training data (the proxy-data claim).

Chapter 3's point is that a search on a proxy subset costs in proportion to its size. This
runs the same DARTS search (``nasforge.search.loop.run_search``, tiny settings on the
embedded digits) on random subsets of each size — which examples are chosen does not
change the cost; selecting them is timed in ``bench_select.py`` — and prints each run's
search seconds (the loop's own timer: training steps plus the per-epoch evaluation) and
total wall time (with start-up), both as a ratio to the full-data run beside the ideal
ratio (the fraction). No assertions about wall-clock time.

    .venv/bin/python bench/bench_proxy_cost.py [--epochs 2] [--channels 8] [--layers 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from nasforge.config import load_config
from nasforge.data import load_dataset, write_index_file
from nasforge.search.loop import run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.1,0.2,0.5,1.0")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--algo", default="darts")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fractions = [float(f) for f in args.fractions.split(",")]
    n = len(load_dataset("digits", None).train)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in fractions:
            k = max(2, round(fraction * n))
            proxy = Path(tmp) / f"proxy-{fraction:g}.txt"
            write_index_file(proxy, torch.randperm(n, generator=torch.Generator().manual_seed(0))
                             [:k].sort().values)
            cfg = load_config(None, [
                "data.dataset=digits", f"data.proxy={proxy}", f"search.algo={args.algo}",
                f"search.epochs={args.epochs}", f"search.channels={args.channels}",
                f"search.layers={args.layers}", f"search.batch_size={args.batch}",
                "search.crop_pad=1", "search.flip=false", "run.progress=false",
                f"run.device={args.device}"])
            start = time.perf_counter()
            result = run_search(cfg, Path(tmp) / f"run-{fraction:g}", force=True)
            rows.append((fraction, k, result["cost"]["seconds"], time.perf_counter() - start))
    full = next(r for r in rows if r[0] == 1.0) if 1.0 in fractions else rows[-1]
    print(f"{args.algo} search on digits ({n} training images), C={args.channels}, "
          f"{args.layers} cells, batch {args.batch}, {args.epochs} epochs, {args.device}, "
          f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'data':>6}{'images':>8}{'search s':>10}{'x full':>8}{'wall s':>8}{'x full':>8}"
          f"{'ideal':>7}")
    for fraction, k, seconds, wall in rows:
        print(f"{fraction:>6.0%}{k:>8}{seconds:>10.2f}{seconds / full[2]:>8.2f}{wall:>8.2f}"
              f"{wall / full[3]:>8.2f}{k / full[1]:>7.2f}")


if __name__ == "__main__":
    main()
