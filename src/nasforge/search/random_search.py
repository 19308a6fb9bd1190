"""Random search (``--algo random``): N cells drawn uniformly from the cell space, each
trained on its own (or looked up in a tabular benchmark), the best one returned.

The baseline every search should beat (Li & Talwalkar, 2019; Yang et al., 2020). The cells
come from :class:`CellSampler`, which random search with weight sharing
(:mod:`nasforge.search.random_ws`) shares:

- DARTS cell spaces, ``search.rule=argmax``: every intermediate node takes 2 distinct
  inputs, uniformly among the pairs of earlier nodes, and one op per input, uniformly among
  the ops that edge holds (``none`` never; per-edge op sets in S1). Both cells are sampled.
  This is uniform over the cells an argmax derivation can produce.
- ``search.rule=topk``: k (edge, op) pairs over both cells, uniformly among the candidates,
  redrawn until the pair of ExtCells is valid (uniform over valid k-ExtCells).
- NAS-Bench-1shot1 spaces: every block's op, every searched vertex's parents and the
  output's parents uniformly; every combination is in the space, so this is uniform over it.

Each sampled cell is a 0/1 strength tensor; the space's derivation rule turns it into the
genotype (for 1shot1: the discretisation), so a sampled cell reads exactly like a found one.

Scoring: with ``search.bench`` (a tabular benchmark in the searched space) or, in 1shot1
spaces, ``search.nb101_table``, a cell's score is its tabulated *validation* accuracy (the
test accuracy is recorded, never used to choose). Otherwise every cell is trained from
scratch with the search settings (``search.channels``, ``layers``, ``epochs``, ``batch_size``,
``w_lr`` → ``w_lr_min`` cosine, ``w_momentum``, ``w_weight_decay``, ``grad_clip``,
``crop_pad``, ``flip``) on the weight half of the training split and scored by its accuracy
on the architecture half, the split every other search uses. DARTS cells train as the
evaluation network (``NetworkCIFAR``, no auxiliary head; in ``tabular-digits`` with the
table's fixed reduction cell, i.e. the table's own protocol when the settings match it),
1shot1 cells as the one-shot network with the cell's 0/1 weights.

Resume: every scored cell is appended to ``samples.jsonl``; a re-run (``--resume``) redraws
the same N cells from ``run.seed`` and continues after the last complete line, so a killed
run ends exactly like an uninterrupted one (a cell cut off mid-training is trained again
from its start; its training depends only on the seed).
"""

from __future__ import annotations

import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nasforge.config import Config, RandomOptions, SearchConfig
from nasforge.errors import NasforgeError
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.spaces.darts.genotype import Genotype, cell_edges, format_genotype
from nasforge.spaces.nb101.space import NB101_OPS, OneShotArch, OneShotSpace

SAMPLES = "samples.jsonl"
MAX_REDRAWS = 10_000


