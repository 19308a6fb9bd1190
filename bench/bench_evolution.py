"""AutoSNN: evolutionary search time as a fraction of super-network training time.

Trains the super-network (``nasforge.snn.supernet.run_supernet``) for a few epochs and runs
the spike-aware evolutionary search on it (``nasforge.snn.search.run_snn_search``, the
thesis's Algorithm 1 settings: 10 rounds, pool 20, 10 mutations + 10 crossovers) at tiny
settings on the embedded digits, both timed in this run. The search scores each distinct
architecture once, on the 20% validation split, with super-network weights and no
training, so its cost is fixed while the super-network's grows with its epochs: the
fraction is printed for the epochs run here and, from the per-epoch time, for the full
schedule (``--schedule``, the thesis's 600 epochs). No assertions about wall-clock time.

    .venv/bin/python bench/bench_evolution.py [--epochs 3] [--schedule 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from nasforge.config import load_config
from nasforge.snn.search import run_snn_search
from nasforge.snn.supernet import run_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="super-network epochs run here")
    parser.add_argument("--schedule", type=int, default=600,
                        help="epochs of the full super-network schedule to extrapolate to")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = [f"snn.epochs={args.epochs}", f"snn.channels={args.channels}",
            f"snn.timesteps={args.timesteps}", "snn.lams=[-0.08]", "run.progress=false",
            f"run.device={args.device}"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("autosnn-digits", sets)
        start = time.perf_counter()
        supernet = run_supernet(cfg, Path(tmp) / "sn")
        supernet_wall = time.perf_counter() - start
        start = time.perf_counter()
        search = run_snn_search(Path(tmp) / "sn", Path(tmp) / "search", sets)
        search_wall = time.perf_counter() - start
    s = cfg.snn
    per_epoch = supernet["seconds"] / args.epochs
    print(f"AutoSNN on digits: C={args.channels}, T={args.timesteps}, batch {s.batch_size}, "
          f"{supernet['train_examples']} train / {supernet['val_examples']} validation images, "
          f"{args.device}, torch {torch.__version__}, {args.threads} threads")
    print(f"super-network: {args.epochs} epochs, {supernet['seconds']:.2f} s "
          f"({per_epoch:.2f} s/epoch; wall with start-up {supernet_wall:.2f} s)")
    print(f"evolutionary search: {s.rounds} rounds, pool {s.pool}, "
          f"{search['architectures_scored']} architectures scored, {search['seconds']:.2f} s "
          f"(wall with start-up {search_wall:.2f} s) = {search['seconds'] / per_epoch:.2f} "
          "super-network epochs")
    print(f"search / super-network time: {search['seconds'] / supernet['seconds']:.3f} at "
          f"{args.epochs} epochs, {search['seconds'] / (per_epoch * args.schedule):.4f} at "
          f"{args.schedule} epochs")


if __name__ == "__main__":
    main()
