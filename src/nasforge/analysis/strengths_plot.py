"""Heatmaps of a search's final op strengths, edge × op, normal and reduction cell side by side.

This is the picture of thesis Figs. 4.3 and 4.5: it shows at a glance whether one op type
(skip connections, pools) dominates, and how far apart the strengths the derivation ranks
are. The numbers drawn come from :func:`strengths_data`, so they can be checked without
reading pixels. ``none`` is drawn in greys and kept off the colour scale: it is never a
derivation candidate, and under softmax it often carries most of the weight, which would
wash out the differences between the real ops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from nasforge.analysis.figures import save_figure
from nasforge.derive import CELLS, derive
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import PRIMITIVES, Genotype, cell_edges, load_genotype

ANNOTATE_MAX_CELLS = 120
"""Annotate values automatically when a panel has at most this many cells (DARTS: 14 × 8)."""

KEPT_COLOUR = "#d62728"
NONE_CMAP = "Greys"


@dataclass(frozen=True)
class StrengthsData:
    """What a strengths heatmap draws: one ``[E, K]`` matrix per cell type plus labels."""

    cells: dict[str, np.ndarray]  # "normal"/"reduce" -> [E, K] float64, strengths.json order
    rows: list[str]  # edge labels "i→j" in cell_edges order
    columns: list[str]  # op names (primitives), ``none`` included
    kept: dict[str, np.ndarray] | None  # [E, K] bool: ops the marked genotype keeps
    algo: str | None = None
    epoch: int | None = None

    @property
    def none_column(self) -> int | None:
        return self.columns.index("none") if "none" in self.columns else None

    def colour_range(self) -> tuple[float, float]:
        """Shared (vmin, vmax) of both cells over the non-``none`` ops (all ops if only none)."""
        keep = [j for j, name in enumerate(self.columns) if name != "none"] or list(
            range(len(self.columns)))
        values = np.concatenate([m[:, keep].ravel() for m in self.cells.values()])
        lo, hi = float(values.min()), float(values.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _nodes_for_edges(edges: int) -> int:
    """Intermediate nodes n with n(n+3)/2 edges, the inverse of ``len(cell_edges(n))``."""
    n = 1
    while len(cell_edges(n)) < edges:
        n += 1
    if len(cell_edges(n)) != edges:
        raise NasforgeError(f"{edges} edges is not the edge count of any DARTS-style cell")
    return n


def _read_source(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A strengths.json mapping from a run dir, a strengths.json path or an in-memory dict."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / "strengths.json"
    if not path.is_file():
        raise NasforgeError(f"no strengths.json at {path}; is it a finished search run?")
    return json.loads(path.read_text())


def _as_matrix(value: Any, cell: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.ndim != 2 or not np.isfinite(matrix).all():
        raise NasforgeError(f"{cell} strengths must be a finite [edges, ops] matrix")
    return matrix


def _kept_mask(genotype: Genotype, primitives: Sequence[str], nodes: int) -> dict[str, np.ndarray]:
    """Per cell a bool [E, K] mask of the (edge, op) pairs the genotype keeps."""
    index = {edge: e for e, edge in enumerate(cell_edges(nodes))}
    masks = {}
    for cell in CELLS:
        mask = np.zeros((len(index), len(primitives)), dtype=bool)
        for op, inp, node in getattr(genotype, cell).ops:
            if (inp, node) not in index or op not in primitives:
                raise NasforgeError(
                    f"genotype op {op} on edge {inp}→{node} is not in this search space "
                    f"({nodes} nodes, ops {', '.join(primitives)})")
            mask[index[(inp, node)], list(primitives).index(op)] = True
        masks[cell] = mask
    return masks


def strengths_data(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    genotype: Genotype | str | None = None,
    rule: str | None = None,
    **options: object,
) -> StrengthsData:
    """The matrices and labels of the heatmap, read from a run dir, strengths.json or a dict.

    Kept ops are marked from ``genotype`` (a Genotype, or anything ``load_genotype`` reads) or
    by applying derivation ``rule`` with its ``options`` (e.g. ``rule="topk", k=14``).
    """
    raw = _read_source(source)
    cells = {c: _as_matrix(raw[c], c) for c in CELLS if c in raw}
    if len(cells) != 2:
        raise NasforgeError("strengths need both 'normal' and 'reduce' matrices")
    primitives = list(raw.get("primitives") or PRIMITIVES)
    edges, ops = cells["normal"].shape
    if cells["reduce"].shape != (edges, ops) or ops != len(primitives):
        raise NasforgeError(
            f"strengths of shape {cells['normal'].shape} / {cells['reduce'].shape} do not match "
            f"{len(primitives)} primitives")
    nodes = int(raw.get("nodes") or _nodes_for_edges(edges))
    if len(cell_edges(nodes)) != edges:
        raise NasforgeError(f"{edges} edges do not match nodes={nodes}")
    if genotype is not None and rule is not None:
        raise NasforgeError("mark kept ops with either a genotype or a rule, not both")
    if rule is not None:
        import torch

        tensors = {c: torch.tensor(m) for c, m in cells.items()}
        genotype = derive(rule, tensors, primitives=primitives, nodes=nodes, **options)
    elif options:
        raise NasforgeError(f"options {', '.join(options)} need a rule")
    if isinstance(genotype, (str, os.PathLike)):
        genotype = load_genotype(genotype, primitives=primitives)
    kept = None if genotype is None else _kept_mask(genotype, primitives, nodes)
    rows = [f"{i}→{j}" for i, j in cell_edges(nodes)]
    epoch = raw.get("epoch")
    return StrengthsData(cells=cells, rows=rows, columns=primitives, kept=kept,
                         algo=raw.get("algo"), epoch=None if epoch is None else int(epoch))


def _text_colour(value: float, norm: Normalize, cmap) -> str:
    r, g, b, _ = cmap(norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _draw_panel(ax, data: StrengthsData, cell: str, norm: Normalize, cmap, none_cmap,
                annotate: bool, fmt: str):
    """One cell's heatmap; returns the image of the coloured (non-none) ops for the colour bar."""
    matrix = data.cells[cell]
    none = data.none_column
    ops_only = np.ma.masked_array(matrix, mask=np.zeros_like(matrix, dtype=bool))
    if none is not None:
        ops_only.mask[:, none] = True
    image = ax.imshow(ops_only, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    if none is not None:
        none_only = np.ma.masked_array(matrix, mask=~ops_only.mask)
        ax.imshow(none_only, cmap=none_cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.add_patch(Rectangle((none - 0.5, -0.5), 1, matrix.shape[0], fill=False,
                               hatch="//", edgecolor="#aaaaaa", linewidth=0, gid="none"))
        for x in (none - 0.5, none + 0.5):
            ax.axvline(x, color="white", linewidth=2.5)
    ax.set_xticks(range(len(data.columns)), data.columns, rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(data.rows)), data.rows, fontsize=8)
    if none is not None:
        label = ax.get_xticklabels()[none]
        label.set_color("#777777")
        label.set_fontstyle("italic")
    ax.set_xlabel("op")
    ax.set_ylabel("edge (input→node)")
    ax.set_title(f"{cell} cell")
    if annotate:
        for (e, k), value in np.ndenumerate(matrix):
            colours = none_cmap if k == none else cmap
            ax.text(k, e, format(value, fmt), ha="center", va="center", fontsize=6,
                    color=_text_colour(value, norm, colours))
    if data.kept is not None:
        for e, k in zip(*np.nonzero(data.kept[cell]), strict=True):
            ax.add_patch(Rectangle((k - 0.5, e - 0.5), 1, 1, fill=False,
                                   edgecolor=KEPT_COLOUR, linewidth=2, gid="kept"))
    return image


def strengths_figure(data: StrengthsData, *, title: str | None = None,
                     annotate: bool | None = None, fmt: str = ".2f",
                     cmap: str = "viridis") -> Figure:
    """Build (without saving) the two-panel heatmap figure with one shared colour bar.

    ``annotate=None`` writes the values when a panel has at most :data:`ANNOTATE_MAX_CELLS`.
    """
    import matplotlib

    edges, ops = data.cells["normal"].shape
    if annotate is None:
        annotate = edges * ops <= ANNOTATE_MAX_CELLS
    colours, none_colours = matplotlib.colormaps[cmap], matplotlib.colormaps[NONE_CMAP]
    norm = Normalize(*data.colour_range())
    fig = Figure(figsize=(2 * (1.2 + 0.55 * ops) + 1.2, 1.6 + 0.32 * edges),
                 layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    image = None
    for ax, cell in zip(axes, CELLS, strict=True):
        image = _draw_panel(ax, data, cell, norm, colours, none_colours, annotate, fmt)
    axes[1].set_ylabel("")
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label("op strength")
    if title is None:
        parts = [data.algo or "search", "op strengths"]
        if data.epoch is not None:
            parts.append(f"(epoch {data.epoch + 1})")
        title = " ".join(parts)
    if data.kept is not None:
        title += f" — outlined: {int(sum(m.sum() for m in data.kept.values()))} kept ops"
    fig.suptitle(title)
    return fig


def plot_strengths(
    source: str | os.PathLike | Mapping[str, Any],
    out_png: str | os.PathLike,
    *,
    title: str | None = None,
    genotype: Genotype | str | None = None,
    rule: str | None = None,
    annotate: bool | None = None,
    **options: object,
) -> Path:
    """Save the heatmap of a run's (or a strengths dict's) final strengths as a PNG.

    ``genotype`` or ``rule`` (+ ``options`` such as ``k``/``act_all``) outline the kept ops.
    """
    data = strengths_data(source, genotype=genotype, rule=rule, **options)
    path = save_figure(strengths_figure(data, title=title, annotate=annotate), out_png,
                       tight=False, dpi=120)
    return path


__all__ = ["StrengthsData", "plot_strengths", "strengths_data", "strengths_figure"]