class CellSampler:
    """Uniform cells of the searched space as 0/1 strengths (see the module docstring)."""

    def __init__(self, s: SearchConfig, oneshot: OneShotSpace | None) -> None:
        from nasforge.derive import rule_options
        from nasforge.spaces.darts.spaces import SPACES

        self.oneshot = oneshot
        self.rule = s.rule
        if oneshot is not None:
            return
        if s.rule not in ("argmax", "topk"):
            raise NasforgeError(f"random cells are drawn for search.rule=argmax or topk; got "
                                f"search.rule={s.rule}")
        space = SPACES.get(s.space)
        self.space_name = space.name
        self.primitives = tuple(space.primitives)
        self.nodes = s.nodes
        self.edges = cell_edges(s.nodes)
        self.options = rule_options(s, primitives=self.primitives, nodes=s.nodes)
        mask = space.op_mask(s.nodes)
        self.allowed = {c: [[k for k, p in enumerate(self.primitives)
                             if p != "none" and (mask is None or bool(mask[c][e, k]))]
                            for e in range(len(self.edges))] for c in CELL_TYPES}
        if not any(self.allowed["normal"]):
            raise NasforgeError(f"space '{space.name}' has no op other than 'none' to sample")

    # ------------------------------------------------------------------ drawing

    def sample(self, rng: random.Random) -> dict[str, Tensor]:
        """One uniform cell (pair) as 0/1 strengths, the network's op weights for it."""
        if self.oneshot is not None:
            return self.weights_of(self.sample_arch(rng))
        if self.rule == "topk":
            return self._sample_topk(rng)
        return {c: self._sample_argmax_cell(rng, c) for c in CELL_TYPES}

    def _sample_argmax_cell(self, rng: random.Random, cell: str) -> Tensor:
        w = torch.zeros(len(self.edges), len(self.primitives))
        for node in range(2, 2 + self.nodes):
            incoming = [e for e, (_, j) in enumerate(self.edges)
                        if j == node and self.allowed[cell][e]]
            if len(incoming) < 2:
                raise NasforgeError(f"node {node} of the {cell} cell has fewer than 2 inputs "
                                    "with an op other than 'none'")
            for e in rng.sample(incoming, 2):
                w[e, rng.choice(self.allowed[cell][e])] = 1.0
        return w

    def _sample_topk(self, rng: random.Random) -> dict[str, Tensor]:
        k = int(self.options["k"])
        candidates = [(c, e, op) for c in CELL_TYPES for e, ops in enumerate(self.allowed[c])
                      for op in ops]
        for _ in range(MAX_REDRAWS):
            w = {c: torch.zeros(len(self.edges), len(self.primitives)) for c in CELL_TYPES}
            for c, e, op in rng.sample(candidates, k):
                w[c][e, op] = 1.0
            try:
                self.genotype(w)
            except NasforgeError:
                continue  # no node reachable in a cell: not a valid ExtCell pair
            return w
        raise NasforgeError(f"no valid pair of {k}-op ExtCells in {MAX_REDRAWS} draws")

    def sample_arch(self, rng: random.Random) -> OneShotArch:
        space = self.oneshot
        assert space is not None
        ops = tuple(rng.choice(NB101_OPS) for _ in range(space.blocks))
        parents = tuple(
            tuple(sorted(rng.sample(range(v), space.parents[v - 1]))) if space.searched(v)
            else tuple(space.fixed_parents(v)) for v in range(1, space.blocks + 1))
        output = tuple(sorted(rng.sample(range(space.blocks + 1), space.output_parents)))
        return OneShotArch(ops, parents, output)

    def weights_of(self, arch: OneShotArch) -> dict[str, Tensor]:
        """The 0/1 one-shot weights of a 1shot1 cell: its ops, parents and output's parents."""
        space = self.oneshot
        assert space is not None
        B = space.blocks
        w = {"ops": torch.zeros(B, len(NB101_OPS)), "inputs": torch.zeros(B, B),
             "output": torch.zeros(1, B + 1)}
        for b, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True)):
            w["ops"][b, NB101_OPS.index(op)] = 1.0
            w["inputs"][b, list(parents)] = 1.0
        w["output"][0, list(arch.output)] = 1.0
        return w

    # ------------------------------------------------------------------ reading

    def genotype(self, strengths: dict[str, Tensor]) -> Genotype | OneShotArch:
        """What the space's derivation makes of the 0/1 strengths: the sampled cell."""
        if self.oneshot is not None:
            return self.oneshot.discretize({k: v.float().cpu() for k, v in strengths.items()})
        from nasforge.derive import derive

        return derive(self.rule, {c: strengths[c].float().cpu() for c in CELL_TYPES},
                      primitives=self.primitives, nodes=self.nodes, **self.options)

    def text(self, strengths: dict[str, Tensor]) -> str:
        cell = self.genotype(strengths)
        if self.oneshot is not None:
            return self.oneshot.format(cell)
        return format_genotype(cell)



def lookup_tables(s: SearchConfig, oneshot: OneShotSpace | None) -> tuple[Any, Any]:
    """(tabular benchmark, NAS-Bench-101 table) a search looks its cells up in, either None:
    ``search.bench`` in a DARTS-cell space, ``search.nb101_table`` in a 1shot1 space."""
    bench = nb101 = None
    if s.bench:
        if oneshot is not None:
            raise NasforgeError("search.bench holds DARTS-cell tables; in a NAS-Bench-1shot1 "
                                "space give search.nb101_table")
        from nasforge.benchmarks.tabular import TabularBenchmark

        bench = TabularBenchmark.load(s.bench)
        if bench.space.name != s.space:
            raise NasforgeError(f"benchmark {s.bench} tabulates the {bench.space.name} space; "
                                f"the search is in search.space={s.space}")
    elif oneshot is not None and s.nb101_table:
        from nasforge.benchmarks.nasbench101 import NasBench101Table

        nb101 = NasBench101Table.load(s.nb101_table)
    return bench, nb101

