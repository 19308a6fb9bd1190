"""The summary picture of a ``nasforge sweep``: a metric against the first grid key.

One line per combination of the other grid keys, each point the mean over seeds with a
± std bar; failed trials are counted in the title, not drawn.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nasforge.analysis.figures import save_figure


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _unique(items: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def sweep_series(rows: Sequence[dict[str, Any]], keys: Sequence[str], metric: str
                 ) -> tuple[list[str], dict[str, list[tuple[str, float, float, int]]]]:
    """x values (first grid key, in order) and, per other-key combination, the points
    (x, mean, std, seeds) of the finished trials that report ``metric``."""
    x_key = keys[0] if keys else None
    xs = _unique([str(r[x_key]) for r in rows]) if x_key else ["all"]
    lines: dict[str, list[tuple[str, float, float, int]]] = {}
    combos = _unique([tuple(str(r[k]) for k in keys[1:]) for r in rows])
    for combo in combos:
        label = ", ".join(f"{k}={v}" for k, v in zip(keys[1:], combo, strict=True))
        points = []
        for x in xs:
            values = [v for r in rows
                      if r.get("status") == "done"
                      and (x_key is None or str(r[x_key]) == x)
                      and tuple(str(r[k]) for k in keys[1:]) == combo
                      and (v := _number(r.get(metric))) is not None]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                points.append((x, statistics.fmean(values), std, len(values)))
        if points:
            lines[label or metric] = points
    return xs, lines


def plot_sweep(rows: Sequence[dict[str, Any]], keys: Sequence[str], metric: str,
               path: str | Path, *, title: str = "") -> Path:
    """``metric`` versus the first grid key (mean ± std over seeds) as a PNG."""
    xs, lines = sweep_series(rows, keys, metric)
    numeric = [_number(x) for x in xs]
    use_numbers = bool(xs) and all(v is not None for v in numeric)
    position = {x: (v if use_numbers else i) for i, (x, v) in enumerate(zip(xs, numeric,
                                                                            strict=True))}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in lines.items():
        ax.errorbar([position[p[0]] for p in points], [p[1] for p in points],
                    yerr=[p[2] for p in points], marker="o", capsize=4, label=label)
    if use_numbers:
        positive = [v for v in numeric if v is not None and v > 0]
        if len(positive) == len(numeric) and max(positive) / min(positive) >= 100:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks([position[x] for x in xs], xs)
    else:
        ax.set_xticks(range(len(xs)), xs, rotation=20 if len(xs) > 4 else 0)
    ax.set_xlabel(keys[0] if keys else "")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    if len(lines) > 1 or (keys[1:] and lines):
        ax.legend(fontsize=8)
    failed = sum(r.get("status") != "done" for r in rows)
    note = f"{len(rows)} trials" + (f", {failed} failed" if failed else "")
    ax.set_title(f"{title}: {note}" if title else note, fontsize=10)
    return save_figure(fig, path)
