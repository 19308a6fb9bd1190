"""The end-to-end demo: entropy scoring → P1 proxy selection → BtNAS search on digits →
top-k + ActAll ExtCell derivation → retrain → report (``algo="darts"``: the DARTS slice with
argmax derivation instead), then AutoSNN: super-network → spike-aware search → retrain.

It is the smallest complete run of the whole pipeline, sized to finish within five minutes
on two CPU cores, and the shape every later stage (proxy data, BtNAS, AutoSNN) plugs into.
"""

from __future__ import annotations

import time
from pathlib import Path

from nasforge.analysis.cell_plot import draw_genotype
from nasforge.analysis.curves import plot_curves
from nasforge.checkpoint import atomic_write_text
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.outputs import check_new_dir, create_run_dir
from nasforge.runtime import write_results
from nasforge.search.loop import run_search
from nasforge.spaces.darts.genotype import parse_genotype
from nasforge.train import run_train

ALGO_SETTINGS = {
    "btnas": (),
    "darts": ("search.algo=darts", "search.rule=argmax", "search.k=null",
              "search.act_all=false"),
}
"""The demo's cell searches: BtNAS with top-k + ActAll (default) or DARTS with argmax."""


def run_demo(out: str | Path = "demo-run", *, force: bool = False, progress: bool = True,
             algo: str = "btnas", overrides: tuple[str, ...] = (), snn: bool = True) -> dict:
    """Run the demo into ``out``; returns the contents of ``out/results.json``.

    ``snn`` adds the AutoSNN pipeline (:mod:`nasforge.snn.demo`) under ``out/snn``.
    """
    if algo not in ALGO_SETTINGS:
        raise NasforgeError(f"demo algorithm '{algo}' is not available; choose from: "
                            f"{', '.join(ALGO_SETTINGS)}")
    out = check_new_dir(out, force=force, what="demo directory")
    create_run_dir(out)
    cfg = load_config("demo", [f"run.progress={str(progress).lower()}", *ALGO_SETTINGS[algo],
                               *overrides])

    t0 = time.perf_counter()
    search = run_search(cfg, out / "search")
    t1 = time.perf_counter()
    genotype = parse_genotype(search["genotype"])
    train = run_train(cfg, genotype, out / "train")
    t2 = time.perf_counter()

    cells = draw_genotype(genotype, out)
    selection = _plot_selection(cfg, out)
    plot_curves({"search": out / "search" / "search_log.csv",
                 "retrain": out / "train" / "train_log.csv"}, out / "curves.png")
    results = {
        "algo": cfg.search.algo,
        "rule": {"rule": cfg.search.rule, "k": cfg.search.k, "act_all": cfg.search.act_all},
        "genotype": search["genotype"],
        "ops": {"normal": len(genotype.normal.ops), "reduce": len(genotype.reduce.ops)},
        "params_m": train["params_m"],
        "test_acc": train["test_acc"],
        "search_val_acc": search["val_acc"],
        "search_cost": search["cost"],
        "proxy": {"method": cfg.proxy.method, "size": search["cost"]["train_examples"]},
        "seconds": {"search": t1 - t0, "train": t2 - t1, "total": time.perf_counter() - t0},
        "files": {"normal_cell": cells["normal"].name, "reduce_cell": cells["reduce"].name,
                  "curves": "curves.png", "entropy": selection.name,
                  "search_run": "search", "train_run": "train"},
    }
    report = _report(cfg, results)
    if snn:
        from nasforge.snn.demo import run_snn_demo, snn_report

        results["snn"] = run_snn_demo(out / "snn", progress=progress)
        results["seconds"]["total"] = time.perf_counter() - t0
        report += "\n" + snn_report(results["snn"])
    write_results(out, results)
    atomic_write_text(out / "report.md", report)
    return results


def _plot_selection(cfg, out: Path) -> Path:
    """Entropy histogram of the digits training split with the demo's P1 selection."""
    from nasforge.analysis.proxy_plots import plot_entropy_histogram
    from nasforge.data import read_index_file
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.histogram import bin_width_for

    entropy = read_entropy_list(out / "search" / "entropy.tsv").entropy
    chosen = read_index_file(out / "search" / "proxy.txt", len(entropy))
    return plot_entropy_histogram(entropy, {cfg.proxy.method: chosen},
                                  bin_width_for(cfg.data.dataset, cfg.proxy.bin_width),
                                  out / "entropy.png", title="digits: entropy and proxy subset")


def _report(cfg, r: dict) -> str:
    s, t = cfg.search, cfg.train
    rule = f"rule `{s.rule}`" + (f", k={s.k}" if s.k else "") + (", ActAll" if s.act_all else "")
    return f"""# nasforge demo

{s.algo.upper()} ({s.order}-order) on `{cfg.data.dataset}`, seed {cfg.run.seed}, searched on a
{cfg.proxy.method.upper()} proxy subset of {r['proxy']['size']} training examples chosen by the
entropy of a {cfg.entropy.model} trained for {cfg.entropy.epochs} epochs.

| stage | setting | result | time |
|---|---|---|---|
| proxy | {cfg.entropy.model} entropies, {cfg.proxy.method} selection \
| {r['proxy']['size']} examples | {r['search_cost']['selection']['seconds']:.0f} s |
| search | {s.epochs} epochs, {s.layers} cells, C={s.channels}, batch {s.batch_size} \
| super-net val acc {r['search_val_acc']:.2f}% | {r['seconds']['search']:.0f} s |
| retrain | {t.epochs} epochs, {t.layers} cells, C={t.channels}, batch {t.batch_size} \
| test acc **{r['test_acc']:.2f}%**, {r['params_m']:.3f}M params | {r['seconds']['train']:.0f} s |

## Derived genotype ({rule}: {r['ops']['normal']} normal + {r['ops']['reduce']} reduction ops)

```
{r['genotype']}
```

| normal cell | reduction cell |
|---|---|
| ![normal]({r['files']['normal_cell']}) | ![reduce]({r['files']['reduce_cell']}) |

## Curves

![curves](curves.png)

## Proxy data

![entropy](entropy.png)

Run directories: `search/` (config, log, strengths, checkpoint) and `train/` (config, log,
model). Reload the model with `nasforge.load_model("{Path('train')}")`.
"""
