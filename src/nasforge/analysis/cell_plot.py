"""Cell diagrams drawn with matplotlib alone (no graphviz), for DARTS cells and ExtCells.

Inputs ``c_{k-2}``, ``c_{k-1}`` sit on the left, active intermediate nodes in the middle
(inactive ones are left out) and the output ``c_{k}`` on the right. Every op is its own
labelled arrow; ops sharing an edge bend by different amounts so each stays readable.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch

from nasforge.analysis.figures import save_figure
from nasforge.spaces.darts.genotype import CellGenotype, Genotype

OP_COLOURS: dict[str, str] = {
    "max_pool_3x3": "#d95f02",
    "avg_pool_3x3": "#e6ab02",
    "skip_connect": "#666666",
    "sep_conv_3x3": "#1f78b4",
    "sep_conv_5x5": "#6a3d9a",
    "dil_conv_3x3": "#33a02c",
    "dil_conv_5x5": "#b15928",
}
_EXTRA_COLOURS = ("#e7298a", "#17becf", "#8c564b", "#bcbd22", "#7f7f7f")

_SCALE = 1.3  # inches per data unit; the axes use equal aspect so arc geometry holds
_RADIUS = 0.32
_STEP = 1.8  # horizontal distance between consecutive columns
_SPREAD = 0.3  # extra bend between ops that share one edge
_INPUT_Y = 1.7


def op_colour(op: str) -> str:
    """Fixed colour per DARTS op; other ops get a stable colour from their name."""
    if op in OP_COLOURS:
        return OP_COLOURS[op]
    return _EXTRA_COLOURS[zlib.crc32(op.encode()) % len(_EXTRA_COLOURS)]


def _layout(cell: CellGenotype) -> dict[int | str, tuple[float, float]]:
    """Positions: inputs stacked at x=0, active nodes on a line y=0, output last on it."""
    pos: dict[int | str, tuple[float, float]] = {0: (0.0, _INPUT_Y), 1: (0.0, -_INPUT_Y)}
    active = cell.active_nodes()
    for i, node in enumerate(active):
        pos[node] = (_STEP * (i + 1), 0.0)
    pos["out"] = (_STEP * (len(active) + 1), 0.0)
    return pos


def _bend(src: int | str, columns: int) -> float:
    """Base curvature of an edge so that it never runs through a node.

    Input edges bulge outwards (up for c_{k-2}, down for c_{k-1}); edges along the node line
    that skip columns arc above it (ops) or below it (concat edges into the output).
    """
    if src == 0:
        return -0.08 - 0.04 * columns
    if src == 1:
        return 0.08 + 0.04 * columns
    if columns <= 1:
        return 0.0
    return 0.3 if src == "concat" else -0.3


def _arrow(ax, src, dst, rad, colour, patches, *, dashed: bool = False) -> FancyArrowPatch:
    arrow = FancyArrowPatch(
        src,
        dst,
        connectionstyle=f"arc3,rad={rad}",
        arrowstyle="-|>",
        mutation_scale=12,
        linewidth=1.4,
        linestyle="--" if dashed else "-",
        color=colour,
        patchA=patches[0],
        patchB=patches[1],
        shrinkA=1,
        shrinkB=1,
        zorder=2,
    )
    ax.add_patch(arrow)
    return arrow


def cell_figure(cell: CellGenotype, *, title: str = "") -> Figure:
    """Build (without saving) the figure of one cell: one arrow per op and per concat node."""
    pos = _layout(cell)
    order = {node: i for i, node in enumerate([0, 1, *cell.active_nodes()])}
    xs = [p[0] for p in pos.values()]
    x0, x1, y0, y1 = min(xs) - 0.7, max(xs) + 0.7, -2.3, 2.3
    title_in = 0.45
    height = (y1 - y0) * _SCALE
    fig = Figure(figsize=((x1 - x0) * _SCALE, height + title_in))
    ax = fig.add_axes((0, 0, 1, height / (height + title_in)))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.suptitle(title or "cell", y=1 - 0.1 * title_in / (height + title_in), va="top")

    circles = {}
    names = {0: "$c_{k-2}$", 1: "$c_{k-1}$", "out": "$c_{k}$"}
    for node, (x, y) in pos.items():
        inner = node not in names
        circle = Circle(
            (x, y),
            _RADIUS,
            facecolor="#cfe2f3" if inner else "#f4cccc",
            edgecolor="black",
            zorder=3,
        )
        ax.add_patch(circle)
        circles[node] = circle
        ax.text(x, y, names.get(node, str(node)), ha="center", va="center", fontsize=11, zorder=4)

    by_edge: dict[tuple[int, int], list[str]] = defaultdict(list)
    for op, inp, node in cell.ops:
        by_edge[(inp, node)].append(op)
    for (inp, node), ops in by_edge.items():
        src, dst = pos[inp], pos[node]
        base = _bend(inp, order[node] - order[inp] if inp >= 2 else order[node] - 1)
        dx, dy = dst[0] - src[0], dst[1] - src[1]
        for i, op in enumerate(ops):
            rad = base + _SPREAD * (i - (len(ops) - 1) / 2)
            _arrow(ax, src, dst, rad, op_colour(op), (circles[inp], circles[node]))
            # Midpoint of the quadratic arc used by matplotlib's arc3 style.
            mx = (src[0] + dst[0]) / 2 + rad * dy / 2
            my = (src[1] + dst[1]) / 2 - rad * dx / 2
            ax.text(
                mx,
                my,
                op,
                ha="center",
                va="center",
                fontsize=7.5,
                color=op_colour(op),
                zorder=5,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    for node in cell.concat:
        if node not in order:
            continue  # an invalid cell: concat names a node that has no input
        rad = _bend("concat", len(order) - order[node])
        pair = (circles[node], circles["out"])
        _arrow(ax, pos[node], pos["out"], rad, "black", pair, dashed=True)
    return fig


def count_arrows(fig: Figure) -> int:
    """Arrows drawn in a cell figure (ops plus concat edges); used to check drawings."""
    return sum(isinstance(p, FancyArrowPatch) for ax in fig.axes for p in ax.patches)


def draw_cell(cell: CellGenotype, path: str | Path, *, title: str = "") -> Path:
    """Save the diagram of ``cell`` as a PNG at ``path`` (parent folders are created)."""
    return save_figure(cell_figure(cell, title=title), path, tight=False, dpi=120)


def draw_genotype(g: Genotype, out_dir: str | Path, *, prefix: str = "") -> dict[str, Path]:
    """Draw both cells as ``{prefix}normal.png`` and ``{prefix}reduce.png`` in ``out_dir``."""
    out = Path(out_dir)
    return {
        name: draw_cell(
            getattr(g, name),
            out / f"{prefix}{name}.png",
            title=f"{prefix}{name} cell".strip("_ "),
        )
        for name in ("normal", "reduce")
    }
