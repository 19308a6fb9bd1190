"""Validation loss of a trained super-network over its op strengths θ (thesis §4.5.3, Fig. 4.6).

The thesis argues that BtNAS finds good ExtCells because sampling θ from Beta distributions
smooths the loss landscape over θ, while FairDARTS's deterministic sigmoid strengths sit in
a steep one, so small changes to θ (such as the discretisation of the derivation) cost a lot.
This module measures that landscape the way the thesis (after Li et al. 2018 and Chen &
Hsieh 2020) plots it: the loss at θ + a·d1 + b·d2, where

* θ is what the derivation ranks, ``strategy.strengths()`` (BtNAS: the Beta means
  α/(α+β); DARTS: softmax(α)), both cells concatenated;
* d1 = ∇θ L_val / ‖∇θ L_val‖, so +a climbs and −a descends;
* d2 is a seeded Gaussian direction made orthogonal to d1 (Gram–Schmidt), also unit norm.

Both directions have unit Euclidean norm, so a and b are distances in θ-space; because every
strategy in the thesis keeps θ in [0, 1], one radius is comparable across strategies.
Perturbed strengths are clamped to the strategy's valid range (:data:`THETA_RANGES`); the
fraction of clamped entries is returned per grid point, since a clamped region flattens.
The network runs in eval mode (BatchNorm running statistics), so the loss is a deterministic
function of θ on a fixed set of architecture-half batches, without augmentation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from nasforge.analysis.figures import save_figure
from nasforge.checkpoint import load_checkpoint
from nasforge.config import Config
from nasforge.data import load_dataset, make_batches, split_weight_arch
from nasforge.errors import NasforgeError
from nasforge.runtime import load_run_config, pick_device
from nasforge.search import STRATEGIES, SearchStrategy
from nasforge.search.base import CELL_TYPES
from nasforge.search.loop import CHECKPOINT, training_indices
from nasforge.spaces.darts.search_network import SearchNetwork

Range = tuple[float | None, float | None]

THETA_RANGES: dict[str, Range] = {
    "darts": (0.0, 1.0),  # softmax weights: non-negative and at most 1 (not renormalised)
    "btnas": (0.0, 1.0),  # Beta samples live in (0, 1)
    "fairdarts": (0.0, 1.0),  # sigmoid
}
"""Valid θ per algorithm. A strategy may declare its own as a ``theta_range`` attribute."""

DEFAULT_THETA_RANGE: Range = (0.0, None)
"""Unknown strategies: only non-negativity, which every mixed op of the thesis assumes."""


@dataclass
class SearchRun:
    """A search run rebuilt from its checkpoint: config, super-network, strategy and data."""

    cfg: Config
    network: SearchNetwork
    strategy: SearchStrategy
    data: Any
    device: torch.device


def load_search_run(run_dir: str | os.PathLike, *, device: str = "cpu") -> SearchRun:
    """Rebuild the network and strategy exactly as the search built them, then load weights.

    Construction draws initial values from the global RNG; it runs on a forked RNG so
    callers' random streams are left untouched.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT)
    if state.get("kind") != "search":
        raise NasforgeError(f"{run_dir} holds no search checkpoint")
    s = cfg.search
    dev = pick_device(device)
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    with torch.random.fork_rng(devices=[]):
        network = SearchNetwork(s.channels, data.num_classes, s.layers, s.nodes,
                                in_channels=data.channels, primitives=state["primitives"],
                                stem="imagenet" if data.size >= 128 else "cifar")
        strategy = STRATEGIES.get(state.get("algo", s.algo))(network, s)
    network.load_state_dict(state["network"])
    strategy.load_state_dict(state["strategy"])
    network.to(dev).eval().requires_grad_(False)
    strategy.to(dev).eval()
    return SearchRun(cfg, network, strategy, data, dev)


def validation_batches(run: SearchRun, count: int, *,
                       batch_size: int | None = None) -> list[tuple[Tensor, Tensor]]:
    """The first ``count`` batches of the run's architecture half, in order, unaugmented.

    The same split ``run_search`` makes (``split_weight_arch`` with the run seed over the
    proxy subset or the whole training split), so the loss is the search's validation loss.
    """
    cfg, data = run.cfg, run.data
    indices = training_indices(cfg, len(data.train))
    _, a_idx = split_weight_arch(indices, cfg.run.seed)
    if len(a_idx) == 0:
        raise NasforgeError("the run's architecture half is empty")
    batches = make_batches(data.train, batch_size or cfg.search.batch_size, indices=a_idx,
                           shuffle=False, augment=None, mean=data.mean, std=data.std,
                           device=run.device)
    return list(islice(batches.epoch(0), count))


