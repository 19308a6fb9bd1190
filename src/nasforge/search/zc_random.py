"""Zero-cost random search (``--algo zc-random``): N cells drawn uniformly from the cell
space, each scored by a zero-cost proxy (or a vote of proxies) on one minibatch of the
search data, the best returned. Nothing is trained.

The cells are the ones ``--algo random`` draws with the same seed
(:func:`~nasforge.search.random_search.draw_cells`), in every space it supports: DARTS cell
spaces (``search.rule=argmax``; S1–S4 and ``darts-no-none`` included), ExtCells
(``search.rule=topk``, ``search.k``), the NAS-Bench-1shot1 spaces and ``tabular-digits``
(normal cells only: the reduction cell is the table's fixed one). So ``zc-random`` and
``random`` with the same ``run.seed`` and ``search.samples`` look at the same cells and
differ only in how they score them.

Scoring (:mod:`nasforge.zc`): every cell's network is the one random search would train
(``NetworkCIFAR`` without auxiliary head at ``search.channels`` × ``search.layers``; in
``tabular-digits`` with the table's reduction cell; 1shot1 cells as the one-shot network
with the cell's 0/1 weights), with PyTorch's default initialisation drawn after
``torch.manual_seed(run.seed)`` — the same draw for every cell, as ``nasforge zc score``
does. The batch: examples of the search data (the proxy subset when ``data.proxy`` or
``--proxy-method`` gives one, else the whole training split) drawn without replacement by
``run.seed``, normalised, not augmented; each proxy reads its paper's batch size
(``search.zc_batch`` overrides). Scores are computed on the CPU.

The choice: with one proxy (``search.zc_proxies=synflow``), its highest score; with a comma
list, the highest mean rank over the proxies (:func:`mean_ranks`: within each proxy the
lowest score ranks 1 and the highest N, ties share their mean rank, NaN ranks lowest) —
Abdelfattah et al. (2021)'s vote of proxies in its mean-rank form. Ties: the first drawn.

Files: ``samples.jsonl`` (one line per scored cell: index, genotype, each proxy's score,
seconds; with ``search.bench`` / ``search.nb101_table`` also its tabulated accuracies, never
used to choose), ``genotype.txt``, ``strengths.json`` (the chosen cell's 0/1 strengths, so
``nasforge derive`` and ``report`` read it like a found cell) and ``results.json`` (cost:
wall seconds, ``epochs`` 0, ``examples_seen`` = examples the proxies read). ``--resume``
recomputes the whole (seeded, deterministic) run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nasforge.config import Config, RandomOptions, SearchConfig, ZeroCostOptions
from nasforge.errors import NasforgeError
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.search.random_search import CellSampler, draw_cells, lookup_tables
from nasforge.spaces.nb101.space import NB101_OPS, OneShotArch, OneShotSpace

SAMPLES = "samples.jsonl"
TABULAR = "tabular-digits"
MUTATION_KINDS = ("op", "input")


# --------------------------------------------------------------------------- the space


class ZCSpace:
    """The searched cell space as zero-cost search sees it: uniform cells (as 0/1 strengths,
    :class:`CellSampler`'s), the network's architecture and text, one-decision mutations."""

    def __init__(self, s: SearchConfig, oneshot: OneShotSpace | None) -> None:
        self.sampler = CellSampler(s, oneshot)  # refuses rules other than argmax / topk
        self.oneshot = oneshot
        self.topk = oneshot is None and s.rule == "topk"
        self.tabular = oneshot is None and s.space == TABULAR
        self.cells: tuple[str, ...] = CELL_TYPES
        if oneshot is not None:
            self.label = s.space  # the nasforge.zc space that builds its networks
            return
        self.label = "darts"  # NetworkCIFAR of the genotype, whatever the op set
        self.edges = self.sampler.edges
        if self.tabular:
            from nasforge.benchmarks.tabular import fixed_reduction_cell

            if s.nodes != 2 or self.topk:
                raise NasforgeError("the tabular-digits space holds argmax cells with 2 "
                                    "intermediate nodes; set search.nodes=2 and "
                                    f"search.rule=argmax (got {s.nodes}, {s.rule})")
            self.label = TABULAR
            self.cells = ("normal",)  # the reduction cell is the table's fixed one
            self._reduce = self._cell_weights(fixed_reduction_cell())

    def _cell_weights(self, cell: Any) -> Tensor:
        w = torch.zeros(len(self.edges), len(self.sampler.primitives))
        for op, i, j in cell.ops:
            w[self.edges.index((i, j)), self.sampler.primitives.index(op)] = 1.0
        return w

    def fix(self, w: dict[str, Tensor]) -> dict[str, Tensor]:
        """A drawn cell as this space holds it (tabular-digits: the fixed reduction cell)."""
        if self.tabular:
            return {"normal": w["normal"], "reduce": self._reduce.clone()}
        return w

    def draw(self, n: int, seed: int) -> list[dict[str, Tensor]]:
        """The N cells ``--algo random`` draws with this seed."""
        return [self.fix(w) for w in draw_cells(self.sampler, n, seed)]

    def arch(self, w: dict[str, Tensor]) -> Any:
        """The genotype (DARTS spaces) or :class:`OneShotArch` the strengths stand for."""
        arch = self.sampler.genotype(w)
        if self.tabular:
            from nasforge.benchmarks.tabular import genotype_of

            arch = genotype_of(arch.normal)  # canonical order: the table's own network
        return arch

    def text(self, w: dict[str, Tensor]) -> str:
        arch = self.arch(w)
        if self.oneshot is not None:
            return self.oneshot.format(arch)
        from nasforge.spaces.darts.genotype import format_genotype

        return format_genotype(arch)

    # ------------------------------------------------------------------ mutation

    def mutate(self, w: dict[str, Tensor], rng: Any) -> tuple[dict[str, Tensor], str]:
        """A child that differs from ``w`` in exactly one decision, and the decision's kind.

        As Real et al. (2019): the kind — ``op`` (another op on one chosen input) or ``input``
        (another input for one op, the op kept) — uniformly among the kinds possible here,
        then the place uniformly, then the new value uniformly. Children are valid cells of
        the space (an input never repeats within a node; ExtCells stay valid; S1–S4 ops stay
        on edges that hold them; 1shot1 parents stay distinct and earlier).
        """
        moves = self._oneshot_moves(w) if self.oneshot is not None else self._cell_moves(w)
        kinds = [k for k in MUTATION_KINDS if moves[k]]
        if not kinds:
            raise NasforgeError("this cell has no neighbour that differs in one decision")
        kind = rng.choice(kinds)
        place = rng.choice(sorted(moves[kind]))
        return moves[kind][place][rng.randrange(len(moves[kind][place]))](), kind

    def _cell_moves(self, w: dict[str, Tensor]) -> dict[str, dict[Any, list[Callable]]]:
        allowed = self.sampler.allowed
        moves: dict[str, dict[Any, list[Callable]]] = {k: {} for k in MUTATION_KINDS}

        def move(c: str, src: tuple[int, int], dst: tuple[int, int]) -> Callable:
            def child() -> dict[str, Tensor]:
                out = {k: v.clone() for k, v in w.items()}
                out[c][src] = 0.0
                out[c][dst] = 1.0
                return out
            return child

        for c in self.cells:
            for e, k in w[c].nonzero().tolist():
                i, j = self.edges[e]
                ops = [move(c, (e, k), (e, k2)) for k2 in allowed[c][e]
                       if k2 != k and not w[c][e, k2]]
                inputs = []
                for i2 in range(j):
                    e2 = self.edges.index((i2, j))
                    if i2 == i or k not in allowed[c][e2]:
                        continue
                    # argmax cells: 2 distinct inputs per node; ExtCells: one op per (edge, op)
                    taken = bool(w[c][e2, k]) if self.topk else bool(w[c][e2].any())
                    if not taken:
                        inputs.append(move(c, (e, k), (e2, k)))
                if self.topk:  # the pair of ExtCells must stay valid
                    ops, inputs = [m for m in ops if self._valid(m)], \
                        [m for m in inputs if self._valid(m)]
                for kind, found in (("op", ops), ("input", inputs)):
                    if found:
                        moves[kind][(c, e, k)] = found
        return moves

    def _valid(self, make: Callable) -> bool:
        try:
            self.sampler.genotype(make())
        except NasforgeError:
            return False
        return True

    def _oneshot_moves(self, w: dict[str, Tensor]) -> dict[str, dict[Any, list[Callable]]]:
        space = self.oneshot
        assert space is not None
        arch = space.discretize(w)
        moves: dict[str, dict[Any, list[Callable]]] = {k: {} for k in MUTATION_KINDS}

        def child(ops=arch.ops, parents=arch.parents, output=arch.output) -> Callable:
            return lambda: self.sampler.weights_of(
                space.validate(OneShotArch(tuple(ops), tuple(parents), tuple(output))))

        for b, op in enumerate(arch.ops):
            moves["op"][("op", b)] = [
                child(ops=arch.ops[:b] + (o,) + arch.ops[b + 1:]) for o in NB101_OPS if o != op]
        for v in range(1, space.blocks + 1):
            if not space.searched(v):
                continue
            have = arch.parents[v - 1]
            for p in have:
                found = [child(parents=arch.parents[:v - 1]
                               + (tuple(sorted(set(have) - {p} | {q})),) + arch.parents[v:])
                         for q in range(v) if q not in have]
                if found:
                    moves["input"][("vertex", v, p)] = found
        for p in arch.output:
            found = [child(output=tuple(sorted(set(arch.output) - {p} | {q})))
                     for q in range(space.blocks + 1) if q not in arch.output]
            if found:
                moves["input"][("output", 0, p)] = found
        return moves

    # ------------------------------------------------------------------ files

    def strengths_record(self, w: dict[str, Tensor], algo: str, nodes: int) -> dict:
        primitives = list(NB101_OPS) if self.oneshot is not None else \
            list(self.sampler.primitives)
        return {"algo": algo, "primitives": primitives, "nodes": nodes,
                **{k: v.tolist() for k, v in w.items()}}


# --------------------------------------------------------------------------- the vote


def mean_ranks(rows: Sequence[dict[str, Any]], proxies: Sequence[str]) -> list[float]:
    """Each row's rank averaged over ``proxies``: within one proxy the lowest score ranks 1
    and the highest ``len(rows)``, tied scores share their mean rank, NaN ranks with −∞
    (lowest). Higher is better; with one proxy the order is the scores' order."""
    from scipy.stats import rankdata

    if not rows:
        return []
    total = [0.0] * len(rows)
    for name in proxies:
        values = [float(r[name]) for r in rows]
        values = [-math.inf if math.isnan(v) else v for v in values]
        for i, rank in enumerate(rankdata(values, method="average")):
            total[i] += float(rank)
    return [t / len(proxies) for t in total]


def best_position(rows: Sequence[dict[str, Any]], proxies: Sequence[str]) -> int:
    """Position in ``rows`` of the best row by :func:`mean_ranks` (ties: the first)."""
    if not rows:
        raise NasforgeError("no architecture was scored")
    ranks = mean_ranks(rows, proxies)
    return max(range(len(rows)), key=lambda i: (ranks[i], -i))


# --------------------------------------------------------------------------- scoring


class Scorer:
    """Proxy scores of cells (cached by genotype text: a cell's score depends on it only)."""

    def __init__(self, space: ZCSpace, proxies: list[str], data: Any, batch: int | None,
                 seed: int, channels: int, layers: int,
                 device: torch.device | str = "cpu") -> None:
        from nasforge.zc.proxies import PROXIES
        from nasforge.zc.sample import NetSettings

        self.space, self.proxies, self.data, self.batch, self.seed = (space, proxies, data,
                                                                       batch, seed)
        self.settings = NetSettings(channels=channels, layers=layers)
        self.device = device
        self.cache: dict[str, dict[str, float]] = {}
        self.seconds = 0.0
        # examples a network's proxies read (synflow, params and flops read none)
        self.per_network = sum((batch if batch is not None else PROXIES.get(p).batch_size)
                               for p in proxies if PROXIES.get(p).uses_data)

    @property
    def scored(self) -> int:
        """Networks built and scored (distinct cells)."""
        return len(self.cache)

    def __call__(self, w: dict[str, Tensor]) -> tuple[str, dict[str, float]]:
        from nasforge.zc.sample import Sample
        from nasforge.zc.score import score_architectures

        text = self.space.text(w)
        if text not in self.cache:
            start = time.perf_counter()
            sample = Sample(self.space.label, self.space.arch(w), text, len(self.cache))
            row = score_architectures(self.space.label, [sample], self.proxies, self.data,
                                      self.batch, self.seed, settings=self.settings,
                                      device=self.device)[0]
            self.cache[text] = {p: float(row[p]) for p in self.proxies}
            self.seconds += time.perf_counter() - start
        return text, dict(self.cache[text])


# --------------------------------------------------------------------------- the run


def run_zc_search(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
                  search: Callable[[Config, ZCSpace, Scorer], list[dict]] | None = None,
                  extra: Callable[[SearchConfig], dict] | None = None,
                  check: Callable[[SearchConfig], None] | None = None) -> dict:
    """Prepare, run ``search(cfg, space, scorer) -> rows`` (each row: ``index``,
    ``genotype``, the proxies' scores, ``_w`` the cell's strengths), choose the best row by
    the vote and write the run's files; returns ``results.json``'s content."""
    from nasforge.checkpoint import atomic_write_json, atomic_write_text
    from nasforge.data import Split, load_dataset
    from nasforge.distributed import launched, start_run
    from nasforge.runtime import write_results
    from nasforge.search.loop import (
        check_space,
        check_training_subset,
        read_selection,
        select_proxy,
        training_indices,
    )
    from nasforge.zc.proxies import PROXIES
    from nasforge.zc.score import _batch_needed, _jsonable, load_batch, resolve_proxies

    out = Path(out)
    s = cfg.search
    if launched():
        raise NasforgeError(f"{s.algo} scores one network at a time; run it without torchrun")
    names = resolve_proxies(s.zc_proxies)
    need = _batch_needed(names, s.zc_batch)
    if check is not None:
        check(s)
    oneshot = check_space(s.space)
    space = ZCSpace(s, oneshot)
    bench, nb101 = lookup_tables(s, oneshot)
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    if not isinstance(data.train, Split):
        raise NasforgeError(f"zero-cost search reads in-memory data sets; {cfg.data.dataset} "
                            "is an image folder")
    check_training_subset(cfg, len(data.train), resume=resume)
    if cfg.data.proxy:
        given = len(training_indices(cfg, len(data.train)))
        if given < need:
            raise NasforgeError(f"the proxies read {need} examples but the proxy subset "
                                f"{cfg.data.proxy} holds {given}; lower search.zc_batch")
    dist, _ = start_run(cfg, out, fresh=not resume, force=force)
    start = time.perf_counter()
    select_proxy(cfg, data, out, dist, resume=resume)  # --proxy-method: select it first
    indices = training_indices(cfg, len(data.train))
    batch = load_batch(cfg.data.dataset, need, cfg.run.seed,
                       indices=indices if cfg.data.proxy else None, root=cfg.data.root,
                       upscale=cfg.data.upscale)
    scorer = Scorer(space, names, batch, s.zc_batch, cfg.run.seed, s.channels, s.layers,
                    device=dist.device)
    rows = (search or _random_rows)(cfg, space, scorer)

    best = rows[best_position(rows, names)]
    for row in rows:
        if bench is not None:
            info = bench.query(row["genotype"])
            row.update(val_acc=info["val_acc_mean"], test_acc=info["test_acc_mean"],
                       key=info["key"])
        elif nb101 is not None:
            info = nb101.query(*oneshot.to_spec(space.arch(row["_w"])))
            row.update(val_acc=100.0 * float(info["validation_accuracy"]),
                       test_acc=100.0 * float(info["test_accuracy"]))
    atomic_write_text(out / SAMPLES, "".join(
        json.dumps(_jsonable({k: v for k, v in r.items() if k != "_w"})) + "\n" for r in rows))
    atomic_write_text(out / "genotype.txt", best["genotype"] + "\n")
    atomic_write_json(out / "strengths.json", space.strengths_record(best["_w"], s.algo,
                                                                     s.nodes))
    results: dict[str, Any] = {
        "stage": "search", "algo": s.algo, "space": s.space, "dataset": cfg.data.dataset,
        "genotype": best["genotype"], "rule": s.rule,
        "proxies": names, "ranked_by": names[0] if len(names) == 1 else
        "vote: mean rank over " + ",".join(names),
        "scores": {p: best[p] for p in names}, "best_index": best["index"],
        "samples": len(rows), "scored": scorer.scored,
        "zc_batch": {p: s.zc_batch if s.zc_batch is not None else PROXIES.get(p).batch_size
                     for p in names},
        **(extra(s) if extra is not None else {}),
    }
    if "val_acc" in best:  # a table was given: the chosen cell's tabulated accuracies
        results.update(val_acc=best["val_acc"], test_acc_tabulated=best["test_acc"],
                       scored_by=f"bench {s.bench}" if bench is not None
                       else f"nb101 {s.nb101_table}")
        if bench is not None:
            info = bench.query(best["genotype"])
            results.update(rank=info["rank"], percentile=info["percentile"])
    results["cost"] = {"seconds": time.perf_counter() - start,
                       "scoring_seconds": scorer.seconds, "epochs": 0,
                       "examples_seen": scorer.scored * scorer.per_network,
                       "train_examples": len(indices), "proxy": cfg.data.proxy,
                       "selection": read_selection(out)}
    results = _jsonable(results)
    write_results(out, results)
    return results


def _random_rows(cfg: Config, space: ZCSpace, scorer: Scorer) -> list[dict]:
    rows = []
    for i, w in enumerate(space.draw(cfg.search.samples, cfg.run.seed)):
        text, scores = scorer(w)
        rows.append({"index": i, "genotype": text, **scores, "_w": w})
    return rows


def run_zc_random(cfg: Config, out: str | Path, *, resume: bool = False,
                  force: bool = False) -> dict:
    """Run a zero-cost random search; returns the results written to ``results.json``."""
    return run_zc_search(cfg, out, resume=resume, force=force, search=_random_rows)


@STRATEGIES.register("zc-random")
@ONESHOT_STRATEGIES.register("zc-random")
class ZCRandomSearch(SearchStrategy):
    """No super-network, no training: the search loop hands the whole run to
    :func:`run_zc_random` (its ``run_standalone``)."""

    zero_cost = True
    options = (RandomOptions, ZeroCostOptions)  # search.samples, bench; zc_*, P, S
    run_standalone = staticmethod(run_zc_random)

    def __init__(self, network: nn.Module, cfg: SearchConfig) -> None:
        raise NasforgeError("zero-cost search trains no super-network; run it with "
                            "`nasforge search --algo zc-random`")