def draw_cells(sampler: CellSampler, n: int, seed: int) -> list[dict[str, Tensor]]:
    """The run's N cells: a function of (space settings, n, seed) only."""
    rng = random.Random(f"random-search-{seed}")
    return [sampler.sample(rng) for _ in range(n)]


class _Fixed(nn.Module):
    """A one-shot network with fixed op weights, as ``fit`` expects (logits, aux)."""

    def __init__(self, network: nn.Module, weights: dict[str, Tensor]) -> None:
        super().__init__()
        self.network = network
        self.weights = weights

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.network(x, self.weights), None


def _model(cfg: Config, sampler: CellSampler, strengths: dict[str, Tensor], data: Any,
           device: torch.device) -> nn.Module:
    s = cfg.search
    if sampler.oneshot is not None:
        from nasforge.spaces.nb101.network import OneShotNetwork

        net = OneShotNetwork(sampler.oneshot, s.channels, data.num_classes, s.layers,
                             in_channels=data.channels)
        net.sparse = True  # only the cell's ops and edges run
        return _Fixed(net, {k: v.to(device) for k, v in strengths.items()}).to(device)
    from nasforge.spaces.darts.eval_network import NetworkCIFAR

    return NetworkCIFAR(standalone_genotype(sampler, strengths), s.channels, data.num_classes,
                        s.layers, auxiliary=False, in_channels=data.channels).to(device)


def standalone_genotype(sampler: CellSampler, strengths: dict[str, Tensor]) -> Genotype:
    """The DARTS-space genotype random search trains and writes for a drawn cell: in
    ``tabular-digits`` the drawn normal cell with the table's fixed reduction cell (what
    the table trained, so ``nasforge train`` retrains the network that was scored)."""
    genotype = sampler.genotype(strengths)
    if sampler.space_name == "tabular-digits":
        from nasforge.benchmarks.tabular import genotype_of

        genotype = genotype_of(genotype.normal)
    return genotype


def _read_done(path: Path, texts: list[str]) -> list[dict]:
    """The complete lines of ``samples.jsonl`` (a line cut short by a kill is dropped); they
    must be the cells this run draws."""
    if not path.is_file():
        return []
    done = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        i = len(done)
        if i >= len(texts) or row.get("index") != i or row.get("genotype") != texts[i]:
            raise NasforgeError(f"{path} was written by another random search (line {i + 1} "
                                "is not the cell this run draws); start a new run")
        done.append(row)
    return done


