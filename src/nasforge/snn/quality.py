"""Search-space quality of SNN macro variants (thesis §5.2.3, Fig. 5.8; ``snn quality``).

For each variant, ``snn.samples`` unique architectures are drawn uniformly from the
candidate blocks and each is trained from scratch under the ``snn train`` protocol (the
thesis used 120 epochs). Every training is an ordinary run directory under
``OUT/runs/<variant>/<i>``, so a killed study resumes where it stopped and any single run
can be inspected; ``quality.csv`` collects accuracy and spikes, and the figure plots them.
With one variant and 10 samples this is also Table 5.7's "random sampling" row.
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
from pathlib import Path

from nasforge.checkpoint import atomic_write_text
from nasforge.config import Config, config_from_dict, config_to_dict
from nasforge.runtime import write_results
from nasforge.snn.backbone import num_tbd
from nasforge.snn.evolution import arch_to_text, sample_unique
from nasforge.snn.train import resume_snn_train, run_snn_train

COLUMNS = ("variant", "index", "arch", "test_acc", "spikes", "params_m")


def sample_architectures(blocks: list[str], length: int, count: int, seed: int
                         ) -> list[str]:
    """``count`` distinct uniform architectures (fewer if the space is smaller)."""
    rng = random.Random(f"nasforge.snn.quality:{seed}")
    return [arch_to_text(a) for a in sample_unique(rng, tuple(blocks), length, count, set())]


def _variant_config(cfg: Config, variant: str, arch: str) -> Config:
    data = config_to_dict(cfg)
    data["snn"].update(variant=None if variant == "default" else variant, arch=arch,
                       model=None, space="default")
    data["run"]["progress"] = False
    return config_from_dict(data)


def run_snn_quality(cfg: Config, out: str | Path) -> dict:
    """Train ``samples`` random architectures per variant; returns the summary."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = cfg.snn
    plan = [(v, i, a) for v in s.variants for i, a in enumerate(sample_architectures(
        s.blocks, num_tbd(None if v == "default" else v), s.samples, cfg.run.seed))]
    rows = []
    for variant, index, arch in tqdm(plan, desc="snn quality", unit="net",
                                     disable=not cfg.run.progress):
        run_dir = out / "runs" / variant / f"{index:03d}"
        if (run_dir / "results.json").exists():
            result = json.loads((run_dir / "results.json").read_text())
        elif (run_dir / "config.yaml").exists():
            result = resume_snn_train(run_dir)
        else:
            result = run_snn_train(_variant_config(cfg, variant, arch), run_dir)
        rows.append({"variant": variant, "index": index, "arch": arch,
                     "test_acc": result["test_acc"], "spikes": result["spikes"],
                     "params_m": result["params_m"]})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "quality.csv", buf.getvalue())

    from nasforge.analysis.snn_plots import plot_space_quality

    points = {v: [(r["spikes"], r["test_acc"]) for r in rows if r["variant"] == v]
              for v in s.variants}
    plot_space_quality(points, out / "quality.png",
                       title=f"{cfg.data.dataset}: random SNNs per macro variant")
    summary = {v: {"samples": len(p), "mean_acc": statistics.fmean(a for _, a in p),
                   "mean_spikes": statistics.fmean(x for x, _ in p)}
               for v, p in points.items() if p}
    results = {"stage": "snn-quality", "dataset": cfg.data.dataset, "epochs": s.epochs,
               "variants": summary, "files": {"csv": "quality.csv", "plot": "quality.png"}}
    write_results(out, results)
    return results
