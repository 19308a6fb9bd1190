"""The chapter-3 study at CPU scale: how well does a search on a proxy subset do?

For every algorithm × selector × subset size × seed: select the subset from one entropy
list, search on it in the tabular benchmark's space, and score the found cell by its
tabulated test accuracy (NAS-Bench-1shot1's role in §3.4.2). The full-data search with the
same seeds is the baseline. Finished runs are skipped on a re-run, so a killed study resumes;
a re-run with other settings (anything but the plan lists and run options) is refused, or
with ``force`` recomputes what the old settings made (:mod:`nasforge.rerun`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from nasforge.checkpoint import atomic_write_json, atomic_write_text
from nasforge.config import Config, config_from_dict, config_to_dict, read_config
from nasforge.data import load_dataset, write_index_file
from nasforge.errors import NasforgeError
from nasforge.rerun import other_settings_error, setting_differences

FIELDS = ("algo", "method", "size", "k", "seed", "test_acc", "val_acc", "rank", "percentile",
          "params", "search_seconds", "examples_seen", "genotype")
PLAN_KEYS = ("study.algos", "study.methods", "study.sizes", "study.seeds", "study.bench")
"""What a re-run may change: which rows the study makes, and the table that scores them
(finished runs are kept; every row is looked up again, so a new ``study.bench`` re-scores
the finished searches without running them)."""
ENTROPY_KEYS = ("data", "entropy", "run.seed", "proxy.entropy")
"""Settings the study's own ``entropy.tsv`` depends on."""
SELECTION_KEYS = (*ENTROPY_KEYS, "proxy")
"""Settings its proxy index files depend on."""


def _size_label(size: float) -> str:
    return f"{int(size)}" if size >= 1 else f"{size:g}"


def _run_name(algo: str, method: str, size: float, seed: int) -> str:
    return f"{algo}-{method}-{_size_label(size)}-s{seed}"


def _run_config(cfg: Config, algo: str, seed: int) -> Config:
    """The config of one search of the study (``data.proxy`` is set by the caller)."""
    run_cfg = config_from_dict(config_to_dict(cfg))
    run_cfg.search.algo, run_cfg.run.seed = algo, seed
    run_cfg.run.progress = False
    return run_cfg


def _saved_settings(out: Path) -> dict | None:
    """The config an earlier call saved in ``out/config.json`` (None for a new folder)."""
    path = out / "config.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        return config_to_dict(config_from_dict(saved))
    except (OSError, ValueError, TypeError, AttributeError, NasforgeError):
        raise NasforgeError(f"{path} is not a study config (unreadable or of another "
                            "command); use a new --out") from None


def _touches(diffs: list[str], keys: tuple[str, ...]) -> bool:
    names = [d.split(" ", 1)[0] for d in diffs]
    return any(n == k or n.startswith(f"{k}.") for n in names for k in keys)


def _finished_run(run_dir: Path, run_cfg: Config, *, force: bool, out: Path) -> dict | None:
    """The results of a finished run made with ``run_cfg``'s settings; None when it must run
    (not finished, unreadable results, or other settings with ``force``)."""
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        return None
    try:
        result = json.loads(results_file.read_text())
        saved = config_to_dict(read_config(run_dir / "config.yaml"))
    except (OSError, ValueError, NasforgeError):
        return None  # a corrupt or half-written run: search it again
    diffs = setting_differences(saved, config_to_dict(run_cfg), (*PLAN_KEYS, "data.proxy"))
    if diffs:
        if force:
            return None
        raise other_settings_error(out, f"a proxy study (run {run_dir.name})", diffs)
    return result


