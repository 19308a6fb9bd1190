"""Zero-cost regularized evolution (``--algo zc-evolution``): aging evolution (Real et al.,
2019, Algorithm 1) with a zero-cost proxy, or a vote of proxies, as the fitness. Nothing is
trained.

- **Population** P = ``search.population`` (20): the first P of the cells ``--algo random``
  (and ``zc-random``) draws with the same seed.
- **Cycle**: S = ``search.tournament`` (5) members drawn uniformly *with replacement* from
  the population (as in the paper); the fittest of them is the parent; its child differs in
  exactly one decision (:meth:`~nasforge.search.zc_random.ZCSpace.mutate`: another op for
  one input, or another input for one op) and joins the population; the *oldest* member
  leaves (aging), whatever its fitness.
- **Budget**: ``search.samples`` architectures in all, the initial population included
  (the paper's C); every evaluated architecture is a line of ``samples.jsonl`` with its
  parent and the kind of mutation.
- **Fitness**: the proxy's score; with several proxies the tournament winner is the best
  mean rank among the (distinct) contenders (:func:`~nasforge.search.zc_random.mean_ranks`),
  and the result is the best mean rank over the whole history, as Real et al. return the
  best model ever evaluated. Ties: the oldest.
- A cell's score depends only on the cell (fixed batch, ``torch.manual_seed(run.seed)``
  before each network), so a cell met again is not rescored (``results.json``'s ``scored``
  counts distinct networks, ``samples`` the evaluations). Mutations and tournaments draw
  from ``random.Random`` seeded by ``run.seed``: same seed, same genotype.

Everything else — spaces, networks, batch, files, bench lookups — is
:mod:`nasforge.search.zc_random`'s.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from nasforge.config import Config, RandomOptions, SearchConfig, ZeroCostOptions
from nasforge.errors import NasforgeError
from nasforge.search.base import STRATEGIES, SearchStrategy
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.search.zc_random import Scorer, ZCSpace, best_position, run_zc_search


def aging_evolution(*, population: int, tournament: int, samples: int, rng: random.Random,
                    initial: Callable[[int], Any], mutate: Callable[[Any, random.Random], Any],
                    evaluate: Callable[[Any, dict | None, Any], dict],
                    winner: Callable[[list[dict]], dict]) -> tuple[list[dict], list[dict]]:
    """Real et al.'s Algorithm 1; returns ``(history, final population)``, oldest first.

    ``initial(i)`` is the i-th cell of the initial population; ``evaluate(cell, parent,
    how)`` returns a member (a dict with ``index``, its position in the history);
    ``winner(contenders)`` picks the parent; ``mutate(parent member, rng)`` returns
    ``(child cell, how)``.
    """
    pop: deque[dict] = deque()
    history: list[dict] = []
    while len(history) < min(population, samples):
        member = evaluate(initial(len(history)), None, None)
        pop.append(member)
        history.append(member)
    while len(history) < samples:
        contenders = [pop[rng.randrange(len(pop))] for _ in range(tournament)]
        parent = winner(contenders)
        child, how = mutate(parent, rng)
        member = evaluate(child, parent, how)
        pop.append(member)
        history.append(member)
        pop.popleft()  # aging: the oldest goes, not the worst
    return history, list(pop)


def check_settings(s: SearchConfig) -> None:
    if s.population > s.samples:
        raise NasforgeError(f"search.population ({s.population}) must not exceed "
                            f"search.samples ({s.samples}), the architectures scored in all")
    if s.tournament > s.population:
        raise NasforgeError(f"search.tournament ({s.tournament}) must not exceed "
                            f"search.population ({s.population})")


def _evolution_rows(cfg: Config, space: ZCSpace, scorer: Scorer) -> list[dict]:
    s = cfg.search
    names = scorer.proxies
    first = space.draw(s.population, cfg.run.seed)

    count = 0

    def evaluate(w: Any, parent: dict | None, how: str | None) -> dict:
        nonlocal count
        text, scores = scorer(w)
        count += 1
        return {"index": count - 1, "genotype": text, **scores,
                "parent": None if parent is None else parent["index"], "mutation": how,
                "_w": w}

    def winner(contenders: list[dict]) -> dict:
        distinct = sorted({m["index"]: m for m in contenders}.values(), key=lambda m: m["index"])
        return distinct[best_position(distinct, names)]

    history, _ = aging_evolution(
        population=s.population, tournament=s.tournament, samples=s.samples,
        rng=random.Random(f"zc-evolution-{cfg.run.seed}"), initial=lambda i: first[i],
        mutate=lambda m, rng: space.mutate(m["_w"], rng), evaluate=evaluate, winner=winner)
    return history


def run_zc_evolution(cfg: Config, out: str | Path, *, resume: bool = False,
                     force: bool = False) -> dict:
    """Run a zero-cost regularized evolution; returns the results written to
    ``results.json``."""
    return run_zc_search(
        cfg, out, resume=resume, force=force, search=_evolution_rows, check=check_settings,
        extra=lambda s: {"population": s.population, "tournament": s.tournament})


@STRATEGIES.register("zc-evolution")
@ONESHOT_STRATEGIES.register("zc-evolution")
class ZCEvolution(SearchStrategy):
    """No super-network, no training: the search loop hands the whole run to
    :func:`run_zc_evolution` (its ``run_standalone``)."""

    zero_cost = True
    options = (RandomOptions, ZeroCostOptions)  # search.samples, bench; zc_*, P, S
    run_standalone = staticmethod(run_zc_evolution)

    def __init__(self, network: nn.Module, cfg: SearchConfig) -> None:
        raise NasforgeError("zero-cost search trains no super-network; run it with "
                            "`nasforge search --algo zc-evolution`")
