"""Spike-aware evolutionary search of AutoSNN (thesis §5.3.2, Algorithm 1).

The search only sees architectures as tuples of block names and a callback
``evaluate(arch) -> (accuracy, spikes)``; it knows nothing about networks, so it can be
tested with synthetic fitness functions and reused for any super-network. Each
architecture is evaluated at most once (results are cached), which also lets several
values of λ share one set of evaluations (:func:`search_many`).

Resuming replays the search from its seed with the saved evaluations instead of storing
the random generator: the trajectory depends only on the seed and the evaluation results,
so a resumed run ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nasforge.checkpoint import atomic_write_json, atomic_write_text
from nasforge.errors import NasforgeError

Arch = tuple[str, ...]
Evaluate = Callable[[Arch], tuple[float, float]]

DEFAULT_BLOCKS: tuple[str, ...] = ("SCB_k3", "SCB_k5", "SRB_k3", "SRB_k5", "skip")
DEFAULT_LENGTH = 5
DEFAULT_LAM = -0.08
STATE_FORMAT = "nasforge-snn-evolution"


def arch_to_text(arch: Sequence[str]) -> str:
    """``("SRB_k5", "skip")`` -> ``"SRB_k5,skip"``: the form used in JSON, CSV and logs."""
    return ",".join(arch)


def arch_from_text(text: str) -> Arch:
    """Inverse of :func:`arch_to_text`."""
    return tuple(part.strip() for part in text.split(","))


def fitness(acc: float, spikes: float, n_avg: float, lam: float) -> float:
    """Eq. 5.1: ``acc * (spikes / n_avg) ** lam``; λ < 0 favours fewer spikes."""
    if n_avg <= 0:
        raise NasforgeError(f"n_avg must be positive, got {n_avg}")
    if spikes < 0 or (spikes == 0 and lam < 0):
        raise NasforgeError(f"spike count {spikes} cannot be scored with lam={lam}")
    return acc * (spikes / n_avg) ** lam


def check_lam(lam: float) -> None:
    """Warn (not fail) on λ > 0: legal arithmetic, but it rewards spiking more."""
    if lam > 0:
        warnings.warn(f"lam={lam} > 0 rewards architectures that spike more; spike-aware "
                      "search expects lam <= 0 (thesis default -0.08, lam=0 ignores spikes)",
                      UserWarning, stacklevel=3)


@dataclass(frozen=True)
class HistoryRow:
    """One evaluated architecture, in evaluation order."""

    arch: Arch
    acc: float
    spikes: float
    fitness: float
    round: int


@dataclass
class SearchResult:
    """Top-1 architecture, the final top-k pool and every evaluation, as plain data."""

    method: str
    lam: float
    n_avg: float
    seed: int
    top: list[Arch]
    history: list[HistoryRow]
    evaluate_calls: int = 0  # calls this search made to ``evaluate`` (cache hits excluded)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Arch:
        return self.top[0]

    @property
    def best_row(self) -> HistoryRow:
        return next(row for row in self.history if row.arch == self.best)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (architectures as ``"a,b,c"`` text)."""
        best = self.best_row
        return {
            "method": self.method, "lam": self.lam, "n_avg": self.n_avg, "seed": self.seed,
            "best": arch_to_text(best.arch), "best_acc": best.acc,
            "best_spikes": best.spikes, "best_fitness": best.fitness,
            "top": [arch_to_text(a) for a in self.top],
            "evaluations": len(self.history), "evaluate_calls": self.evaluate_calls,
            "params": self.params,
            "history": [{"arch": arch_to_text(r.arch), "acc": r.acc, "spikes": r.spikes,
                         "fitness": r.fitness, "round": r.round} for r in self.history],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchResult:
        history = [HistoryRow(arch_from_text(r["arch"]), r["acc"], r["spikes"], r["fitness"],
                              r["round"]) for r in data["history"]]
        return cls(data["method"], data["lam"], data["n_avg"], data["seed"],
                   [arch_from_text(a) for a in data["top"]], history,
                   data.get("evaluate_calls", 0), data.get("params", {}))

    def write_history_csv(self, path: str | Path) -> Path:
        """One row per evaluation (index, round, arch, acc, spikes, fitness), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["index", "round", "arch", "acc", "spikes", "fitness"])
        for i, r in enumerate(self.history):
            writer.writerow([i, r.round, arch_to_text(r.arch), r.acc, r.spikes, r.fitness])
        return atomic_write_text(path, buf.getvalue())


class EvalCache:
    """Calls ``evaluate`` once per architecture and counts the real calls."""

    def __init__(self, evaluate: Evaluate, store: dict[Arch, tuple[float, float]] | None = None):
        self.evaluate = evaluate
        self.store: dict[Arch, tuple[float, float]] = {} if store is None else store
        self.calls = 0

    def __call__(self, arch: Arch) -> tuple[float, float]:
        if arch not in self.store:
            self.calls += 1
            acc, spikes = self.evaluate(arch)
            acc, spikes = float(acc), float(spikes)
            if not (math.isfinite(acc) and math.isfinite(spikes)):
                raise NasforgeError(f"evaluate({arch_to_text(arch)}) returned "
                                    f"acc={acc}, spikes={spikes}")
            self.store[arch] = (acc, spikes)
        return self.store[arch]


def random_architecture(rng: random.Random, blocks: Sequence[str], length: int) -> Arch:
    """Uniform draw from ``blocks ** length``."""
    return tuple(rng.choice(blocks) for _ in range(length))


def mutate(arch: Arch, rng: random.Random, blocks: Sequence[str], prob: float) -> Arch:
    """Each block independently, with probability ``prob``, becomes a *different* block."""
    child = list(arch)
    for i, block in enumerate(child):
        if rng.random() < prob:
            others = [b for b in blocks if b != block]
            if others:
                child[i] = rng.choice(others)
    return tuple(child)


def crossover(first: Arch, second: Arch, rng: random.Random) -> Arch:
    """One-point crossover: first X blocks of ``first``, the rest of ``second``, X in 1..L-1."""
    if len(first) < 2:
        return first
    cut = rng.randint(1, len(first) - 1)
    return first[:cut] + second[cut:]


def sample_unique(rng: random.Random, blocks: Sequence[str], length: int, count: int,
                taken: set[Arch]) -> list[Arch]:
    """``count`` random architectures not in ``taken`` (fewer if the space runs out)."""
    count = min(count, len(blocks) ** length - len(taken))
    out: list[Arch] = []
    while len(out) < count:
        arch = random_architecture(rng, blocks, length)
        if arch not in taken:
            taken.add(arch)
            out.append(arch)
    return out


def _offspring(make: Callable[[], Arch], count: int, taken: set[Arch]) -> list[Arch]:
    """Up to ``count`` new children; a child already evaluated or pooled is redrawn.

    Like the SPOS search code AutoSNN builds on, redraws stop after ``10 * count`` tries;
    the caller fills what is missing with random architectures (thesis §5.3.2).
    """
    out: list[Arch] = []
    for _ in range(10 * count):
        if len(out) == count:
            break
        child = make()
        if child not in taken:
            taken.add(child)
            out.append(child)
    return out


def _ranked(history: list[HistoryRow], k: int) -> list[Arch]:
    """Elitist top-k by fitness; ties go to the earlier evaluation."""
    order = sorted(range(len(history)), key=lambda i: (-history[i].fitness, i))
    return [history[i].arch for i in order[:k]]


def _validate(blocks: Sequence[str], length: int) -> tuple[str, ...]:
    blocks = tuple(blocks)
    if not blocks or len(set(blocks)) != len(blocks):
        raise NasforgeError(f"blocks must be non-empty and distinct, got {blocks}")
    if any("," in b for b in blocks):
        raise NasforgeError("block names may not contain ','")
    if length < 1:
        raise NasforgeError(f"length must be >= 1, got {length}")
    return blocks


def _load_state(path: Path, params: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise NasforgeError(f"cannot read search state {path}: {err}") from err
    if state.get("format") != STATE_FORMAT:
        raise NasforgeError(f"{path} is not an evolutionary-search state file")
    if state.get("params") != params:
        raise NasforgeError(f"{path} belongs to a search with other parameters: "
                            f"{state.get('params')}")
    return int(state["round"]), list(state["evaluated"])


def evolutionary_search(
    evaluate: Evaluate, *, blocks: Sequence[str] = DEFAULT_BLOCKS,
    length: int = DEFAULT_LENGTH, lam: float = DEFAULT_LAM, n_avg: float, rounds: int = 10,
    pool: int = 20, top_k: int = 10, mutations: int = 10, crossovers: int = 10,
    mutation_prob: float = 0.2, seed: int = 0, progress: bool = False,
    state_path: str | Path | None = None,
    cache: dict[Arch, tuple[float, float]] | None = None,
) -> SearchResult:
    """Algorithm 1: ``rounds`` rounds of ``pool`` new evaluations, elitist top-k.

    Round 1 evaluates ``pool`` random architectures; every later round evaluates
    ``mutations`` mutants and ``crossovers`` one-point crossovers of top-k parents, topped
    up with random architectures to ``pool``. No architecture is evaluated twice, so at
    most ``rounds * pool`` evaluations are spent (exactly that unless the space runs out).
    ``cache`` (arch -> (acc, spikes)) may be shared between searches to skip ``evaluate``
    calls; it does not change the search. ``state_path`` saves progress after every round
    (and on an exception) and resumes from it.
    """
    check_lam(lam)
    blocks = _validate(blocks, length)
    if min(rounds, pool, top_k) < 1 or min(mutations, crossovers) < 0:
        raise NasforgeError("rounds, pool and top_k must be >= 1; mutations, crossovers >= 0")
    if mutations + crossovers > pool:
        raise NasforgeError(f"mutations + crossovers ({mutations + crossovers}) exceed the "
                            f"evaluation pool ({pool})")
    if not 0.0 <= mutation_prob <= 1.0:
        raise NasforgeError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
    params = {"blocks": list(blocks), "length": length, "lam": float(lam),
              "n_avg": float(n_avg), "rounds": rounds, "pool": pool, "top_k": top_k,
              "mutations": mutations, "crossovers": crossovers,
              "mutation_prob": float(mutation_prob), "seed": seed}
    evals = EvalCache(evaluate, cache)
    calls_before = evals.calls
    done_rounds, saved = 0, []
    replay: dict[Arch, tuple[float, float]] = {}
    path = Path(state_path) if state_path is not None else None
    if path is not None and path.exists():
        done_rounds, saved = _load_state(path, params)
        replay = {arch_from_text(r["arch"]): (float(r["acc"]), float(r["spikes"]))
                  for r in saved}
        evals = EvalCache(evaluate, {**evals.store, **replay})

    rng = random.Random(seed)
    history: list[HistoryRow] = []
    taken: set[Arch] = set()

    def save(completed: int) -> None:
        if path is not None:
            rows = [{"arch": arch_to_text(r.arch), "acc": r.acc, "spikes": r.spikes,
                     "round": r.round} for r in history]
            atomic_write_json(path, {"format": STATE_FORMAT, "params": params,
                                     "round": completed, "evaluated": rows})

    completed = done_rounds
    bar = tqdm(total=rounds * pool, desc=f"evolution lam={lam}", unit="arch",
               disable=not progress)
    try:
        for rnd in range(1, rounds + 1):
            if rnd == 1:
                candidates = sample_unique(rng, blocks, length, pool, taken)
            else:
                top = _ranked(history, top_k)
                candidates = _offspring(
                    lambda top=top: mutate(rng.choice(top), rng, blocks, mutation_prob),
                    mutations, taken)
                candidates += _offspring(
                    lambda top=top: crossover(*_two_parents(top, rng), rng), crossovers, taken)
                candidates += sample_unique(rng, blocks, length, pool - len(candidates), taken)
            for arch in candidates:
                if rnd <= done_rounds and arch not in replay:
                    raise NasforgeError(f"{path} does not replay: {arch_to_text(arch)} was "
                                        f"not evaluated in saved round {rnd}")
                acc, spikes = evals(arch)
                history.append(HistoryRow(arch, acc, spikes,
                                          fitness(acc, spikes, n_avg, lam), rnd))
                bar.update()
            if rnd > done_rounds:
                completed = rnd
                save(rnd)
            if not candidates:
                break  # the whole space has been evaluated
    except BaseException:
        if len(history) > len(saved):  # keep finished evaluations of the broken round
            save(completed)
        raise
    finally:
        bar.close()
    if cache is not None:
        cache.update(evals.store)
    return SearchResult("evolution", float(lam), float(n_avg), seed,
                        _ranked(history, top_k), history, evals.calls - calls_before, params)


def _two_parents(top: list[Arch], rng: random.Random) -> tuple[Arch, Arch]:
    """Two distinct top-k members (the same one twice only when top-k holds one)."""
    if len(top) < 2:
        return top[0], top[0]
    first, second = rng.sample(top, 2)
    return first, second


def random_search(
    evaluate: Evaluate, *, blocks: Sequence[str] = DEFAULT_BLOCKS,
    length: int = DEFAULT_LENGTH, lam: float = DEFAULT_LAM, n_avg: float, budget: int = 200,
    seed: int = 0, top_k: int = 10, progress: bool = False,
    cache: dict[Arch, tuple[float, float]] | None = None,
) -> SearchResult:
    """WS + random search (Table 5.7 ablation): ``budget`` unique random architectures."""
    check_lam(lam)
    blocks = _validate(blocks, length)
    if budget < 1:
        raise NasforgeError(f"budget must be >= 1, got {budget}")
    params = {"blocks": list(blocks), "length": length, "lam": float(lam),
              "n_avg": float(n_avg), "budget": budget, "seed": seed}
    evals = EvalCache(evaluate, cache)
    rng = random.Random(seed)
    history: list[HistoryRow] = []
    archs = sample_unique(rng, blocks, length, budget, set())
    for arch in tqdm(archs, desc=f"random lam={lam}", unit="arch", disable=not progress):
        acc, spikes = evals(arch)
        history.append(HistoryRow(arch, acc, spikes, fitness(acc, spikes, n_avg, lam), 1))
    return SearchResult("random", float(lam), float(n_avg), seed, _ranked(history, top_k),
                        history, evals.calls, params)


def search_many(
    evaluate: Evaluate, lams: Iterable[float], *, method: str = "evolution",
    n_avg: float, cache: dict[Arch, tuple[float, float]] | None = None, **kwargs: Any,
) -> dict[float, SearchResult]:
    """One search per λ, sharing one evaluation cache (evaluations do not depend on λ).

    Each result equals a separate search with the same arguments; only the number of
    ``evaluate`` calls shrinks. Pass ``cache`` (a dict, filled in place) to share it with
    later calls too. ``kwargs`` go to :func:`evolutionary_search` or :func:`random_search`
    (``method="random"``); ``state_path`` is not accepted here.
    """
    searches = {"evolution": evolutionary_search, "random": random_search}
    if method not in searches:
        raise NasforgeError(f"unknown search method {method!r}; choose from {sorted(searches)}")
    if "state_path" in kwargs:
        raise NasforgeError("search_many does not take state_path (one state per search)")
    cache = {} if cache is None else cache
    results: dict[float, SearchResult] = {}
    for lam in lams:
        results[float(lam)] = searches[method](evaluate, lam=lam, n_avg=n_avg, cache=cache,
                                               **kwargs)
    return results
