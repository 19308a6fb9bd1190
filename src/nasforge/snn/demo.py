"""AutoSNN end to end on digits: super-network → spike-aware search (two λ) → retrain → Pareto.

The chapter-5 pipeline at CPU scale (``configs/demo/autosnn-digits.yaml``): the super-network
trains on 80% of the digits training split with its own, larger budget (uniform sampling
over 3,125 paths needs several times the updates of one network), Algorithm 1 runs with the
thesis's parameters for λ = 0 and λ = −0.08 on the held-out 20%, each path's BatchNorm
statistics recalibrated before it is scored, and each top-1 architecture plus the
hand-crafted CIFARNet-Fang at the same width is retrained from scratch and measured on the
test split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nasforge.analysis.snn_plots import (
    plot_accuracy_vs_spikes,
    plot_layer_spikes,
    plot_search_history,
    plot_snn_architecture,
)
from nasforge.config import config_to_dict, load_config
from nasforge.outputs import create_run_dir
from nasforge.snn.search import lam_dir, run_snn_search
from nasforge.snn.supernet import run_supernet
from nasforge.snn.train import run_snn_train

CONFIG = "autosnn-digits"
BASELINE = "cifarnet-fang"


def run_snn_demo(out: str | Path, *, progress: bool = True,
                 overrides: tuple[str, ...] = ()) -> dict:
    """Run the AutoSNN demo into ``out`` (a fresh directory); returns its summary."""
    out = create_run_dir(out)  # inside the demo directory: nasforge's, and --force clears it
    cfg = load_config(CONFIG, [f"run.progress={str(progress).lower()}", *overrides])
    t0 = time.perf_counter()
    supernet = run_supernet(cfg, out / "supernet")
    t1 = time.perf_counter()
    search = run_snn_search(out / "supernet", out / "search",
                            [f"run.progress={str(progress).lower()}"])
    t2 = time.perf_counter()

    trained: dict[str, dict] = {}
    nets = [(f"lam{row['lam']:+g}", {"snn": {"arch": row["arch"]}}) for row in search["searches"]]
    nets.append((BASELINE, {"snn": {"model": BASELINE}}))
    for name, change in nets:
        arch = change["snn"].get("arch")
        same = next((k for k, r in trained.items() if arch and r["arch"] == arch), None)
        if same is not None:  # two λ found the same network: train it once
            trained[name] = trained[same]
            continue
        sections = config_to_dict(cfg)
        sections["snn"].update({"arch": None, "model": None, **change["snn"]})
        trained[name] = run_snn_train(load_config(None, **sections), out / f"train-{name}")
    t3 = time.perf_counter()

    points = []
    for name, r in trained.items():
        searched = r["kind"] == "searched"
        points.append({"label": f"AutoSNN {name}" if searched else r["label"],
                       "acc": r["test_acc"], "spikes": r["spikes"], "params_m": r["params_m"],
                       "channels": r["channels"], "timesteps": r["timesteps"],
                       "kind": r["kind"]})
    plot_accuracy_vs_spikes(points, out / "pareto.png",
                            title="digits: accuracy vs spikes (marker area ~ parameters)")
    profiles = {}
    for name in dict.fromkeys(trained):
        run = out / f"train-{name}"
        if (run / "spikes.json").exists():
            profiles[name] = json.loads((run / "spikes.json").read_text())
    plot_layer_spikes(profiles, out / "layers.png", title="digits: spikes and firing rates")
    lam = search["searches"][-1]["lam"]
    history = json.loads((lam_dir(out / "search", lam) / "result.json").read_text())
    plot_search_history(history["history"], out / "search.png", best=history["best"],
                        title=f"evolutionary search, lambda={lam:+g}")
    plot_snn_architecture(history["best"].split(","), out / "arch.png",
                          title=f"AutoSNN (lambda={lam:+g}) on digits")
    return {
        "n_avg": supernet["n_avg"],
        "supernet_val_acc_random_path": supernet["val_acc_random_path"],
        "searches": search["searches"],
        "trained": {name: {k: r[k] for k in ("label", "kind", "arch", "test_acc", "spikes",
                                            "spikes_neurons", "params_m")}
                    for name, r in trained.items()},
        "seconds": {"supernet": t1 - t0, "search": t2 - t1, "train": t3 - t2,
                    "total": time.perf_counter() - t0},
        "files": {"pareto": "pareto.png", "layers": "layers.png", "search": "search.png",
                  "arch": "arch.png"},
        "settings": {"channels": cfg.snn.channels, "timesteps": cfg.snn.timesteps,
                     "epochs": cfg.snn.epochs, "supernet_epochs": supernet["epochs"],
                     "bn_recalibrate_batches": cfg.snn.bn_recalibrate_batches},
    }


def snn_report(r: dict, prefix: str = "snn") -> str:
    """The AutoSNN section of the demo report (markdown)."""
    rows = "\n".join(
        f"| {name} | `{t['arch'] or t['label']}` | {t['test_acc']:.2f}% | "
        f"{t['spikes']:,.0f} | {t['params_m'] * 1e3:.1f}K |"
        for name, t in r["trained"].items())
    searches = "\n".join(
        f"| {s['lam']:+g} | `{s['arch']}` | {s['acc']:.2f}% | {s['spikes']:,.0f} | "
        f"{s['fitness']:.3f} |" for s in r["searches"])
    st = r["settings"]
    return f"""## AutoSNN (chapter 5)

Super-network with C={st['channels']}, T={st['timesteps']}, {st['supernet_epochs']} epochs on 80%
of the training split: N_avg = {r['n_avg']:,.0f} spikes per image; a random path scores
{r['supernet_val_acc_random_path']:.2f}% on the held-out 20% (shared BatchNorm statistics).
Each scored path's BatchNorm statistics are first recomputed on
{st['bn_recalibrate_batches']} training batches. Retraining: {st['epochs']} epochs.
({r['seconds']['supernet']:.0f} s; search {r['seconds']['search']:.0f} s;
retraining {r['seconds']['train']:.0f} s.)

| lambda | top-1 architecture | val acc (super-net weights) | spikes | fitness |
|---|---|---|---|---|
{searches}

Retrained from scratch, measured on the test split (spikes per image, thesis convention):

| network | architecture | test acc | spikes | params |
|---|---|---|---|---|
{rows}

![accuracy vs spikes]({prefix}/{r['files']['pareto']})
![search]({prefix}/{r['files']['search']})
![architecture]({prefix}/{r['files']['arch']})
![layers]({prefix}/{r['files']['layers']})
"""
