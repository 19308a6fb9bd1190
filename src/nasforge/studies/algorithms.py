"""The zoo comparison (``nasforge study algorithms``): every algorithm × seeds, with and
without proxy data, scored on the tabular-digits benchmark.

Each search runs in the benchmark's cell space on digits; the found cell's tabulated test
accuracy (the mean of the benchmark's training seeds) is its score, so algorithms are
compared without retraining anything. The runs are those of the chapter-3 study
(:func:`nasforge.studies.proxy_data.run_proxy_study`), which resumes a killed study; this module
only picks the plan and summarises it per algorithm.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from nasforge.checkpoint import atomic_write_json, atomic_write_text
from nasforge.config import Config
from nasforge.errors import NasforgeError

COLUMNS = ("algo", "data", "runs", "test_acc_mean", "test_acc_std", "rank_mean",
           "percentile_mean", "percentile_ci", "search_seconds_mean")


def run_algorithm_study(cfg: Config, out: str | Path, *, progress: bool = True,
                        force: bool = False) -> list[dict]:
    """Run ``cfg.study.algos`` × seeds on full data and on each proxy; write the comparison.

    A re-run into ``out`` with other settings is refused (``force``: recomputed), as in
    :func:`nasforge.studies.proxy_data.run_proxy_study`."""
    from nasforge.studies.proxy_data import run_proxy_study

    out = Path(out)
    if not cfg.study.algos:
        raise NasforgeError("study.algos is empty; name at least one algorithm")
    rows = run_proxy_study(cfg, out, progress=progress, force=force)
    summary = summarise(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary)
    atomic_write_text(out / "algorithms.csv", buf.getvalue())
    atomic_write_json(out / "algorithms.json", summary)
    atomic_write_text(out / "algorithms.md", markdown(summary))
    plot_algorithms(summary, out / "algorithms.png",
                    title=f"{cfg.data.dataset}: the zoo on {cfg.study.bench}")
    return summary


def _label(row: dict) -> str:
    if row["method"] == "full":
        return "full"
    size = float(row["size"])
    return f"{row['method']} {size:g}" if size < 1 else f"{row['method']} {int(size)}"


def summarise(rows: list[dict]) -> list[dict]:
    """Mean ± std tabulated test accuracy, mean rank, the found cell's percentile among all
    cells of the table (mean and 95% CI over seeds) and search time per (algo, data)."""
    from nasforge.studies.proxy_data import percentile_summary

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["algo"], _label(r)), []).append(r)
    out = []
    for (algo, data), rs in groups.items():
        acc = [float(r["test_acc"]) for r in rs]
        out.append({"algo": algo, "data": data, "runs": len(rs),
                    "test_acc_mean": statistics.fmean(acc),
                    "test_acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "rank_mean": statistics.fmean(float(r["rank"]) for r in rs),
                    **{"percentile_mean": None, "percentile_ci": None,
                       **percentile_summary(rs)},
                    "search_seconds_mean": statistics.fmean(
                        float(r["search_seconds"]) for r in rs)})
    return out


def markdown(summary: list[dict]) -> str:
    """One row per algorithm, one column per data setting (mean ± std test accuracy)."""
    datas = list(dict.fromkeys(r["data"] for r in summary))
    lines = ["| algorithm | " + " | ".join(datas) + " | percentile (full) | search s (full) |",
             "|---|" + "---|" * (len(datas) + 2)]
    for algo in dict.fromkeys(r["algo"] for r in summary):
        cells = []
        for d in datas:
            hit = [r for r in summary if r["algo"] == algo and r["data"] == d]
            cells.append(f"{hit[0]['test_acc_mean']:.2f} ± {hit[0]['test_acc_std']:.2f}"
                         if hit else "–")
        full = [r for r in summary if r["algo"] == algo and r["data"] == "full"]
        secs = f"{full[0]['search_seconds_mean']:.0f}" if full else "–"
        pct = "–"
        if full and full[0].get("percentile_mean") is not None:
            pct = f"{full[0]['percentile_mean']:.0f} ± {full[0]['percentile_ci']:.0f}"
        lines.append(f"| {algo} | " + " | ".join(cells) + f" | {pct} | {secs} |")
    return "\n".join(lines) + "\n"


def plot_algorithms(summary: list[dict], path: Path, *, title: str = "") -> Path:
    """Grouped bars: tabulated test accuracy of each algorithm's cell per data setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasforge.analysis.figures import save_figure

    algos = list(dict.fromkeys(r["algo"] for r in summary))
    datas = list(dict.fromkeys(r["data"] for r in summary))
    width = 0.8 / max(len(datas), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(algos) + 2), 4.2))
    for j, d in enumerate(datas):
        xs, ys, es = [], [], []
        for i, a in enumerate(algos):
            hit = [r for r in summary if r["algo"] == a and r["data"] == d]
            if hit:
                xs.append(i + (j - (len(datas) - 1) / 2) * width)
                ys.append(hit[0]["test_acc_mean"])
                es.append(hit[0]["test_acc_std"])
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=d)
    ax.set_xticks(range(len(algos)), algos, rotation=30, ha="right")
    low = min((r["test_acc_mean"] - r["test_acc_std"] for r in summary), default=0.0)
    high = max((r["test_acc_mean"] + r["test_acc_std"] for r in summary), default=100.0)
    ax.set_ylim(max(0.0, low - 1.0), min(100.0, high + 0.5))
    ax.set_ylabel("tabulated test accuracy of the found cell (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_figure(fig, path)
