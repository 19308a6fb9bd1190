"""Score architectures with zero-cost proxies and rank-correlate the scores with accuracy.

:func:`score_architectures` builds each sampled network (default PyTorch initialisation,
``torch.manual_seed(seed)`` before each one), runs every requested proxy on one seeded
batch of training images and returns one row per architecture. A proxy reads the first
``batch`` examples of that batch, or, without ``batch``, as many as its paper used
(:attr:`Proxy.batch_size`). ANNs are scored with cross-entropy; SNNs (the ``snn`` space)
run over their T time steps with the neurons reset before every forward, gradients flow
through the surrogate (arctan) of the spike function, and the loss is the SNN training loss
(``mse`` of firing rates vs one-hot labels by default, as ``snn train``).

:func:`correlations` gives Spearman's ρ and Kendall's τ-b of each proxy with accuracy;
:func:`zc_eval` scores every cell of the tabular benchmark and correlates with its mean test
accuracy; :func:`zc_score` scores random samples of a space and writes them to a CSV file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.runtime import pick_device
from nasforge.zc.proxies import PROXIES
from nasforge.zc.sample import (
    NetSettings,
    Sample,
    build_network,
    check_space,
    default_settings,
    is_snn,
    sample_architectures,
)

__all__ = [
    "ProxyBatch",
    "correlations",
    "format_table",
    "load_batch",
    "resolve_proxies",
    "score_architectures",
    "score_model",
    "zc_eval",
    "zc_score",
]

ROW_FIELDS = ("index", "space", "arch")


@dataclass(frozen=True)
class ProxyBatch:
    """Normalised training images ``x`` [N, C, H, W], labels ``y`` and the class count."""

    x: Tensor
    y: Tensor
    num_classes: int

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def size(self) -> int:
        return int(self.x.shape[-1])

    def to(self, device: torch.device | str) -> ProxyBatch:
        """The same batch on ``device`` (itself when it is there already)."""
        device = torch.device(device)
        if self.x.device == device:
            return self
        return ProxyBatch(self.x.to(device), self.y.to(device), self.num_classes)


def resolve_proxies(proxies: Sequence[str] | str | None) -> list[str]:
    """Proxy names in the order given (a comma list or a sequence; None: all, sorted)."""
    if proxies is None:
        return PROXIES.names()
    names = [p.strip() for p in proxies.split(",")] if isinstance(proxies, str) else \
        [str(p).strip() for p in proxies]
    names = [n for n in names if n]
    if not names:
        raise NasforgeError(f"no proxy given; choose from: {', '.join(PROXIES.names())}")
    for name in names:
        PROXIES.get(name)
    if len(set(names)) != len(names):
        raise NasforgeError(f"a proxy is listed twice in {','.join(names)}")
    return names


def _batch_needed(proxies: Sequence[str], batch: int | None) -> int:
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 2:
            raise NasforgeError(f"batch must be a whole number of at least 2; got {batch!r}")
        return batch
    return max([PROXIES.get(p).batch_size for p in proxies] + [2])


def load_batch(dataset: str, size: int, seed: int, *, indices: Tensor | None = None,
               root: str | None = None, upscale: int | None = None) -> ProxyBatch:
    """``size`` training examples of ``dataset`` drawn without replacement by ``seed``,
    scaled to [0, 1] and normalised with the data set's mean and std (no augmentation).
    With ``indices`` (a proxy subset) the examples are drawn among those training rows."""
    from nasforge.data import Split, load_dataset

    data = load_dataset(dataset, root, upscale=upscale)
    if not isinstance(data.train, Split):
        raise NasforgeError(f"zero-cost scoring reads in-memory data sets; {dataset} is an "
                            "image folder")
    n = len(data.train) if indices is None else len(indices)
    if size > n:
        where = f"{dataset}, whose training split" if indices is None else "the proxy subset, which"
        raise NasforgeError(f"batch of {size} asked from {where} has {n} examples")
    gen = torch.Generator().manual_seed(int(seed))
    rows = torch.randperm(n, generator=gen)[:size]
    if indices is not None:
        rows = torch.as_tensor(indices, dtype=torch.long)[rows]
    x = data.train.x[rows].float() / 255.0
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    # Standard strides: a 1-channel batch can carry channels-last strides, which nasforge's
    # FactorizedReduce answers with functional convs that module hooks (fisher) cannot see.
    x = ((x - mean) / std).clone(memory_format=torch.contiguous_format)
    return ProxyBatch(x, data.train.y[rows].clone(), data.num_classes)


def _loss_fn(snn: bool, snn_loss: str):  # noqa: ANN202
    if not snn:
        return F.cross_entropy
    from nasforge.snn.epoch import rate_loss

    return lambda rates, y: rate_loss(rates, y, snn_loss)


def score_architectures(space: str, samples: Sequence[Sample], proxies: Sequence[str] | None,
                        data: ProxyBatch, batch: int | None = None, seed: int = 0, *,
                        settings: NetSettings | None = None, snn_loss: str = "mse",
                        device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """One row per sample: ``index``, ``space``, ``arch`` (text), then each proxy's score
    (higher = better) and ``seconds`` (wall time of all its proxies).

    Every network is initialised on the CPU from ``seed`` and then moved to ``device``, so
    a device changes only the arithmetic, never the weights a proxy sees."""
    check_space(space)
    names = resolve_proxies(proxies)
    need = _batch_needed(names, batch)
    if data.x.shape[0] < need:
        raise NasforgeError(f"the data batch holds {data.x.shape[0]} examples; the proxies "
                            f"need {need}")
    settings = settings or default_settings(space)
    data = data.to(device)
    rows = []
    for sample in samples:
        if sample.space != space:
            raise NasforgeError(f"sample {sample.index} is from space {sample.space}, not "
                                f"{space}")
        torch.manual_seed(seed)
        model = build_network(sample, in_channels=data.channels, in_size=data.size,
                              num_classes=data.num_classes, settings=settings)
        loss = _loss_fn(is_snn(model), snn_loss)
        row: dict[str, Any] = {"index": sample.index, "space": space, "arch": sample.text}
        start = time.perf_counter()
        row.update(score_model(model, names, data, loss, batch, device=device))
        row["seconds"] = round(time.perf_counter() - start, 4)
        rows.append(row)
    return rows


def score_model(model: nn.Module, names: Sequence[str], data: ProxyBatch, loss: Callable,
                batch: int | None = None, *, device: torch.device | str = "cpu"
                ) -> dict[str, float]:
    """Every proxy of ``names`` on one built network (each on its own batch size), with
    the network and the batch on ``device``."""
    model.to(device)
    data = data.to(device)
    out = {}
    for name in names:
        proxy = PROXIES.get(name)
        b = batch if batch is not None else max(proxy.batch_size, 1)
        out[name] = proxy(model, data.x[:b], data.y[:b], loss)
    return out


def correlations(rows: Sequence[dict[str, Any]], accuracies: Sequence[float],
                 proxies: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Spearman ρ and Kendall τ-b of each proxy's scores with ``accuracies`` (aligned with
    ``rows``). NaN scores are left out pairwise (``n`` counts the pairs used); ``−inf`` ranks
    lowest. A proxy constant over the rows has no correlation (NaN)."""
    from scipy.stats import kendalltau, spearmanr

    if len(rows) != len(accuracies):
        raise NasforgeError(f"{len(rows)} rows but {len(accuracies)} accuracies")
    names = [p for p in (proxies or PROXIES.names()) if rows and p in rows[0]]
    out: dict[str, dict[str, float]] = {}
    for name in names:
        pairs = [(float(r[name]), float(a)) for r, a in zip(rows, accuracies, strict=True)
                 if not math.isnan(float(r[name]))]
        scores = [s for s, _ in pairs]
        accs = [a for _, a in pairs]
        if len(pairs) < 2 or len(set(scores)) < 2 or len(set(accs)) < 2:
            rho = tau = math.nan
        else:
            # ranks make ±inf ordinary values
            rho = float(spearmanr(scores, accs).statistic)
            tau = float(kendalltau(scores, accs).statistic)
        out[name] = {"spearman": rho, "kendall": tau, "n": len(pairs)}
    return out