def _append(path: Path, rows: list[dict]) -> None:
    from nasforge.checkpoint import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def run_random_search(cfg: Config, out: str | Path, *, resume: bool = False,
                      force: bool = False) -> dict:
    """Run (or continue) a random search; returns the results written to ``results.json``."""
    from nasforge.checkpoint import atomic_write_text, kill_point
    from nasforge.data import Augment, load_dataset, make_batches, split_weight_arch
    from nasforge.distributed import launched, start_run
    from nasforge.fit import fit
    from nasforge.runtime import write_results
    from nasforge.search.loop import (
        check_space,
        check_training_subset,
        cosine_lr,
        evaluate,
        read_selection,
        select_proxy,
        training_indices,
    )

    out = Path(out)
    s = cfg.search
    if launched():
        raise NasforgeError("random search trains one cell at a time; run it without torchrun")
    oneshot = check_space(s.space)
    sampler = CellSampler(s, oneshot)
    bench, nb101 = lookup_tables(s, oneshot)
    lookup = bench is not None or nb101 is not None
    data = None
    if lookup and (cfg.data.proxy or cfg.proxy.method):
        warnings.warn("random search scores its cells by a table (search.bench / "
                      "search.nb101_table) and trains nothing, so the proxy subset "
                      "(--proxy / --proxy-method) is not used", stacklevel=2)
    if not lookup:
        data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
        check_training_subset(cfg, len(data.train), resume=resume)
    cells = draw_cells(sampler, s.samples, cfg.run.seed)  # before any directory is made
    texts = [sampler.text(w) if oneshot is not None else
             format_genotype(standalone_genotype(sampler, w)) for w in cells]
    dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
    device = dist.device
    path = out / SAMPLES
    done = _read_done(path, texts) if resume else []
    if not resume and path.exists():
        path.unlink()

    w_batches = a_eval = None
    train_examples = 0
    if data is not None:
        select_proxy(cfg, data, out, dist, resume=resume)  # proxy.method: select it first
        indices = training_indices(cfg, len(data.train))
        if len(indices) < 2:
            raise NasforgeError(f"random search needs at least 2 training examples; got "
                                f"{len(indices)}")
        train_examples = len(indices)
        w_idx, a_idx = split_weight_arch(indices, cfg.run.seed)
        common = dict(mean=data.mean, std=data.std, device=device)
        w_batches = make_batches(data.train, s.batch_size, indices=w_idx, seed=cfg.run.seed,
                                 augment=Augment(crop_pad=s.crop_pad, flip=s.flip), **common)
        a_eval = make_batches(data.train, max(s.batch_size, 256), indices=a_idx,
                              shuffle=False, **common)

    for i in range(len(done), s.samples):
        t0 = time.perf_counter()
        row: dict[str, Any] = {"index": i, "genotype": texts[i]}
        if bench is not None:
            info = bench.query(sampler.genotype(cells[i]))
            row.update(val_acc=info["val_acc_mean"], test_acc=info["test_acc_mean"],
                       key=info["key"])
        elif nb101 is not None:
            info = nb101.query(*oneshot.to_spec(sampler.genotype(cells[i])))
            row.update(val_acc=100.0 * float(info["validation_accuracy"]),
                       test_acc=100.0 * float(info["test_accuracy"]))
        else:
            torch.manual_seed(cfg.run.seed)  # every cell starts from the same stream
            model = _model(cfg, sampler, cells[i], data, device)
            opt = torch.optim.SGD(model.parameters(), lr=s.w_lr, momentum=s.w_momentum,
                                  weight_decay=s.w_weight_decay)
            fit(model, w_batches, opt, epochs=s.epochs,
                lr_at=lambda e: cosine_lr(e, s.epochs, s.w_lr, s.w_lr_min),
                grad_clip=s.grad_clip, dtype=dtype,
                hint=f"lower search.w_lr (cell {i} of the random search)")
            model.eval()
            loss, acc = evaluate(lambda x, m=model: m(x)[0], a_eval, dtype)
            row.update(val_acc=acc, val_loss=loss,
                       examples_seen=s.epochs * w_batches.num_examples + a_eval.num_examples)
        row["seconds"] = time.perf_counter() - t0
        done.append(row)
        _append(path, done)
        kill_point("random-sample")  # test hook: NASFORGE_TEST_KILL_AT (checkpoint.py)

    best = max(done, key=lambda r: (r["val_acc"], -r["index"]))  # ties: the first drawn
    atomic_write_text(out / "genotype.txt", best["genotype"] + "\n")
    results = {
        "stage": "search", "algo": s.algo, "space": s.space, "dataset": cfg.data.dataset,
        "genotype": best["genotype"], "rule": s.rule, "val_acc": best["val_acc"],
        "samples": s.samples, "best_index": best["index"],
        "scored_by": ("bench " + str(s.bench)) if bench is not None else
        ("nb101 " + str(s.nb101_table)) if nb101 is not None else "training",
        "cost": {"seconds": sum(r["seconds"] for r in done), "epochs": s.epochs,
                 "examples_seen": sum(r.get("examples_seen", 0) for r in done),
                 "train_examples": train_examples,
                 "proxy": cfg.data.proxy if data is not None else None,
                 "selection": read_selection(out) if data is not None else None},
    }
    if "test_acc" in best:
        results["test_acc_tabulated"] = best["test_acc"]
    write_results(out, results)
    return results


@STRATEGIES.register("random")
@ONESHOT_STRATEGIES.register("random")
class RandomSearch(SearchStrategy):
    """No super-network and no architecture parameters: the search loop hands the whole run
    to :func:`run_random_search` (its ``run_standalone``)."""

    options = (RandomOptions,)

    run_standalone = staticmethod(run_random_search)

    def __init__(self, network: nn.Module, cfg: SearchConfig) -> None:
        raise NasforgeError("random search trains no super-network; run it with "
                            "`nasforge search --algo random`")