def run_proxy_study(cfg: Config, out: str | Path, *, progress: bool = True,
                    force: bool = False) -> list[dict]:
    """Run (or finish) the study into ``out``; returns the rows of ``out/results.csv``.

    A folder holding a study with other settings is refused; with ``force`` the rows (and
    the study's own entropy list and proxy files) those settings made are computed again.
    """
    from nasforge.benchmarks.tabular import TabularBenchmark
    from nasforge.proxy.entropy import load_features, read_entropy_list, read_forgetting
    from nasforge.proxy.histogram import bin_width_for
    from nasforge.proxy.scoring import score_entropy
    from nasforge.proxy.selectors import SELECTORS, resolve_size, select
    from nasforge.search import STRATEGIES
    from nasforge.search.loop import run_search

    out = Path(out)
    st = cfg.study
    for m in st.methods:
        SELECTORS.get(m)
    for a in st.algos:
        STRATEGIES.get(a)
    bench = TabularBenchmark.load(st.bench)
    saved = _saved_settings(out)
    diffs = [] if saved is None else setting_differences(saved, config_to_dict(cfg), PLAN_KEYS)
    if diffs and not force:
        raise other_settings_error(out, "a proxy study", diffs)
    plan = [(a, "full", 1.0, s) for a in st.algos for s in st.seeds]
    plan += [(a, m, z, s) for a in st.algos for m in st.methods for z in st.sizes
             for s in st.seeds]
    if not force:  # every earlier run is checked before anything is written or searched
        for algo, method, size, seed in plan:
            _finished_run(out / "runs" / _run_name(algo, method, size, seed),
                          _run_config(cfg, algo, seed), force=False, out=out)
    out.mkdir(parents=True, exist_ok=True)  # after the checks: a typo leaves no directory
    entropy_path = Path(cfg.proxy.entropy) if cfg.proxy.entropy else out / "entropy.tsv"
    rescore = not cfg.proxy.entropy and _touches(diffs, ENTROPY_KEYS)
    # --force: files the old settings made go before the new config is saved, so a kill
    # in between cannot leave them looking current
    if rescore and entropy_path.is_file():
        entropy_path.unlink()
    if _touches(diffs, SELECTION_KEYS):
        for old in sorted((out / "proxies").glob("*.txt")):
            old.unlink()
    atomic_write_text(out / "config.json", json.dumps(config_to_dict(cfg), indent=2))
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    n = len(data.train)

    side = entropy_path.parent / (entropy_path.name + ".run")
    if rescore or not entropy_path.is_file():
        score_entropy(cfg, entropy_path, force=True)
    entropy = read_entropy_list(entropy_path, n).entropy
    features = load_features(side / "features.npy") if (side / "features.npy").is_file() \
        else None
    forgetting = read_forgetting(side / "forgetting.tsv") \
        if (side / "forgetting.tsv").is_file() else None
    bin_width = bin_width_for(cfg.data.dataset, cfg.proxy.bin_width)

    rows: list[dict] = []
    for i, (algo, method, size, seed) in enumerate(plan):
        name = _run_name(algo, method, size, seed)
        run_dir = out / "runs" / name
        run_cfg = _run_config(cfg, algo, seed)
        if method == "full":
            run_cfg.data.proxy, k = None, n
        else:
            k = resolve_size(size, n)
            index_file = out / "proxies" / f"{method}-{_size_label(size)}-s{seed}.txt"
            if not index_file.is_file():
                idx = select(method, k, entropy=entropy, labels=data.train.y, seed=seed,
                             bin_width=bin_width, beta=cfg.proxy.beta,
                             class_balanced=cfg.proxy.class_balanced, features=features,
                             forgetting=forgetting)
                write_index_file(index_file, idx)
            run_cfg.data.proxy = str(index_file.resolve())
        result = _finished_run(run_dir, run_cfg, force=force, out=out)
        if result is None:
            if progress:
                print(f"[{i + 1}/{len(plan)}] {name}", flush=True)
            result = run_search(run_cfg, run_dir, force=True)
        try:
            scored = bench.query(result["genotype"])
        except NasforgeError as exc:
            raise NasforgeError(f"study run {name}: {exc}") from exc
        rows.append({
            "algo": algo, "method": method, "size": size, "k": k, "seed": seed,
            "test_acc": scored["test_acc_mean"], "val_acc": scored["val_acc_mean"],
            "rank": scored["rank"], "percentile": scored["percentile"],
            "params": scored["params"],
            "search_seconds": result["cost"]["seconds"],
            "examples_seen": result["cost"]["examples_seen"], "genotype": scored["key"],
        })
        write_rows(out / "results.csv", rows)
    summary = summarise(rows)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", markdown_table(summary))
    plot_study(rows, out / "study.png", title=f"{cfg.data.dataset}: search on proxy data "
               f"({st.bench})")
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval (0 for a single value).

    With 2 seeds the interval is wide (t = 12.7): that is what 2 seeds can say.
    """
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return mean, float(t.ppf(0.5 + level / 2, n - 1)) * sd / n ** 0.5


def summarise(rows: list[dict]) -> dict:
    """Mean tabulated test accuracy, table percentile (95% CI over seeds) and mean search
    time per (algo, method, size)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["algo"], r["method"], float(r["size"])), []).append(r)
    table = []
    for (algo, method, size), rs in sorted(groups.items()):
        acc = torch.tensor([float(r["test_acc"]) for r in rs], dtype=torch.float64)
        table.append({"algo": algo, "method": method, "size": size, "k": int(rs[0]["k"]),
                      "runs": len(rs), "test_acc_mean": float(acc.mean()),
                      "test_acc_std": float(acc.std()) if len(rs) > 1 else 0.0,
                      **percentile_summary(rs),
                      "search_seconds_mean": sum(float(r["search_seconds"]) for r in rs)
                      / len(rs)})
    return {"table": table}


