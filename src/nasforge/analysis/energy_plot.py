"""Accuracy vs energy of an AutoSNN search (docs/autosnn.md §Energy;
``nasforge plot snn-energy``).

Every architecture a search evaluated is one point: its energy per image (µJ,
:mod:`nasforge.snn.energy`) against its accuracy on the super-network's validation split.
The Pareto front (no other point has less or equal energy and higher or equal accuracy,
one strictly) is dashed, the search's top-1 starred, and architectures over the energy
budget are grey crosses right of the dotted budget line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nasforge.analysis.figures import save_figure  # noqa: E402
from nasforge.errors import NasforgeError  # noqa: E402

__all__ = ["energy_pareto_figure", "energy_pareto_front", "plot_energy_pareto",
           "plot_search_energy", "search_energy_rows"]


def energy_pareto_front(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The rows on the accuracy-vs-energy Pareto front, by energy ascending."""
    from nasforge.analysis.snn_plots import pareto_front

    points = [{"spikes": float(r["energy"]), "acc": float(r["acc"]), "row": r} for r in rows]
    return [p["row"] for p in pareto_front(points)]


def energy_pareto_figure(rows: Sequence[Mapping[str, Any]],
                         over_budget: Sequence[Mapping[str, Any]] = (), *,
                         best: str | None = None, max_energy: float | None = None,
                         title: str | None = None) -> Figure:
    """Accuracy (%) vs energy (µJ per image) of ``rows`` (``arch``, ``acc``, ``energy``),
    front dashed, ``best`` (an architecture's text) starred, ``over_budget`` rows as grey
    crosses and ``max_energy`` as a vertical line."""
    rows = list(rows)
    if not rows and not over_budget:
        raise NasforgeError("no evaluated architecture with an energy: nothing to plot")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if rows:
        ax.scatter([float(r["energy"]) for r in rows], [float(r["acc"]) for r in rows],
                   s=18, alpha=0.75, color="tab:blue", label="evaluated", gid="evaluated")
        front = energy_pareto_front(rows)
        ax.step([float(r["energy"]) for r in front], [float(r["acc"]) for r in front],
                where="post", ls="--", lw=1.0, color="black", label="Pareto front",
                gid="front")
    if over_budget:
        ax.scatter([float(r["energy"]) for r in over_budget],
                   [float(r["acc"]) for r in over_budget], marker="x", s=22, color="grey",
                   label="over the budget", gid="over")
    if max_energy is not None:
        ax.axvline(max_energy, color="tab:red", lw=1.0, ls=":", label="budget")
    if best is not None:
        top = [r for r in rows if r["arch"] == best]
        if top:
            x, y = float(top[0]["energy"]), float(top[0]["acc"])
            ax.scatter([x], [y], marker="*", s=240, color="red", edgecolors="black",
                       zorder=3, label=f"top-1: {best.replace(',', ', ')}", gid="best")
    ax.set(xlabel="energy per image (µJ)", ylabel="validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_energy_pareto(rows: Sequence[Mapping[str, Any]], path: str | Path, *,
                       over_budget: Sequence[Mapping[str, Any]] = (), best: str | None = None,
                       max_energy: float | None = None, title: str | None = None) -> Path:
    """:func:`energy_pareto_figure` saved as a PNG."""
    return save_figure(energy_pareto_figure(rows, over_budget, best=best,
                                            max_energy=max_energy, title=title), path)


def search_energy_rows(search_dir: str | Path, lam: float | None = None
                       ) -> tuple[dict[str, Any], list[dict], list[dict]]:
    """``(result, rows, over_budget)`` of the search of ``lam`` (default: the first) in an
    ``snn search`` directory; a search scored without energies is a one-line error."""
    from nasforge.analysis.snn_plots import read_search_result

    result, _ = read_search_result(search_dir, lam)
    rows = [r for r in result["history"] if r.get("energy") is not None]
    over = [r for r in result.get("over_budget", []) if r.get("energy") is not None]
    if not rows and not over:
        raise NasforgeError(f"{search_dir} was scored without energies (a search from before "
                            "energy was measured); run the search again into a new --out")
    return result, rows, over


def plot_search_energy(search_dir: str | Path, path: str | Path, *, lam: float | None = None,
                       title: str | None = None) -> Path:
    """Accuracy vs energy of every architecture one search of ``search_dir`` evaluated."""
    result, rows, over = search_energy_rows(search_dir, lam)
    profile = _profile_of(search_dir)
    return plot_energy_pareto(
        rows, path, over_budget=over, best=result["best"],
        max_energy=result["params"].get("max_energy"),
        title=title or f"{result['method']} search, lambda={result['lam']:+g}"
                       f"{f', profile {profile}' if profile else ''}")


def _profile_of(search_dir: str | Path) -> str | None:
    from nasforge.analysis.snn_plots import _read_run_json

    return _read_run_json(Path(search_dir) / "results.json", "an `snn search` run").get(
        "energy_profile")
