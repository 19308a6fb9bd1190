"""Search-space quality of SNN macro variants (thesis §5.2.3, Fig. 5.8; ``snn quality``).

For each variant, ``snn.samples`` unique architectures are drawn uniformly from the
candidate blocks and each is trained from scratch under the ``snn train`` protocol (the
thesis used 120 epochs). Every training is an ordinary run directory under
``OUT/runs/<variant>/<i>``, so a killed study resumes where it stopped and any single run
can be inspected; ``quality.csv`` collects accuracy and spikes, and the figure plots them.
A run made with other settings (each run's ``config.yaml`` against this call's, except the
plan ``snn.samples``/``snn.variants`` and run options) is refused, or trained again with
``force``.
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
from nasforge.config import Config, config_from_dict, config_to_dict, read_config
from nasforge.errors import NasforgeError
from nasforge.rerun import other_settings_error, setting_differences
from nasforge.runtime import write_results
from nasforge.snn.backbone import num_tbd
from nasforge.snn.evolution import arch_to_text, sample_unique
from nasforge.snn.train import resume_snn_train, run_snn_train

COLUMNS = ("variant", "index", "arch", "test_acc", "spikes", "params_m")
PLAN_KEYS = ("snn.samples", "snn.variants")
"""Which runs the study makes; a re-run may change them (finished runs are kept)."""


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


def _kept_run(run_dir: Path, run_cfg: Config, *, force: bool, out: Path) -> bool:
    """Whether the run in ``run_dir`` (finished or killed) was made with ``run_cfg``'s
    settings and is kept; one made with others is refused, or with ``force`` replaced."""
    try:
        saved = config_to_dict(read_config(run_dir / "config.yaml"))
    except (OSError, ValueError, NasforgeError):
        return False  # unreadable: train it again
    diffs = setting_differences(saved, config_to_dict(run_cfg), PLAN_KEYS)
    if diffs and not force:
        raise other_settings_error(out, f"an snn quality study (run {run_dir.parent.name}/"
                                   f"{run_dir.name})", diffs)
    return not diffs


def _finished(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None  # not finished, or corrupt: resume or train it again


def run_snn_quality(cfg: Config, out: str | Path, *, force: bool = False) -> dict:
    """Train ``samples`` random architectures per variant; returns the summary.

    Runs already in ``out`` are reused (finished) or resumed (killed) when their settings
    match; ``force`` trains those with other settings again instead of refusing."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = cfg.snn
    plan = [(v, i, a) for v in s.variants for i, a in enumerate(sample_architectures(
        s.blocks, num_tbd(None if v == "default" else v), s.samples, cfg.run.seed))]
    runs = []  # every earlier run is checked before anything is trained
    for variant, index, arch in plan:
        run_dir = out / "runs" / variant / f"{index:03d}"
        run_cfg = _variant_config(cfg, variant, arch)
        kept = (run_dir / "config.yaml").exists() and \
            _kept_run(run_dir, run_cfg, force=force, out=out)
        runs.append((variant, index, arch, run_dir, run_cfg, kept))
    rows = []
    for variant, index, arch, run_dir, run_cfg, kept in tqdm(
            runs, desc="snn quality", unit="net", disable=not cfg.run.progress):
        result = _finished(run_dir) if kept else None
        if result is None and kept:
            result = resume_snn_train(run_dir)
        elif result is None:
            result = run_snn_train(run_cfg, run_dir, force=run_dir.exists())
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
