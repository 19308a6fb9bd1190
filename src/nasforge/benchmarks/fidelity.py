"""Super-network fidelity: does a search's super-network rank cells as training them does?

Every one-shot search rests on one assumption: a cell's accuracy with weights inherited from
the trained super-network predicts its accuracy when trained alone. In the ``tabular-digits``
space that can be measured for every cell: after a search, each of the 243 normal cells is
run through the super-network with one-hot op weights (the table's fixed reduction cell in
the reduction cells), its accuracy on a held-out split is recorded, and the ranking is
compared with the table's (Kendall τ, Spearman ρ). docs/bench.md shows the results for
DARTS and random search with weight sharing.

BatchNorm: DARTS's search cells hold affine-free BN layers whose running statistics were
collected under mixtures (DARTS) or other paths (random-ws), so by default each cell is
evaluated with batch statistics (``bn="batch"``: train-mode BN on batches of 512, which are
the same fixed batches for every cell); ``bn="running"`` uses the stored running statistics,
as random-ws's own ranking does.
"""

from __future__ import annotations

from math import nan
from pathlib import Path
from typing import Any

import torch

from nasforge.benchmarks.tabular import (
    PROTOCOLS,
    SPACE_NAME,
    TabularBenchmark,
    cell_from_key,
    fixed_reduction_cell,
)
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import CellGenotype, cell_edges

BN_MODES = ("batch", "running")
SPLITS = ("val", "test")


def one_hot(cell: CellGenotype, primitives: tuple[str, ...], nodes: int) -> torch.Tensor:
    """The ``[edges, ops]`` 0/1 op weights that make a search cell compute ``cell``."""
    edges = cell_edges(nodes)
    w = torch.zeros(len(edges), len(primitives))
    for op, inp, node in cell.ops:
        w[edges.index((inp, node)), primitives.index(op)] = 1.0
    return w


def bench_for_dataset(dataset: str) -> str:
    """The tabular benchmark whose table was trained on ``dataset``."""
    names = [n for n, p in PROTOCOLS.items() if p["dataset"] == dataset]
    if not names:
        raise NasforgeError(f"no tabular benchmark was trained on '{dataset}'; the run must have "
                            f"searched one of: "
                            f"{', '.join(sorted(p['dataset'] for p in PROTOCOLS.values()))}")
    return names[0]


def _load_run(run_dir: Path) -> tuple[Any, dict]:
    from nasforge.checkpoint import load_checkpoint
    from nasforge.config import load_config

    if not (run_dir / "config.yaml").is_file():
        raise NasforgeError(f"{run_dir} is not a search run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    if cfg.search.space != SPACE_NAME:
        raise NasforgeError(f"{run_dir} searched the '{cfg.search.space}' space; fidelity is "
                            f"measured in the '{SPACE_NAME}' space, whose cells are all tabulated")
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if state.get("kind", "search") != "search" or "network" not in state:
        raise NasforgeError(f"{run_dir}/checkpoint.pt is not a search checkpoint")
    return cfg, state


def supernet_fidelity(run_dir: str | Path, bench: str | None = None, *, split: str = "val",
                      bn: str = "batch", batch_size: int = 512,
                      progress: bool = False) -> dict[str, Any]:
    """Inherited-weight accuracy of every tabulated cell vs its tabulated test accuracy.

    ``bench`` defaults to the table trained on the run's data set. Returns ``rows`` (key,
    super-network accuracy, tabulated mean test and val accuracy), ``kendall_tau``,
    ``spearman`` and which cell the super-network ranks first with its table percentile.
    """
    from scipy.stats import kendalltau, spearmanr
    from tqdm.auto import tqdm

    from nasforge.data import Batches, load_dataset
    from nasforge.search.loop import evaluate
    from nasforge.spaces.darts.search_network import SearchNetwork
    from nasforge.spaces.darts.spaces import SPACES

    if split not in SPLITS:
        raise NasforgeError(f"split '{split}' is not allowed; choose from: {', '.join(SPLITS)}")
    if bn not in BN_MODES:
        raise NasforgeError(f"bn '{bn}' is not allowed; choose from: {', '.join(BN_MODES)}")
    run_dir = Path(run_dir)
    cfg, state = _load_run(run_dir)
    s = cfg.search
    table = TabularBenchmark.load(bench or bench_for_dataset(cfg.data.dataset))
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    space = SPACES.get(s.space)
    network = SearchNetwork(s.channels, data.num_classes, s.layers, s.nodes,
                            in_channels=data.channels, primitives=space.primitives,
                            op_mask=space.op_mask(s.nodes))
    network.load_state_dict(state["network"])
    primitives = tuple(network.primitives)
    reduce = one_hot(fixed_reduction_cell(), primitives, s.nodes)
    batches = Batches(getattr(data, split), batch_size, mean=data.mean, std=data.std,
                      shuffle=False)
    network.train(bn == "batch")
    network.sparse = True  # one-hot weights: run only the chosen op of every edge
    rows = []
    with torch.no_grad():
        for key in tqdm(table.keys(), desc="fidelity", unit="cell", disable=not progress):
            weights = {"normal": one_hot(cell_from_key(key), primitives, s.nodes),
                       "reduce": reduce}
            _, acc = evaluate(lambda x, w=weights: network(x, w), batches, None)
            info = table.query(key)
            rows.append({"key": key, "supernet_acc": acc, "test_acc": info["test_acc_mean"],
                         "val_acc": info["val_acc_mean"], "percentile": info["percentile"]})
    sup = [r["supernet_acc"] for r in rows]
    tab = [r["test_acc"] for r in rows]
    top = max(rows, key=lambda r: (r["supernet_acc"], r["val_acc"]))
    return {
        "run": str(run_dir),
        "algo": s.algo,
        "bench": bench or bench_for_dataset(cfg.data.dataset),
        "split": split,
        "bn": bn,
        "cells": len(rows),
        # a super-network that scores every cell alike ranks nothing: no correlation
        "kendall_tau": float(kendalltau(sup, tab).statistic) if len(set(sup)) > 1 else nan,
        "spearman": float(spearmanr(sup, tab).statistic) if len(set(sup)) > 1 else nan,
        "supernet_best": {"key": top["key"], "test_acc": top["test_acc"],
                          "percentile": top["percentile"]},
        "rows": rows,
    }


def plot_fidelity(results: list[dict[str, Any]], path: str | Path) -> Path:
    """One scatter per run: super-network accuracy (x) against tabulated test accuracy (y)."""
    from nasforge.analysis.figures import plt, save_figure

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        ax.scatter([r["supernet_acc"] for r in res["rows"]],
                   [r["test_acc"] for r in res["rows"]], s=9, alpha=0.6)
        ax.set_title(f"{res['algo']}: Kendall τ {res['kendall_tau']:.2f}", fontsize=10)
        ax.set_xlabel(f"super-network {res['split']} accuracy (%)")
        ax.set_ylabel("tabulated test accuracy (%)")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