def format_table(result: dict[str, Any]) -> str:
    """The correlation table of :func:`zc_eval` as aligned text, best Spearman first."""
    corr = result["correlations"]
    order = sorted(corr, key=lambda p: -corr[p]["spearman"]
                   if not math.isnan(corr[p]["spearman"]) else math.inf)
    lines = [f"{'proxy':<10} {'spearman':>9} {'kendall':>8} {'n':>4}"]
    for p in order:
        c = corr[p]
        lines.append(f"{p:<10} {c['spearman']:>9.3f} {c['kendall']:>8.3f} {c['n']:>4}")
    return "\n".join(lines)


def _write_csv(path: str | Path, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> Path:
    from nasforge.checkpoint import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*ROW_FIELDS, *names, "seconds"],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def zc_score(space: str, samples: int, proxies: Sequence[str] | str | None = None,
             dataset: str = "digits", seed: int = 0, out: str | Path | None = None, *,
             batch: int | None = None, settings: NetSettings | None = None,
             snn_loss: str = "mse", device: str = "auto") -> list[dict[str, Any]]:
    """Score ``samples`` seeded random architectures of ``space`` on ``dataset``; with
    ``out``, write the rows to that CSV file (columns ``index,space,arch,<proxies>,seconds``).

    ``seed`` fixes the architectures, the data batch and every network's initialisation;
    ``device`` (``auto``: CUDA when present) is where the proxies run.
    """
    where = pick_device(device)
    names = resolve_proxies(proxies)
    drawn = sample_architectures(space, samples, seed)
    data = load_batch(dataset, _batch_needed(names, batch), seed)
    rows = score_architectures(space, drawn, names, data, batch, seed, settings=settings,
                               snn_loss=snn_loss, device=where)
    if out is not None:
        _write_csv(out, rows, names)
    return rows


