"""How well proxies rank architectures whose accuracy was measured elsewhere.

:func:`~nasforge.zc.score.zc_eval` checks the proxies against the tabular-digits benchmark.
This module adds the two other ground truths of docs/zero-cost.md:

- :func:`zc_eval_nb101`: random cells of a NAS-Bench-1shot1 space (``1shot1-ss1..3``), each
  looked up in a NAS-Bench-101 table (``nasforge bench nb101-convert``; mean test accuracy of
  the 108-epoch repeats) and scored in the 1shot1 network at a chosen size;
- :func:`zc_eval_snn`: the spiking networks an ``nasforge snn quality`` study trained, each
  rebuilt untrained from its run's own network spec (same macro variant, channels, T,
  neuron), scored through the surrogate gradient, against the test accuracy it reached.

Both return the same dict as :func:`~nasforge.zc.score.zc_eval` (``correlations``, one
``row`` per architecture with its scores and ``test_acc``), so ``format_table`` prints them.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nasforge.errors import NasforgeError
from nasforge.runtime import pick_device
from nasforge.zc.sample import NetSettings, check_space, sample_architectures
from nasforge.zc.score import (
    _batch_needed,
    _loss_fn,
    eval_result,
    load_batch,
    resolve_proxies,
    score_architectures,
    score_model,
)


def zc_eval_nb101(table: str | Path, space: str = "1shot1-ss3", samples: int = 100,
                  proxies: Sequence[str] | str | None = None, seed: int = 0,
                  out: str | Path | None = None, *, dataset: str = "cifar10",
                  batch: int | None = None, channels: int = 16, layers: int = 9,
                  data_root: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Score ``samples`` seeded random cells of ``space`` and correlate with NAS-Bench-101.

    ``channels``/``layers`` size the scored network (NAS-Bench-101 trains C=128 with 9
    cells; proxies are usually computed smaller). Cells the table lacks are an error: a
    converted official table holds every cell of the three spaces."""
    from nasforge.benchmarks.nasbench101 import NasBench101Table
    from nasforge.spaces.nb101.space import ONESHOT_SPACES

    if check_space(space) != "1shot1":
        raise NasforgeError(f"NAS-Bench-101 holds the 1shot1 spaces "
                            f"({', '.join(ONESHOT_SPACES.names())}); got space {space}")
    for name, value in (("channels", channels), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NasforgeError(f"{name} must be a positive whole number; got {value!r}")
    names = resolve_proxies(proxies)
    where = pick_device(device)
    nb101 = NasBench101Table.load(table)
    oneshot = ONESHOT_SPACES.get(space)
    drawn = sample_architectures(space, samples, seed)
    truth = []
    for sample in drawn:
        matrix, ops = oneshot.to_spec(sample.arch)
        module = nb101.hash_of(matrix, ops)
        if module not in nb101:
            raise NasforgeError(f"{table} has no entry for cell {sample.text} "
                                f"(module {module}); convert the full official file")
        truth.append(100.0 * float(nb101.query_hash(module)["test_accuracy"]))
    data = load_batch(dataset, _batch_needed(names, batch), seed, root=data_root)
    start = time.perf_counter()
    rows = score_architectures(space, drawn, names, data, batch, seed,
                               settings=NetSettings(channels=channels, layers=layers),
                               device=where)
    for row, acc in zip(rows, truth, strict=True):
        row["test_acc"] = acc
    return eval_result(f"nas-bench-101 ({space})", rows, truth, names, seed, batch, start,
                       out, dataset=dataset, channels=channels, layers=layers)


def quality_runs(study: str | Path) -> list[tuple[Path, str, float]]:
    """(run directory, architecture, test accuracy) of every finished run of an
    ``snn quality`` study, in ``quality.csv`` order."""
    study = Path(study)
    table = study / "quality.csv"
    if not table.is_file():
        raise NasforgeError(f"{study} holds no quality.csv: give the --out folder of a "
                            "finished `nasforge snn quality` study")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    runs = []
    for r in rows:
        run_dir = study / "runs" / r["variant"] / f"{int(r['index']):03d}"
        if not (run_dir / "results.json").is_file():
            raise NasforgeError(f"{run_dir} has no results.json; finish the study first")
        runs.append((run_dir, r["arch"], float(r["test_acc"])))
    if len(runs) < 2:
        raise NasforgeError(f"{table} lists {len(runs)} trained network(s); a correlation "
                            "needs at least 2")
    return runs


def zc_eval_snn(study: str | Path, proxies: Sequence[str] | str | None = None,
                seed: int = 0, out: str | Path | None = None, *, batch: int | None = None,
                snn_loss: str = "mse", data_root: str | None = None,
                device: str = "auto") -> dict[str, Any]:
    """Correlate proxy scores of the untrained networks of an ``snn quality`` study with the
    test accuracy each reached after training.

    Each network is rebuilt from its run's saved spec (``config.yaml`` → the same builder
    ``snn train`` uses), initialised by ``torch.manual_seed(seed)`` and scored on one batch
    of the study's data set."""
    from nasforge.config import read_config
    from nasforge.snn.data import load_snn_data
    from nasforge.snn.train import build_network, network_spec
    from nasforge.zc.sample import SNNRates

    names = resolve_proxies(proxies)
    where = pick_device(device)
    runs = quality_runs(study)
    cfg0 = read_config(runs[0][0] / "config.yaml")
    dataset = cfg0.data.dataset
    snn_data = load_snn_data(dataset, data_root or cfg0.data.root,
                             timesteps=cfg0.snn.timesteps, upscale=cfg0.data.upscale)
    if snn_data.frames:
        raise NasforgeError(f"zc eval scores static-image SNNs; {dataset} holds DVS frames")
    data = load_batch(dataset, _batch_needed(names, batch), seed,
                      root=data_root or cfg0.data.root, upscale=cfg0.data.upscale)
    loss = _loss_fn(True, snn_loss)
    start = time.perf_counter()
    rows = []
    for i, (run_dir, arch, acc) in enumerate(runs):
        cfg = read_config(run_dir / "config.yaml")
        if cfg.data.dataset != dataset:
            raise NasforgeError(f"{run_dir} trained on {cfg.data.dataset}, the study's first "
                                f"run on {dataset}")
        torch.manual_seed(seed)
        model = SNNRates(build_network(network_spec(cfg, snn_data)))
        t0 = time.perf_counter()
        row: dict[str, Any] = {"index": i, "space": "snn", "arch": arch,
                               "variant": run_dir.parent.name}
        row.update(score_model(model, names, data, loss, batch, device=where))
        row["seconds"] = round(time.perf_counter() - t0, 4)
        row["test_acc"] = acc
        rows.append(row)
    return eval_result(f"snn quality ({Path(study)})", rows, [r["test_acc"] for r in rows],
                       names, seed, batch, start, out, dataset=dataset)
