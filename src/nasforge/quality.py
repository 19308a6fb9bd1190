"""Search-space quality (thesis §4.2.2, Fig. 4.2): how good are random cells of a space?

For each space (the DARTS cell space, or the k-ExtCell space for some k) draw N unique random
cell pairs, train every one with the same fixed protocol (the ``train`` config section) and
compare the spaces by the distribution of test accuracy and by the error EDF, the fraction of
networks whose test error is at most e (Radosavovic et al., ref. [106] of the thesis). A space
whose EDF rises earlier holds more good networks.

Entry point: :func:`run_quality`. Draws are seeded per (seed, space), so sample i of a space is
the same whatever other spaces or sample counts are asked for, and a killed study resumes by
skipping the rows already in ``results.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nasforge.analysis.edf import edf_at, error_edf
from nasforge.checkpoint import atomic_write_json, atomic_write_text
from nasforge.config import Config, config_to_dict
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import (
    PRIMITIVES,
    CellGenotype,
    Genotype,
    cell_edges,
    format_genotype,
    validate_genotype,
)

NODES = 4
OPS = tuple(p for p in PRIMITIVES if p != "none")
CANDIDATES = 2 * len(cell_edges(NODES)) * len(OPS)
"""Ops a k-ExtCell pair chooses from: 2 cells x 14 edges x 7 ops = 196."""
MIN_K = 2
"""Each cell of a pair needs at least one op, so a 1-ExtCell pair is never valid."""

FIELDS = ("space", "sample", "seed", "genotype", "params", "test_acc", "val_acc", "seconds")
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.csv"


# --------------------------------------------------------------------------- spaces


@dataclass(frozen=True)
class SpaceSpec:
    """A named space: ``darts`` (k is None) or ``extcell-K`` (k ops over both cells)."""

    name: str
    k: int | None


def _space_help() -> str:
    return f"darts or extcell-K with K in {MIN_K}..{CANDIDATES} (e.g. extcell-14)"


def parse_space(name: str) -> SpaceSpec:
    """Read a space name; anything else is a one-line error naming the value and the choices."""
    text = str(name).strip()
    if text == "darts":
        return SpaceSpec("darts", None)
    prefix = "extcell-"
    if text.startswith(prefix) and text[len(prefix):].lstrip("-").isdigit():
        k = int(text[len(prefix):])
        if not MIN_K <= k <= CANDIDATES:
            raise NasforgeError(
                f"space '{text}': K={k} is out of range; allowed {MIN_K}..{CANDIDATES} "
                f"(ops over the 2 cells x 14 edges x 7 ops; each cell needs at least one)"
            )
        return SpaceSpec(f"extcell-{k}", k)
    raise NasforgeError(f"unknown space '{text}'; allowed: {_space_help()}")


def parse_spaces(names: Sequence[str]) -> list[SpaceSpec]:
    """Parse a list of space names, refusing duplicates (they would train the same cells)."""
    specs = [parse_space(n) for n in names]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise NasforgeError(f"space '{spec.name}' is listed twice")
        seen.add(spec.name)
    if not specs:
        raise NasforgeError(f"no space given; allowed: {_space_help()}")
    return specs


# --------------------------------------------------------------------------- samplers


def canonical_cell(cell: CellGenotype) -> CellGenotype:
    """The cell with ops sorted by (node, input, op) and concat sorted: one form per cell."""
    ops = tuple(sorted(cell.ops, key=lambda t: (t[2], t[1], t[0])))
    return CellGenotype(ops=ops, concat=tuple(sorted(cell.concat)))


def canonical(genotype: Genotype) -> Genotype:
    """Both cells in canonical form, so equal cells compare (and format) equal."""
    return Genotype(canonical_cell(genotype.normal), canonical_cell(genotype.reduce))


def random_darts_cell(rng: random.Random, nodes: int = NODES) -> CellGenotype:
    """A uniform DARTS cell: per node 2 distinct earlier inputs, each with a random op."""
    ops = []
    for node in range(2, 2 + nodes):
        for inp in rng.sample(range(node), 2):
            ops.append((rng.choice(OPS), inp, node))
    return canonical_cell(CellGenotype(ops=tuple(ops), concat=tuple(range(2, 2 + nodes))))


def random_darts_pair(rng: random.Random, nodes: int = NODES) -> Genotype:
    """A random (normal, reduction) pair of DARTS cells, 8 ops each."""
    return Genotype(random_darts_cell(rng, nodes), random_darts_cell(rng, nodes))


def random_extcell_pair(rng: random.Random, k: int, nodes: int = NODES) -> Genotype:
    """k ops drawn uniformly without replacement from all (cell, edge, op) candidates.

    This is the distribution of top-k survival on i.i.d. random strengths. The concat of a cell
    is every node receiving an op (as in ``derive._ext_cell``). The pair may be invalid (a cell
    with no node reachable from its inputs); :func:`sample_space` redraws those.
    """
    edges = cell_edges(nodes)
    candidates = [(c, e, op) for c in range(2) for e in range(len(edges)) for op in OPS]
    cells: list[list[tuple[str, int, int]]] = [[], []]
    for c, e, op in rng.sample(candidates, k):
        inp, node = edges[e]
        cells[c].append((op, inp, node))
    return canonical(Genotype(*(
        CellGenotype(ops=tuple(ops), concat=tuple(sorted({n for _, _, n in ops})))
        for ops in cells
    )))


def is_valid(genotype: Genotype, nodes: int = NODES) -> bool:
    """Whether both cells have a node reachable from the cell inputs (and are well formed)."""
    try:
        validate_genotype(genotype, nodes=nodes)
    except NasforgeError:
        return False
    return True


def _rng(seed: int, space: str) -> random.Random:
    """A generator fixed by (seed, space) alone (string seeds are hashed with SHA-512)."""
    return random.Random(f"nasforge.quality:{seed}:{space}")


def sample_space(spec: SpaceSpec, n: int, seed: int, *,
                 taken: set[str] | None = None) -> list[Genotype]:
    """The first ``n`` unique valid random pairs of a space, in draw order.

    ``taken`` holds formatted canonical genotypes drawn elsewhere (other spaces); they are
    skipped too and the new draws are added to it. Sample i does not depend on ``n``.
    """
    if n < 1:
        raise NasforgeError(f"samples must be at least 1; got {n}")
    rng = _rng(seed, spec.name)
    taken = set() if taken is None else taken
    out: list[Genotype] = []
    budget = 1000 * n + 10_000
    for _ in range(budget):
        g = random_darts_pair(rng) if spec.k is None else random_extcell_pair(rng, spec.k)
        key = format_genotype(g)
        if key in taken or not is_valid(g):
            continue
        taken.add(key)
        out.append(g)
        if len(out) == n:
            return out
    raise NasforgeError(
        f"space '{spec.name}': found only {len(out)} unique valid cell pairs in {budget} draws; "
        f"ask for fewer samples"
    )


def sample_spaces(specs: Sequence[SpaceSpec], n: int, seed: int) -> dict[str, list[Genotype]]:
    """``n`` pairs per space, unique across all spaces.

    Spaces are drawn in a fixed order (darts, then by K) so the listing order changes nothing.
    Only darts and extcell-16 pairs can coincide (same op count), which is rare.
    """
    taken: set[str] = set()
    ordered = sorted(specs, key=lambda s: -1 if s.k is None else s.k)
    drawn = {s.name: sample_space(s, n, seed, taken=taken) for s in ordered}
    return {s.name: drawn[s.name] for s in specs}


# --------------------------------------------------------------------------- EDF and summary


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per space (in first-seen order): count and median/mean/min/max test accuracy (%)."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(str(row["space"]), []).append(float(row["test_acc"]))
    return {
        space: {"count": len(accs), "median": statistics.median(accs),
                "mean": statistics.fmean(accs), "min": min(accs), "max": max(accs)}
        for space, accs in groups.items()
    }


# --------------------------------------------------------------------------- training


@dataclass
class QualityProtocol:
    """The data, batches and device every sampled pair is trained with."""

    cfg: Config
    device: torch.device
    dtype: torch.dtype | None
    num_classes: int
    in_channels: int
    train: Any
    val: Any
    test: Any


def build_protocol(cfg: Config) -> QualityProtocol:
    """Load the data once and batch it on the device; every pair reuses the same batches."""
    from nasforge.data import Augment, load_dataset, make_batches
    from nasforge.runtime import amp_dtype, pick_device, use_channels_last

    t = cfg.train
    device = pick_device(cfg.run.device)
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    channels_last = use_channels_last(cfg.run.channels_last, device)
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    size = max(t.batch_size, 256)
    return QualityProtocol(
        cfg=cfg, device=device, dtype=amp_dtype(device, cfg.run.amp),
        num_classes=data.num_classes, in_channels=data.channels,
        train=make_batches(data.train, t.batch_size, seed=cfg.run.seed,
                           augment=Augment(t.crop_pad, t.flip, t.cutout), **common),
        val=None if data.val is None else make_batches(data.val, size, shuffle=False, **common),
        test=make_batches(data.test, size, shuffle=False, **common),
    )


def train_pair(genotype: Genotype, protocol: QualityProtocol, *,
               on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train one pair from scratch under the protocol; params, val/test accuracy, seconds.

    Every pair starts from the same seed, so pairs differ only in their cells.
    """
    from nasforge.describe import count_parameters
    from nasforge.fit import fit
    from nasforge.runtime import seed_everything, use_channels_last
    from nasforge.search.loop import evaluate
    from nasforge.train import build_eval_network, epoch_lr

    cfg, t = protocol.cfg, protocol.cfg.train
    seed_everything(cfg.run.seed)
    arch = {"network": t.protocol, "channels": t.channels, "num_classes": protocol.num_classes,
            "layers": t.layers, "auxiliary": t.auxiliary, "in_channels": protocol.in_channels}
    model = build_eval_network(genotype, arch).to(protocol.device)
    if use_channels_last(cfg.run.channels_last, protocol.device):
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                weight_decay=t.weight_decay)
    start = time.perf_counter()
    fit(model, protocol.train, optimizer, epochs=t.epochs, lr_at=lambda e: epoch_lr(cfg, e),
        grad_clip=t.grad_clip, aux_weight=t.auxiliary_weight if t.auxiliary else 0.0,
        drop_path=t.drop_path, label_smoothing=t.label_smoothing, dtype=protocol.dtype,
        on_epoch=on_epoch, hint=f"training a quality-study network stopped; lower train.lr "
                                f"(now {t.lr:g}) and run again (finished networks are kept)")
    model.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x)[0]

    val_acc = None if protocol.val is None else evaluate(forward, protocol.val, protocol.dtype)[1]
    test_acc = evaluate(forward, protocol.test, protocol.dtype)[1]
    return {"params": count_parameters(model), "test_acc": test_acc, "val_acc": val_acc,
            "seconds": round(time.perf_counter() - start, 3)}


