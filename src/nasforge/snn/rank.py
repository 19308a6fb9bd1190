"""Does the super-network rank architectures as training them does? (Kendall τ)

For a few paths, compare the accuracy the search sees (super-network weights on the held-out
split, with and without per-path BatchNorm recalibration) with the test accuracy of the same
architecture trained from scratch under the run's ``snn train`` protocol. The result is the
rank correlation the search's choices rest on (docs/autosnn.md reports it on digits).
``scripts/snn_rank_correlation.py`` is the command-line front end.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from scipy.stats import kendalltau

from nasforge.checkpoint import atomic_write_json, atomic_write_text
from nasforge.config import config_to_dict, load_config
from nasforge.data import read_index_file
from nasforge.errors import NasforgeError
from nasforge.runtime import amp_dtype, load_run_config, pick_device
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.evolution import arch_to_text, sample_unique
from nasforge.snn.search import score_path
from nasforge.snn.supernet import load_supernet, recalibration_batches
from nasforge.snn.train import run_snn_train


def tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's τ-b of two score lists (ties allowed); NaN when either is constant."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise NasforgeError(f"Kendall tau needs two equally long lists of >= 2 scores, got "
                            f"{len(xs)} and {len(ys)}")
    return float(kendalltau(xs, ys).statistic)


def pick_paths(blocks: list[str], length: int, count: int, seed: int, skip_heavy: int = 0
               ) -> list[list[str]]:
    """The all-skip path (the weakest network), ``count - 1`` distinct random paths, then
    ``skip_heavy`` paths with ``length - 1``, ``length - 1``, ``length - 2``, ... skips (the
    other blocks random), which spread the standalone accuracies: random paths mostly train
    to within a few points of each other on small data."""
    skip = tuple(["skip"] * length) if "skip" in blocks else None
    taken: set[tuple[str, ...]] = {skip} if skip else set()
    rng = random.Random(f"nasforge.snn.rank:{seed}")
    rest = sample_unique(rng, blocks, length, count - len(taken), taken)
    convs = [b for b in blocks if b != "skip"]
    for i in range(skip_heavy if skip and convs else 0):
        skips = max(length - 1 - i // 2, 1)
        for _ in range(1000):
            where = set(rng.sample(range(length), skips))
            arch = tuple("skip" if j in where else rng.choice(convs) for j in range(length))
            if arch not in taken:
                taken.add(arch)
                rest.append(arch)
                break
    return [list(p) for p in ([skip] if skip else []) + rest]


def rank_correlation(supernet_dir: str | Path, out: str | Path, *,
                     paths: list[list[str]] | None = None, num_paths: int = 8,
                     skip_heavy: int = 0,
                     recalibrate: tuple[int, ...] = (0, 8), seed: int = 0,
                     train_overrides: tuple[str, ...] = (), progress: bool = False) -> dict:
    """Score ``paths`` on the super-network in ``supernet_dir`` (once per entry of
    ``recalibrate``: BN recalibration batches, 0 = the shared statistics), train each from
    scratch into ``out/train-<i>`` (an existing finished run is reused) and return τ per
    scoring. Writes ``out/rank.json`` and ``out/rank.md``."""
    supernet_dir, out = Path(supernet_dir), Path(out)
    cfg = load_run_config(supernet_dir)
    device = pick_device(cfg.run.device)
    dtype = amp_dtype(device, cfg.run.amp)
    model, meta = load_supernet(supernet_dir, device)
    spec = meta["spec"]
    if paths is None:
        paths = pick_paths(list(spec["candidates"]), model.num_tbd, num_paths, seed,
                           skip_heavy)
    if len(paths) < 2:
        raise NasforgeError("rank correlation needs at least two paths")
    data = load_snn_data(cfg.data.dataset, cfg.data.root, timesteps=spec["timesteps"],
                         upscale=cfg.data.upscale)
    val = snn_batches(data, data.train, cfg.snn.eval_batch_size, device=device,
                      indices=read_index_file(supernet_dir / "val.txt", len(data.train)),
                      shuffle=False)
    train_idx = read_index_file(supernet_dir / "train.txt", len(data.train))
    count = None if spec["neuron"] == "relu" else meta["convention"]
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = [{"arch": arch_to_text(p)} for p in paths]
    for n in recalibrate:
        batches = recalibration_batches(data, train_idx, cfg.snn.batch_size, n, cfg.run.seed,
                                        device)
        for row, path in zip(rows, paths, strict=True):
            acc, spikes = score_path(model, path, val, batches, loss_kind=cfg.snn.loss,
                                     dtype=dtype, count=count, timesteps=spec["timesteps"])
            row[f"supernet_acc_recal{n}"] = acc
            row[f"supernet_spikes_recal{n}"] = spikes
    sections = config_to_dict(cfg)
    for i, row in enumerate(rows):
        run = out / f"train-{i}"
        done = run / "results.json"
        if done.is_file() and json.loads(done.read_text()).get("arch") == row["arch"]:
            result = json.loads(done.read_text())
        else:
            snn = {**sections["snn"], "arch": row["arch"], "model": None}
            train_cfg = load_config(None, [f"run.progress={str(progress).lower()}",
                                           *train_overrides], **{**sections, "snn": snn})
            result = run_snn_train(train_cfg, run, force=True)
        row["standalone_acc"] = result["test_acc"]
        row["standalone_spikes"] = result["spikes"]
    standalone = [r["standalone_acc"] for r in rows]
    taus = {str(n): tau([r[f"supernet_acc_recal{n}"] for r in rows], standalone)
            for n in recalibrate}
    results = {"supernet": str(supernet_dir), "epochs": meta["epochs"],
               "recalibrate": list(recalibrate), "kendall_tau": taus, "paths": rows}
    atomic_write_json(out / "rank.json", results)
    atomic_write_text(out / "rank.md", rank_table(results))
    return results


def rank_table(results: dict) -> str:
    """A markdown table of the scores and τ."""
    recal = results["recalibrate"]
    head = ("| architecture | " + " | ".join(
        f"super-net acc (recal {n})" for n in recal) + " | standalone test acc |")
    lines = [head, "|---" * (len(recal) + 2) + "|"]
    for row in results["paths"]:
        lines.append(f"| `{row['arch']}` | " + " | ".join(
            f"{row[f'supernet_acc_recal{n}']:.2f}" for n in recal)
            + f" | {row['standalone_acc']:.2f} |")
    lines.append("| Kendall τ | " + " | ".join(
        f"{results['kendall_tau'][str(n)]:+.3f}" for n in recal) + " | |")
    return "\n".join(lines) + "\n"