def theta_range(strategy: SearchStrategy, algo: str) -> Range:
    """The declared ``theta_range`` of the strategy, else :data:`THETA_RANGES`, else default."""
    declared = getattr(strategy, "theta_range", None)
    if declared is not None:
        return tuple(declared)  # type: ignore[return-value]
    return THETA_RANGES.get(algo, DEFAULT_THETA_RANGE)


def mean_loss(network: SearchNetwork, theta: Tensor,
              batches: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """Mean cross-entropy over all examples of ``batches`` with op weights θ ([2, E, K])."""
    weights = dict(zip(CELL_TYPES, theta.unbind(0), strict=True))
    total, count = theta.new_zeros(()), 0
    for x, y in batches:
        total = total + F.cross_entropy(network(x, weights).float(), y, reduction="sum")
        count += len(y)
    return total / count


def directions(grad: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Unit d1 along ``grad`` and a seeded unit d2 ⟂ d1 (float64, flat, on the CPU)."""
    g = grad.detach().double().cpu().flatten()
    norm = g.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise NasforgeError("the validation loss has a zero or non-finite gradient in θ; "
                            "no gradient direction to plot along")
    d1 = g / norm
    d2 = torch.randn(g.numel(), generator=torch.Generator().manual_seed(seed),
                     dtype=torch.float64)
    for _ in range(2):  # twice: classical Gram–Schmidt loses orthogonality in one pass
        d2 = d2 - (d2 @ d1) * d1
    return d1, d2 / d2.norm()


def clamp(theta: Tensor, bounds: Range) -> tuple[Tensor, float]:
    """θ clamped to ``bounds`` and the fraction of entries that had to move."""
    lo, hi = bounds
    clamped = theta.clamp(min=lo, max=hi) if lo is not None or hi is not None else theta
    return clamped, float((clamped != theta).double().mean())


def grid(points: int, radius: float) -> list[float]:
    """``points`` evenly spaced coordinates in [−radius, radius]; the middle one is exactly 0."""
    if points == 1:
        return [0.0]
    return [radius * (2 * i / (points - 1) - 1) for i in range(points)]


def loss_landscape(
    run_dir: str | os.PathLike,
    *,
    points: int = 21,
    radius: float = 1.0,
    batches: int = 2,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Validation loss at θ + a·d1 + b·d2 on a ``points``×``points`` grid in [−radius, radius]².

    Returns a JSON-ready dict: ``a`` and ``b`` (coordinates along d1 and d2), ``loss`` and
    ``clamped`` as ``[len(b)][len(a)]`` lists (row = b, column = a, as ``contour`` expects),
    ``theta_loss`` (the loss at θ itself), ``grad_norm``, and the flat ``theta``, ``d1``,
    ``d2`` (normal cell then reduction cell, each ``[E, K]`` row-major; ``shape`` [2, E, K]).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise NasforgeError(f"points must be a positive integer, got {points!r}")
    if not math.isfinite(radius) or radius <= 0:
        raise NasforgeError(f"radius must be a positive number, got {radius!r}")
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise NasforgeError(f"batches must be a positive integer, got {batches!r}")
    run = load_search_run(run_dir, device=device)
    algo = run.cfg.search.algo
    data = validation_batches(run, batches, batch_size=batch_size)
    strengths = run.strategy.strengths()
    theta = torch.stack([strengths[c] for c in CELL_TYPES]).float().to(run.device)
    theta.requires_grad_(True)
    theta_loss = mean_loss(run.network, theta, data)
    (grad,) = torch.autograd.grad(theta_loss, theta)
    d1, d2 = directions(grad, seed)
    base = theta.detach().double().cpu().flatten()
    bounds = theta_range(run.strategy, algo)
    coords = grid(points, radius)
    losses, clamped = [], []
    with torch.no_grad():
        for b in coords:
            row, row_clamped = [], []
            for a in coords:
                moved, fraction = clamp(base + a * d1 + b * d2, bounds)
                point = moved.float().view_as(theta).to(run.device)
                row.append(float(mean_loss(run.network, point, data)))
                row_clamped.append(fraction)
            losses.append(row)
            clamped.append(row_clamped)
    return {
        "run": str(run_dir), "algo": algo, "a": coords, "b": coords, "loss": losses,
        "clamped": clamped, "theta_loss": float(theta_loss.detach()),
        "grad_norm": float(grad.norm()),
        "theta": base.tolist(), "d1": d1.tolist(), "d2": d2.tolist(),
        "shape": list(theta.shape), "cells": list(CELL_TYPES), "theta_range": list(bounds),
        "points": points, "radius": radius, "batches": len(data),
        "examples": sum(len(y) for _, y in data), "seed": seed,
    }


def _draw_landscape(ax, result: dict[str, Any], levels: np.ndarray, title: str):
    """One contour panel with θ marked; returns the filled contour set for a colour bar."""
    a, b = np.asarray(result["a"]), np.asarray(result["b"])
    if len(a) < 2 or len(b) < 2:
        raise NasforgeError("a contour plot needs at least 2 points per axis")
    loss = np.asarray(result["loss"], dtype=np.float64)
    filled = ax.contourf(a, b, loss, levels=levels, cmap="viridis", extend="both")
    lines = ax.contour(a, b, loss, levels=levels, colors="black", linewidths=0.4, alpha=0.6)
    ax.clabel(lines, lines.levels[::4], fontsize=6, fmt="%.3g")
    ax.plot([0], [0], marker="*", color="red", markersize=11, linestyle="none")
    ax.annotate("θ", (0, 0), xytext=(6, 6), textcoords="offset points", color="red")
    ax.set_xlabel("gradient direction ∇θL (d1)")
    ax.set_ylabel("random orthogonal direction (d2)")
    ax.set_aspect("equal")
    ax.set_title(f"{title}\nloss at θ {result['theta_loss']:.3f}, "
                 f"‖∇θL‖ {result.get('grad_norm', float('nan')):.3g}", fontsize=9)
    return filled


def _levels(results: list[dict[str, Any]], count: int) -> np.ndarray:
    """``count`` contour bands spanning every result's losses (one scale to compare steepness)."""
    losses = np.concatenate([np.asarray(r["loss"], dtype=np.float64).ravel() for r in results])
    lo, hi = float(losses.min()), float(losses.max())
    return np.linspace(lo, hi, count + 1) if hi > lo else np.array([lo - 1e-6, lo + 1e-6])


def plot_landscapes(results: Mapping[str, dict[str, Any]], out_png: str | os.PathLike, *,
                    title: str | None = None, levels: int = 20) -> Path:
    """Side-by-side contour plots on one colour scale, e.g. BtNAS vs FairDARTS as in Fig. 4.6.

    Keys are the panel titles. A shared scale is what makes "smoother" visible: the same
    loss change gets the same number of contour lines in every panel.
    """
    if not results:
        raise NasforgeError("no landscapes to plot")
    bands = _levels(list(results.values()), levels)
    fig = Figure(figsize=(0.6 + 4.6 * len(results), 4.8), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    filled = None
    for ax, (label, result) in zip(axes, results.items(), strict=True):
        filled = _draw_landscape(ax, result, bands, label)
    fig.colorbar(filled, ax=list(axes), label="validation loss", format="%.3g")
    title = "loss landscape over θ" if title is None else title
    if title:
        fig.suptitle(title)
    path = save_figure(fig, out_png, tight=False, dpi=120)
    return path


def plot_landscape(result: dict[str, Any], out_png: str | os.PathLike, *,
                   title: str | None = None, levels: int = 20) -> Path:
    """Contour plot of one :func:`loss_landscape` result (Fig. 4.6); θ itself is the star."""
    label = f"{result.get('algo') or 'search'} loss landscape over θ"
    return plot_landscapes({title or label: result}, out_png, title="", levels=levels)


def plot_landscape_runs(run_dirs: Sequence[str | os.PathLike], out_png: str | os.PathLike, *,
                        labels: Sequence[str] | None = None,
                        json_path: str | os.PathLike | None = None,
                        **options: Any) -> Path:
    """Measure each run's landscape (``options`` go to :func:`loss_landscape`) and plot them.

    Panels are titled by ``labels``, else by algorithm (plus the run folder's name when two
    runs share one). ``json_path`` also saves the results, keyed by panel title.
    """
    if not run_dirs:
        raise NasforgeError("name at least one search run")
    if labels is not None and len(labels) != len(run_dirs):
        raise NasforgeError(f"{len(labels)} labels for {len(run_dirs)} runs")
    results = [loss_landscape(run, **options) for run in run_dirs]
    if labels is None:
        algos = [r["algo"] for r in results]
        labels = [a if algos.count(a) == 1 else f"{a} ({Path(run).name})"
                  for a, run in zip(algos, run_dirs, strict=True)]
    named = dict(zip(labels, results, strict=True))
    if len(named) != len(results):
        raise NasforgeError(f"panel labels must differ; got {list(labels)}")
    if json_path is not None:
        from nasforge.checkpoint import atomic_write_json

        atomic_write_json(json_path, named)
    if len(named) == 1:
        return plot_landscape(results[0], out_png)
    return plot_landscapes(named, out_png)


__all__ = [
    "THETA_RANGES", "SearchRun", "directions", "load_search_run", "loss_landscape",
    "mean_loss", "plot_landscape", "plot_landscape_runs", "plot_landscapes",
    "validation_batches",
]