# --------------------------------------------------------------------------- output directory


def _fingerprint(cfg: Config) -> dict[str, Any]:
    """What makes rows comparable: data, training protocol and seed (not spaces or N)."""
    d = config_to_dict(cfg)
    data = {k: v for k, v in d["data"].items() if k != "root"}
    return {"data": data, "train": d["train"], "seed": d["run"]["seed"]}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


def _open_out_dir(out: Path, cfg: Config, *, force: bool = False) -> None:
    """Create ``out``, or check that it holds a study of the same protocol (then it resumes).

    With ``force`` a study of another protocol is started again: its rows are dropped before
    the new config is saved."""
    saved = out / CONFIG_FILE
    if saved.is_file():
        try:
            old = json.loads(saved.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise NasforgeError(f"{saved} is corrupt; use another --out") from None
        diff = _differences(old, _fingerprint(cfg))
        if diff and not force:
            raise NasforgeError(
                f"{out} holds a quality study with a different config ({'; '.join(diff[:3])}); "
                f"its rows would be reused under the new values: use a new --out, or --force "
                f"to recompute them (or the same config to resume it)"
            )
        if diff and (out / RESULTS_FILE).is_file():
            (out / RESULTS_FILE).unlink()
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NasforgeError(f"{out} exists and is not a quality study output; use another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasforgeError(f"cannot create {out}: {exc.strerror}") from None
    atomic_write_json(saved, {"fingerprint": _fingerprint(cfg), "config": config_to_dict(cfg)})


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` with numbers parsed (val_acc None when the data has no val)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        for row in rows:
            for key in ("sample", "seed", "params"):
                row[key] = int(row[key])
            for key in ("test_acc", "seconds"):
                row[key] = float(row[key])
            row["val_acc"] = float(row["val_acc"]) if row["val_acc"] else None
    except (KeyError, TypeError, ValueError) as err:
        raise NasforgeError(f"{path} is corrupt ({err}); use another --out") from None
    return rows


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite ``results.csv`` atomically, so a kill never leaves half a row."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in FIELDS})
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- the study


def run_quality(cfg: Config, out: str | Path, *, progress: bool | None = None,
                trainer: Callable[..., dict[str, Any]] | None = None,
                force: bool = False) -> list[dict[str, Any]]:
    """Run (or finish) the quality study of ``cfg.quality`` into ``out``; returns the CSV rows.

    Writes ``config.json``, ``results.csv`` (one row per trained pair, rewritten after each),
    ``summary.json`` and ``quality.png``. Pairs already in ``results.csv`` are not trained
    again; a directory holding a study with another data set, training protocol or seed is
    refused (``force``: its rows are dropped and trained again). Samples are interleaved
    across spaces, so a partial study stays balanced.
    ``trainer`` replaces :func:`train_pair` (same signature; tests use it to count trainings).
    """
    from nasforge.analysis.quality_plot import plot_quality

    specs = parse_spaces(cfg.quality.spaces)
    n, seed = cfg.quality.samples, cfg.run.seed
    if n < 1:
        raise NasforgeError(f"samples must be at least 1; got {n}")
    out = Path(out)
    drawn = sample_spaces(specs, n, seed)
    _open_out_dir(out, cfg, force=force)
    results = out / RESULTS_FILE
    done = {(r["space"], r["sample"]): r for r in read_rows(results)}
    plan = [(s.name, i, drawn[s.name][i]) for i in range(n) for s in specs]
    for space, i, g in plan:
        row = done.get((space, i))
        if row is not None and row["genotype"] != format_genotype(g):
            raise NasforgeError(f"{results}: {space} sample {i} holds another cell than this "
                                f"seed draws; use another --out")
    todo = [(space, i, g) for space, i, g in plan if (space, i) not in done]
    train = trainer or train_pair
    show = cfg.run.progress if progress is None else progress
    if todo:
        protocol = build_protocol(cfg)
        bar = tqdm(todo, desc="quality", unit="net", disable=not show)
        for space, i, g in bar:
            bar.set_postfix(space=space, sample=i)
            result = train(g, protocol, on_epoch=_ticker(bar, space, i))
            done[(space, i)] = {"space": space, "sample": i, "seed": seed,
                                "genotype": format_genotype(g), **result}
            write_rows(results, _ordered(done, plan))
        bar.close()
    rows = _ordered(done, plan)
    write_rows(results, rows)
    atomic_write_json(out / "summary.json", {
        "dataset": cfg.data.dataset, "seed": seed, "samples": n,
        "train": config_to_dict(cfg)["train"],
        "spaces": summarise(rows),
    })
    plot_quality(rows, out / "quality.png",
                 title=f"{cfg.data.dataset}: random cells, {cfg.train.layers} cells, "
                       f"C={cfg.train.channels}, {cfg.train.epochs} epochs")
    return rows


def _ticker(bar: Any, space: str, sample: int) -> Callable[[int, float], None]:
    """A per-epoch callback that shows the epoch and loss of the net being trained."""

    def tick(epoch: int, loss: float) -> None:
        bar.set_postfix(space=space, sample=sample, epoch=epoch, loss=f"{loss:.3f}")

    return tick


def _ordered(done: dict[tuple[str, int], dict[str, Any]],
             plan: Sequence[tuple[str, int, Genotype]]) -> list[dict[str, Any]]:
    """Rows by space (plan order) then sample; rows outside the plan (earlier runs) last."""
    spaces = list(dict.fromkeys(space for space, _, _ in plan))
    rank = {s: r for r, s in enumerate(spaces)}
    return sorted(done.values(), key=lambda r: (rank.get(r["space"], len(rank)), r["space"],
                                                r["sample"]))


__all__ = [
    "CANDIDATES",
    "QualityProtocol",
    "SpaceSpec",
    "build_protocol",
    "canonical",
    "edf_at",
    "error_edf",
    "parse_space",
    "parse_spaces",
    "random_darts_pair",
    "random_extcell_pair",
    "read_rows",
    "run_quality",
    "sample_space",
    "sample_spaces",
    "summarise",
    "train_pair",
]
