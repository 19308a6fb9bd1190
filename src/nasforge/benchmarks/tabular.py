"""A tabular benchmark: every normal cell of a small DARTS space, trained once per seed.

Chapter 3 scores a search algorithm by the tabulated accuracy of the architecture it finds
(NAS-Bench-1shot1 style). This module holds the ``tabular-digits`` space (2 intermediate
nodes, ops max_pool_3x3 / skip_connect / sep_conv_3x3, a fixed reduction cell), the training
protocol that built the table, and :class:`TabularBenchmark`, which looks cells up in it.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import CellGenotype, Genotype, load_genotype
from nasforge.spaces.darts.spaces import SPACES, CellSpace

DATA_DIR = Path(__file__).parent / "data"
BENCHMARKS = {
    "tabular-digits": "tabular_digits.json.gz",
    "tabular-noisy-digits": "tabular_noisy_digits.json.gz",
}
SPACE_NAME = "tabular-digits"
NODES = (2, 3)

PROTOCOLS: dict[str, dict[str, Any]] = {
    "tabular-digits": {
        "dataset": "digits",
        "network": "NetworkCIFAR",
        "channels": 8,
        "layers": 5,
        "auxiliary": False,
        "epochs": 15,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.05,
        "lr_min": 0.0,
        "schedule": "cosine",
        "momentum": 0.9,
        "weight_decay": 3e-4,
        "grad_clip": 5.0,
        "crop_pad": 1,
        "flip": False,
        "drop_path": 0.0,
        "threads": 1,
    },
}
PROTOCOLS["tabular-noisy-digits"] = {
    **PROTOCOLS["tabular-digits"],
    # a harder task, a narrower network, longer training and an 11,488-image test split:
    # architecture decides the accuracy far more than the seed does (docs/bench.md; a
    # 10-epoch pilot ranked at Spearman 0.81 with a seed range of 1.2 points, 20 epochs
    # at 0.98 with 0.38 on the same cells)
    "dataset": "noisy-digits",
    "channels": 4,
    "epochs": 20,
}
"""The one training protocol of each table; ``train_protocol`` overrides are for tests only."""
PROTOCOL = PROTOCOLS["tabular-digits"]

_FIXED = {"dataset", "network", "auxiliary", "optimizer", "schedule", "flip", "drop_path"}


# --------------------------------------------------------------------------- the space


def space() -> CellSpace:
    """The registered ``tabular-digits`` cell space."""
    return SPACES.get(SPACE_NAME)


def _ops(cell_space: CellSpace | None = None) -> tuple[str, ...]:
    """The candidate ops a derived cell may hold (all but ``none``)."""
    return tuple(p for p in (cell_space or space()).primitives if p != "none")


def fixed_reduction_cell() -> CellGenotype:
    """The reduction cell of every table entry: the first four ops of DARTS-V2's reduce cell.

    Parameter-free (max-pools and a skip), so all capacity differences come from the normal cell.
    """
    ops = (("max_pool_3x3", 0, 2), ("max_pool_3x3", 1, 2),
           ("skip_connect", 2, 3), ("max_pool_3x3", 1, 3))
    return CellGenotype(ops=ops, concat=NODES)


def enumerate_cells() -> list[CellGenotype]:
    """The 243 normal cells an argmax derivation can produce, in canonical form and key order.

    Node 2 takes ops from inputs 0 and 1 (3 x 3 choices); node 3 keeps 2 of its 3 incoming edges
    (3 pairs x 3 x 3 ops).
    """
    ops = _ops()
    cells = []
    for a, b in itertools.product(ops, repeat=2):
        for inputs in itertools.combinations((0, 1, 2), 2):
            for c, d in itertools.product(ops, repeat=2):
                triples = ((a, 0, 2), (b, 1, 2), (c, inputs[0], 3), (d, inputs[1], 3))
                cells.append(CellGenotype(ops=triples, concat=NODES))
    return cells


def canonical_cell(cell: CellGenotype) -> CellGenotype:
    """The same cell with its ops sorted by (node, input, op) and concat sorted."""
    return CellGenotype(ops=tuple(sorted(cell.ops, key=lambda t: (t[2], t[1], t[0]))),
                        concat=tuple(sorted(cell.concat)))


def _check_cell(cell: CellGenotype, cell_space: CellSpace) -> None:
    """Raise a one-line :class:`NasforgeError` if ``cell`` is not in the space."""
    name, allowed = cell_space.name, _ops(cell_space)
    nodes = sorted({node for _, _, node in cell.ops})
    if nodes != list(NODES):
        raise NasforgeError(
            f"cell is not in the {name} space: it has ops into nodes {nodes}; the space has "
            f"2 intermediate nodes (2 and 3)"
        )
    for op, inp, node in cell.ops:
        if op not in allowed:
            raise NasforgeError(
                f"cell is not in the {name} space: op {op!r} (node {node}) is not one of "
                f"{', '.join(allowed)}"
            )
        if not 0 <= inp < node:
            raise NasforgeError(
                f"cell is not in the {name} space: op {op!r} into node {node} reads node {inp}"
            )
    for node in NODES:
        inputs = sorted(inp for _, inp, n in cell.ops if n == node)
        if len(inputs) != 2 or len(set(inputs)) != 2:
            raise NasforgeError(
                f"cell is not in the {name} space: node {node} has ops from inputs {inputs}; "
                f"each node takes exactly 2 ops from 2 different earlier nodes"
            )
    if sorted(cell.concat) != list(NODES):
        raise NasforgeError(
            f"cell is not in the {name} space: concat is {list(cell.concat)}, expected [2, 3]"
        )


def cell_key(cell: CellGenotype, cell_space: CellSpace | None = None) -> str:
    """Canonical key, e.g. ``'sep_conv_3x3~0|skip_connect~1+max_pool_3x3~0|sep_conv_3x3~2'``.

    Nodes are separated by ``+``, each node's ops (``op~input``) are sorted by input, so the
    order ops are listed in does not matter.
    """
    _check_cell(cell, cell_space or space())
    canon = canonical_cell(cell)
    return "+".join(
        "|".join(f"{op}~{inp}" for op, inp, n in canon.ops if n == node) for node in NODES
    )


def cell_from_key(key: str) -> CellGenotype:
    """Inverse of :func:`cell_key`."""
    try:
        groups = key.split("+")
        if len(groups) != len(NODES):
            raise ValueError
        ops = []
        for node, group in zip(NODES, groups, strict=True):
            for item in group.split("|"):
                op, inp = item.split("~")
                ops.append((op, int(inp), node))
    except ValueError:
        raise NasforgeError(
            f"'{key}' is not a benchmark key (expected 'op~input|op~input+op~input|op~input')"
        ) from None
    cell = CellGenotype(ops=tuple(ops), concat=NODES)
    cell_key(cell)
    return canonical_cell(cell)


def genotype_of(cell: CellGenotype) -> Genotype:
    """The full genotype the table trained for ``cell``: it plus the fixed reduction cell."""
    return Genotype(normal=canonical_cell(cell), reduce=fixed_reduction_cell())


# --------------------------------------------------------------------------- the protocol


@functools.lru_cache(maxsize=2)
def _data(dataset: str) -> Any:
    from nasforge.data import load_dataset

    return load_dataset(dataset)


def _check_protocol(protocol: dict[str, Any], bench: str = "tabular-digits") -> dict[str, Any]:
    if bench not in PROTOCOLS:
        raise NasforgeError(f"unknown benchmark '{bench}'; choose from: "
                            f"{', '.join(sorted(PROTOCOLS))}")
    base = PROTOCOLS[bench]
    unknown = sorted(set(protocol) - set(base))
    if unknown:
        raise NasforgeError(f"unknown protocol key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(base)}")
    fixed = sorted(k for k in _FIXED if k in protocol and protocol[k] != base[k])
    if fixed:
        raise NasforgeError(f"protocol key(s) {', '.join(fixed)} cannot be changed")
    return {**base, **protocol}


def _lr(p: dict[str, Any], epoch: int) -> float:
    from nasforge.search.loop import cosine_lr

    return cosine_lr(epoch, p["epochs"], p["lr"], p["lr_min"])


def train_protocol(cell: CellGenotype | Genotype, seed: int, *, bench: str = "tabular-digits",
                   **protocol: Any) -> dict[str, Any]:
    """Train one architecture under table ``bench``'s protocol; deterministic given (cell, seed).

    A lean in-memory loop (no run directory or checkpoints): 486 trainings must fit in about an
    hour of 2 CPU cores. Returns final val/test accuracy (%), parameter count and seconds.
    """
    from nasforge.data import Augment, Batches
    from nasforge.fit import fit
    from nasforge.search.loop import evaluate
    from nasforge.spaces.darts.eval_network import NetworkCIFAR

    p = _check_protocol(protocol, bench)
    normal = cell.normal if isinstance(cell, Genotype) else cell
    genotype = genotype_of(normal)
    data = _data(p["dataset"])
    common = dict(mean=data.mean, std=data.std, device="cpu")
    train = Batches(data.train, p["batch_size"], seed=seed, augment=Augment(p["crop_pad"]),
                    **common)
    val = Batches(data.val, 512, shuffle=False, **common)
    test = Batches(data.test, 512, shuffle=False, **common)
    torch.manual_seed(seed)
    model = NetworkCIFAR(genotype, p["channels"], data.num_classes, p["layers"],
                         auxiliary=False, in_channels=data.channels)
    opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"],
                          weight_decay=p["weight_decay"])
    start = time.perf_counter()
    fit(model, train, opt, epochs=p["epochs"], lr_at=lambda epoch: _lr(p, epoch),
        grad_clip=p["grad_clip"])
    model.eval()
    _, val_acc = evaluate(lambda x: model(x)[0], val, None)
    _, test_acc = evaluate(lambda x: model(x)[0], test, None)
    return {
        "key": cell_key(normal),
        "seed": seed,
        "val_acc": val_acc,
        "test_acc": test_acc,
        "params": sum(t.numel() for t in model.parameters()),
        "seconds": round(time.perf_counter() - start, 3),
    }


# --------------------------------------------------------------------------- the table


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


class TabularBenchmark:
    """Look architectures up in a built table (trained accuracies per seed)."""

    def __init__(self, data: dict[str, Any], source: str = "<memory>") -> None:
        try:
            self.space: CellSpace = SPACES.get(data["space"])
            self.protocol: dict[str, Any] = dict(data["protocol"])
            self.seeds: list[int] = [int(s) for s in data["seeds"]]
            self.build: dict[str, Any] = dict(data.get("build", {}))
            records = data["records"]
            self._records: dict[str, dict[str, Any]] = {}
            for key, rec in records.items():
                entry = {f: [float(v) for v in rec[f]] for f in ("val_acc", "test_acc", "seconds")}
                if any(len(entry[f]) != len(self.seeds) for f in entry):
                    raise ValueError(f"record {key} lacks a value per seed")
                entry["params"] = int(rec["params"])
                self._records[key] = entry
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise NasforgeError(f"benchmark file {source} is corrupt ({err})") from None
        if not self._records:
            raise NasforgeError(f"benchmark file {source} holds no records")
        means = {k: _mean(r["test_acc"]) for k, r in self._records.items()}
        ordered = sorted(means.values(), reverse=True)
        self._mean_test = means
        self._rank = {k: 1 + _count_above(ordered, m) for k, m in means.items()}

    @classmethod
    def load(cls, name: str = "tabular-digits",
             path: str | os.PathLike[str] | None = None) -> TabularBenchmark:
        """Read the packaged table ``name`` (or the gzip JSON file at ``path`` or ``name``)."""
        if path is None and name not in BENCHMARKS and Path(name).is_file():
            path = name  # a table built elsewhere (scripts/build_tabular_digits.py --out)
        if path is None:
            if name not in BENCHMARKS:
                raise NasforgeError(f"unknown benchmark '{name}'; choose from: "
                                    f"{', '.join(sorted(BENCHMARKS))}")
            path = DATA_DIR / BENCHMARKS[name]
        path = Path(path)
        if not path.is_file():
            raise NasforgeError(f"benchmark file {path} is missing; build it with "
                                "scripts/build_tabular_digits.py")
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise NasforgeError(f"benchmark file {path} is corrupt ({err})") from None
        if not isinstance(data, dict):
            raise NasforgeError(f"benchmark file {path} is corrupt (not a JSON object)")
        return cls(data, str(path))

    def __len__(self) -> int:
        return len(self._records)

    def keys(self) -> list[str]:
        return sorted(self._records)

    def key_of(self, genotype: Genotype | CellGenotype | str) -> str:
        """Canonical key of a genotype's normal cell (its reduction cell is ignored).

        A string may be a key, genotype text, a known genotype name or a genotype file.
        """
        if isinstance(genotype, str):
            if genotype in self._records:
                return genotype
            if "~" in genotype and "(" not in genotype and not Path(genotype).exists():
                genotype = cell_from_key(genotype)  # a key in another order, or a bad one
            else:
                genotype = load_genotype(genotype)
        if isinstance(genotype, Genotype):
            genotype = genotype.normal
        if not isinstance(genotype, CellGenotype):
            raise NasforgeError(f"expected a Genotype or CellGenotype, got "
                                f"{type(genotype).__name__}")
        key = cell_key(genotype, self.space)
        if key not in self._records:
            raise NasforgeError(f"cell {key} is in the {self.space.name} space but not in this "
                                f"table ({len(self)} of 243 cells built)")
        return key

    def query(self, genotype: Genotype | CellGenotype | str) -> dict[str, Any]:
        """Tabulated result of an architecture: per-seed accuracies, means, rank, percentile.

        ``rank`` 1 is the best mean test accuracy (ties share a rank); ``percentile`` is the
        percentage of the table whose mean test accuracy is at or below this one.
        """
        key = self.key_of(genotype)
        rec = self._records[key]
        mean = self._mean_test[key]
        at_or_below = sum(1 for m in self._mean_test.values() if m <= mean)
        return {
            "key": key,
            "test_acc_mean": mean,
            "test_acc": list(rec["test_acc"]),
            "val_acc_mean": _mean(rec["val_acc"]),
            "val_acc": list(rec["val_acc"]),
            "params": rec["params"],
            "rank": self._rank[key],
            "percentile": 100.0 * at_or_below / len(self),
            "seeds": list(self.seeds),
        }

    def best(self) -> dict[str, Any]:
        """The entry with the best mean test accuracy (ties: better mean val, then key)."""
        key = min(self._records, key=lambda k: (-self._mean_test[k],
                                                 -_mean(self._records[k]["val_acc"]), k))
        return self.query(key)

    def stats(self) -> dict[str, Any]:
        """Summary of mean test accuracies, plus seed spread and seed-to-seed rank correlation.

        ``seed_spearman`` is the Spearman correlation of two seeds' test accuracies over all
        cells (the mean over seed pairs with more than two seeds); ``spread_ratio`` is the gap
        between the best and the median cell in units of the mean seed range — how many seed
        noises a search that finds the best cell stands above a median one.

        With an even number of seeds >= 4 the table's value (the mean over its seeds) is
        checked the same way, one level up: ``half_spearman`` correlates the means of the first
        and the second half of the seeds (two independent builds of a table with half the
        seeds), ``half_range`` is the mean gap between those two means and
        ``half_spread_ratio`` the best − median gap in units of it.
        """
        means = sorted(self._mean_test.values())
        out: dict[str, Any] = {
            "count": len(means),
            "min": means[0],
            "median": statistics.median(means),
            "max": means[-1],
        }
        tests = [r["test_acc"] for r in self._records.values()]
        from scipy.stats import spearmanr

        if len(self.seeds) >= 2:
            out["mean_seed_range"] = _mean([max(t) - min(t) for t in tests])
            pairs = list(itertools.combinations(range(len(self.seeds)), 2))
            out["seed_spearman"] = _mean([
                float(spearmanr([t[i] for t in tests], [t[j] for t in tests]).statistic)
                for i, j in pairs])
            if out["mean_seed_range"] > 0:
                out["spread_ratio"] = (out["max"] - out["median"]) / out["mean_seed_range"]
        n = len(self.seeds)
        if n >= 4 and n % 2 == 0:
            first = [_mean(t[:n // 2]) for t in tests]
            second = [_mean(t[n // 2:]) for t in tests]
            out["half_spearman"] = float(spearmanr(first, second).statistic)
            out["half_range"] = _mean([abs(a - b) for a, b in zip(first, second, strict=True)])
            if out["half_range"] > 0:
                out["half_spread_ratio"] = (out["max"] - out["median"]) / out["half_range"]
        return out


def _count_above(descending: list[float], value: float) -> int:
    """How many entries of a descending list are strictly greater than ``value``."""
    lo, hi = 0, len(descending)
    while lo < hi:
        mid = (lo + hi) // 2
        if descending[mid] > value:
            lo = mid + 1
        else:
            hi = mid
    return lo