def percentile_summary(rows: list[dict]) -> dict:
    """``percentile_mean`` and ``percentile_ci`` (95% half-width) of rows that carry one
    (results written before the column existed carry none)."""
    values = [float(r["percentile"]) for r in rows if r.get("percentile") not in (None, "")]
    if not values:
        return {}
    mean, half = mean_ci(values)
    return {"percentile_mean": mean, "percentile_ci": half}


def markdown_table(summary: dict) -> str:
    """Mean ± std tabulated test accuracy, one row per method, one column per subset size."""
    lines = []
    table = summary["table"]
    for algo in sorted({r["algo"] for r in table}):
        entries = [r for r in table if r["algo"] == algo]
        sizes = sorted({(r["size"], r["k"]) for r in entries if r["method"] != "full"})
        full = [r for r in entries if r["method"] == "full"]
        head = " | ".join(f"{_size_label(z)} ({k})" for z, k in sizes)
        title = f"**{algo}**"
        if full:
            f = full[0]
            title += (f" — full data ({f['k']} examples): "
                      f"{f['test_acc_mean']:.2f} ± {f['test_acc_std']:.2f}")
        lines += [title, "", f"| method | {head} | mean |",
                  "|---|" + "---|" * (len(sizes) + 1)]
        methods = sorted({r["method"] for r in entries} - {"full"})
        for method in methods:
            cells, means = [], []
            for z, _ in sizes:
                hit = [r for r in entries if r["method"] == method and r["size"] == z]
                if hit:
                    cells.append(f"{hit[0]['test_acc_mean']:.2f} ± {hit[0]['test_acc_std']:.2f}")
                    means.append(hit[0]["test_acc_mean"])
                else:
                    cells.append("–")
            avg = f"{sum(means) / len(means):.2f}" if means else "–"
            lines.append(f"| {method} | {' | '.join(cells)} | {avg} |")
        lines.append("")
    return "\n".join(lines)


def plot_study(rows: list[dict], path: Path, *, title: str = "") -> Path:
    """Tabulated test accuracy of the found cell vs subset size, one line per selector,
    with the full-data search as the black reference (Figs. 3.3/3.6/3.10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasforge.analysis.figures import save_figure

    table = summarise(rows)["table"]
    algos = sorted({r["algo"] for r in table})
    fig, axes = plt.subplots(1, len(algos), figsize=(6.5 * len(algos), 4.2), squeeze=False)
    for ax, algo in zip(axes[0], algos, strict=True):
        entries = [r for r in table if r["algo"] == algo]
        full = [r for r in entries if r["method"] == "full"]
        if full:
            ax.axhline(full[0]["test_acc_mean"], color="k", lw=2, label="full data")
            ax.axhspan(full[0]["test_acc_mean"] - full[0]["test_acc_std"],
                       full[0]["test_acc_mean"] + full[0]["test_acc_std"], color="k",
                       alpha=0.1)
        for method in sorted({r["method"] for r in entries} - {"full"}):
            pts = sorted((r["k"], r["test_acc_mean"], r["test_acc_std"]) for r in entries
                         if r["method"] == method)
            ks, means, stds = zip(*pts, strict=True)
            style = "-" if method in ("p1", "p2", "p3") else "--"
            ax.errorbar(ks, means, yerr=stds, fmt=style, marker="o", ms=4, capsize=2,
                        label=method, lw=2 if method == "p1" else 1)
        ax.set_xscale("log")
        ax.set_xlabel("proxy size (examples)")
        ax.set_ylabel("tabulated test accuracy of found cell (%)")
        ax.set_title(f"{algo}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    return save_figure(fig, path)