def zc_eval(benchmark: str = "tabular-digits", proxies: Sequence[str] | str | None = None,
            seed: int = 0, out: str | Path | None = None, *, batch: int | None = None,
            limit: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Rank every cell of a tabular benchmark by every proxy; Spearman/Kendall with the
    cells' mean test accuracy (over the table's seeds).

    Networks are the table's own (its protocol's ``channels`` and ``layers``, the fixed
    reduction cell), scored on a batch of the protocol's data set. ``limit`` scores only the
    first cells in key order (tests). Returns ``{"benchmark", "cells", "seed", "batch",
    "proxies", "correlations", "rows", "seconds"}``; with ``out`` also writes it as JSON.
    """
    from nasforge.benchmarks.tabular import TabularBenchmark, cell_from_key, genotype_of

    where = pick_device(device)
    bench = TabularBenchmark.load(benchmark)
    if bench.space.name != "tabular-digits":
        raise NasforgeError(f"zc eval scores the tabular-digits space; {benchmark} tabulates "
                            f"{bench.space.name}")
    names = resolve_proxies(proxies)
    keys = bench.keys()[:limit] if limit is not None else bench.keys()
    samples = [Sample("tabular-digits", genotype_of(cell_from_key(k)), k, i)
               for i, k in enumerate(keys)]
    settings = NetSettings(channels=int(bench.protocol["channels"]),
                           layers=int(bench.protocol["layers"]))
    data = load_batch(str(bench.protocol["dataset"]), _batch_needed(names, batch), seed)
    start = time.perf_counter()
    rows = score_architectures("tabular-digits", samples, names, data, batch, seed,
                               settings=settings, device=where)
    accs = []
    for row in rows:
        q = bench.query(row["arch"])
        row["test_acc_mean"] = q["test_acc_mean"]
        accs.append(q["test_acc_mean"])
    return eval_result(benchmark, rows, accs, names, seed, batch, start, out)


def eval_result(source: str, rows: list[dict[str, Any]], accuracies: Sequence[float],
                names: list[str], seed: int, batch: int | None, start: float,
                out: str | Path | None, **extra: Any) -> dict[str, Any]:
    """The result every ``zc eval`` source returns (and, with ``out``, writes as JSON):
    the proxies' correlations with ``accuracies`` and every scored row."""
    result = {
        "benchmark": source,
        "cells": len(rows),
        "seed": seed,
        "batch": batch if batch is not None else {p: PROXIES.get(p).batch_size for p in names},
        "proxies": names,
        "correlations": correlations(rows, accuracies, names),
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
        **extra,
    }
    if out is not None:
        from nasforge.checkpoint import atomic_write_text

        atomic_write_text(out, json.dumps(_jsonable(result), indent=2) + "\n")
    return result


def _jsonable(obj: Any) -> Any:
    """Non-finite floats become strings (``"nan"``, ``"-inf"``): strict JSON has none."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj
