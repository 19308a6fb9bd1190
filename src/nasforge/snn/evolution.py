"""Spike-aware evolutionary search of AutoSNN (thesis §5.3.2, Algorithm 1).

The search only sees architectures as tuples of block names and a callback
``evaluate(arch) -> (accuracy, spikes)`` or ``(accuracy, spikes, energy)`` (µJ per image,
:mod:`nasforge.snn.energy`); it knows nothing about networks, so it can be
tested with synthetic fitness functions and reused for any super-network. Each
architecture is evaluated at most once (results are cached), which also lets several
values of λ share one set of evaluations (:func:`search_many`).

Resuming replays the search from its seed with the saved evaluations instead of storing
the random generator: the trajectory depends only on the seed and the evaluation results,
so a resumed run ends exactly where an uninterrupted one would.

Energy (docs/autosnn.md §Energy): ``energy_lam`` multiplies the fitness by
``(E / E_avg) ** energy_lam`` and ``max_energy`` keeps architectures above that energy out
of the population (they are evaluated, recorded as over budget, and never ranked or used
as parents). ``warm_start=M`` draws M random architectures for round 1 and keeps the
``pool`` best by a zero-cost proxy score (``proxy``); the scores are saved with the state,
so a resumed run replays them.
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
Scores = tuple[float, ...]  # (acc, spikes) or (acc, spikes, energy)
Evaluate = Callable[[Arch], Scores]
Proxy = Callable[[Sequence[Arch]], Sequence[float]]  # architectures -> scores, higher better

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


def fitness(acc: float, spikes: float, n_avg: float, lam: float, *,
            energy: float | None = None, e_avg: float | None = None,
            energy_lam: float = 0.0) -> float:
    """Eq. 5.1: ``acc * (spikes / n_avg) ** lam``; λ < 0 favours fewer spikes.

    With ``energy_lam`` ≠ 0 the value is also multiplied by ``(energy / e_avg) **
    energy_lam`` (energy-aware fitness; ``energy_lam`` < 0 favours less energy).
    """
    if n_avg <= 0:
        raise NasforgeError(f"n_avg must be positive, got {n_avg}")
    if spikes < 0 or (spikes == 0 and lam < 0):
        raise NasforgeError(f"spike count {spikes} cannot be scored with lam={lam}")
    value = acc * (spikes / n_avg) ** lam
    if energy_lam == 0:
        return value
    if energy is None or e_avg is None or e_avg <= 0:
        raise NasforgeError(f"energy_lam={energy_lam} needs an energy and a positive E_avg "
                            f"(got energy={energy}, e_avg={e_avg})")
    if energy < 0 or (energy == 0 and energy_lam < 0):
        raise NasforgeError(f"energy {energy} cannot be scored with energy_lam={energy_lam}")
    return value * (energy / e_avg) ** energy_lam


def check_lam(lam: float) -> None:
    """Warn (not fail) on λ > 0: legal arithmetic, but it rewards spiking more."""
    if lam > 0:
        warnings.warn(f"lam={lam} > 0 rewards architectures that spike more; spike-aware "
                      "search expects lam <= 0 (thesis default -0.08, lam=0 ignores spikes)",
                      UserWarning, stacklevel=3)


def check_energy_options(energy_lam: float, max_energy: float | None) -> None:
    """A budget must be positive; a positive ``energy_lam`` rewards energy (warned)."""
    if max_energy is not None and not max_energy > 0:
        raise NasforgeError(f"the energy budget must be positive (µJ per image), got "
                            f"{max_energy}")
    if energy_lam > 0:
        warnings.warn(f"energy_lam={energy_lam} > 0 rewards architectures that use more "
                      "energy; energy-aware search expects energy_lam <= 0",
                      UserWarning, stacklevel=3)


@dataclass(frozen=True)
class HistoryRow:
    """One evaluated architecture, in evaluation order."""

    arch: Arch
    acc: float
    spikes: float
    fitness: float
    round: int
    energy: float | None = None  # µJ per image, when ``evaluate`` measures it

    def to_json(self) -> dict[str, Any]:
        row = {"arch": arch_to_text(self.arch), "acc": self.acc, "spikes": self.spikes,
               "fitness": self.fitness, "round": self.round}
        if self.energy is not None:
            row["energy"] = self.energy
        return row

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> HistoryRow:
        return cls(arch_from_text(r["arch"]), r["acc"], r["spikes"], r["fitness"], r["round"],
                   r.get("energy"))


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
    e_avg: float | None = None  # the energy normaliser (energy-aware fitness only)
    over_budget: list[HistoryRow] = field(default_factory=list)  # above ``max_energy``
    warm_scores: dict[str, float | None] | None = None  # round-1 proxy scores (warm start)

    @property
    def best(self) -> Arch:
        return self.top[0]

    @property
    def best_row(self) -> HistoryRow:
        return next(row for row in self.history if row.arch == self.best)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (architectures as ``"a,b,c"`` text)."""
        best = self.best_row
        out = {
            "method": self.method, "lam": self.lam, "n_avg": self.n_avg, "seed": self.seed,
            "best": arch_to_text(best.arch), "best_acc": best.acc,
            "best_spikes": best.spikes, "best_fitness": best.fitness,
            "top": [arch_to_text(a) for a in self.top],
            "evaluations": len(self.history), "evaluate_calls": self.evaluate_calls,
            "params": self.params,
            "history": [r.to_json() for r in self.history],
        }
        if best.energy is not None:
            out["best_energy"] = best.energy
        if self.e_avg is not None:
            out["e_avg"] = self.e_avg
        if "max_energy" in self.params:
            out["over_budget"] = [r.to_json() for r in self.over_budget]
        if self.warm_scores is not None:
            out["warm_scores"] = self.warm_scores
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchResult:
        history = [HistoryRow.from_json(r) for r in data["history"]]
        return cls(data["method"], data["lam"], data["n_avg"], data["seed"],
                   [arch_from_text(a) for a in data["top"]], history,
                   data.get("evaluate_calls", 0), data.get("params", {}), data.get("e_avg"),
                   [HistoryRow.from_json(r) for r in data.get("over_budget", [])],
                   data.get("warm_scores"))

    def write_history_csv(self, path: str | Path) -> Path:
        """One row per evaluation (index, round, arch, acc, spikes, fitness, and energy when
        measured), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        energy = any(r.energy is not None for r in self.history)
        writer.writerow(["index", "round", "arch", "acc", "spikes", "fitness"]
                        + (["energy"] if energy else []))
        for i, r in enumerate(self.history):
            writer.writerow([i, r.round, arch_to_text(r.arch), r.acc, r.spikes, r.fitness]
                            + ([r.energy] if energy else []))
        return atomic_write_text(path, buf.getvalue())


class EvalCache:
    """Calls ``evaluate`` once per architecture and counts the real calls."""

    def __init__(self, evaluate: Evaluate, store: dict[Arch, Scores] | None = None):
        self.evaluate = evaluate
        self.store: dict[Arch, Scores] = {} if store is None else store
        self.calls = 0

    def __call__(self, arch: Arch) -> Scores:
        if arch not in self.store:
            self.calls += 1
            scores = tuple(float(v) for v in self.evaluate(arch))
            if len(scores) not in (2, 3) or not all(math.isfinite(v) for v in scores):
                raise NasforgeError(f"evaluate({arch_to_text(arch)}) returned {scores}; "
                                    "expected finite (acc, spikes) or (acc, spikes, energy)")
            self.store[arch] = scores
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


def _load_state(path: Path, params: dict[str, Any]) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise NasforgeError(f"cannot read search state {path}: {err}") from err
    if state.get("format") != STATE_FORMAT:
        raise NasforgeError(f"{path} is not an evolutionary-search state file")
    if state.get("params") != params:
        raise NasforgeError(f"{path} belongs to a search with other parameters: "
                            f"{state.get('params')}")
    return state


def _saved_scores(row: dict[str, Any]) -> Scores:
    scores = (float(row["acc"]), float(row["spikes"]))
    return scores if row.get("energy") is None else (*scores, float(row["energy"]))


class _Scorer:
    """Turns evaluations into history rows: fitness (with the energy factor once E_avg is
    known) and the energy budget."""

    def __init__(self, n_avg: float, lam: float, energy_lam: float, max_energy: float | None,
                 e_avg: float | None) -> None:
        self.n_avg, self.lam, self.energy_lam = n_avg, lam, energy_lam
        self.max_energy, self.e_avg = max_energy, e_avg
        self.history: list[HistoryRow] = []
        self.over_budget: list[HistoryRow] = []

    @property
    def needs_energy(self) -> bool:
        return self.energy_lam != 0 or self.max_energy is not None

    def add(self, evaluated: list[tuple[Arch, Scores]], rnd: int) -> None:
        if self.needs_energy:
            missing = [a for a, s in evaluated if len(s) < 3]
            if missing:
                raise NasforgeError(f"evaluate({arch_to_text(missing[0])}) measured no "
                                    "energy; energy_lam and max_energy need (acc, spikes, "
                                    "energy)")
            if self.energy_lam != 0 and self.e_avg is None and evaluated:
                # E_avg scales every fitness alike: the first round's mean is the normaliser
                self.e_avg = sum(s[2] for _, s in evaluated) / len(evaluated)
        for arch, scores in evaluated:
            acc, spikes = scores[0], scores[1]
            energy = scores[2] if len(scores) > 2 else None
            value = fitness(acc, spikes, self.n_avg, self.lam, energy=energy, e_avg=self.e_avg,
                            energy_lam=self.energy_lam)
            row = HistoryRow(arch, acc, spikes, value, rnd, energy)
            over = self.max_energy is not None and energy is not None and \
                energy > self.max_energy
            (self.over_budget if over else self.history).append(row)

    def check_some_fit(self) -> None:
        if not self.history:
            low = min((r.energy for r in self.over_budget if r.energy is not None),
                      default=None)
            raise NasforgeError(f"no evaluated architecture fits the energy budget of "
                                f"{self.max_energy:g} µJ per image (the lowest measured: "
                                f"{low:g} µJ); raise --max-energy (with --force into the "
                                "same --out, the scored architectures are kept)")


def _warm_round(rng: random.Random, blocks: tuple[str, ...], length: int, pool: int,
                warm_start: int, taken: set[Arch], proxy: Proxy | None,
                saved: dict[str, float | None] | None) -> tuple[list[Arch], dict]:
    """Round 1 of a warm start: ``warm_start`` random architectures, the ``pool`` best by
    proxy score kept (best first; ties to the earlier draw); the others stay drawable."""
    drawn = sample_unique(rng, blocks, length, warm_start, taken)
    if saved is not None and all(arch_to_text(a) in saved for a in drawn):
        scores = {arch_to_text(a): saved[arch_to_text(a)] for a in drawn}
    else:
        if proxy is None:
            raise NasforgeError("warm_start needs a proxy to score the drawn architectures")
        values = [float(v) for v in proxy(drawn)]
        if len(values) != len(drawn):
            raise NasforgeError(f"the proxy scored {len(values)} of {len(drawn)} architectures")
        scores = {arch_to_text(a): (v if math.isfinite(v) else None)
                  for a, v in zip(drawn, values, strict=True)}

    def key(i: int) -> tuple[float, int]:
        value = scores[arch_to_text(drawn[i])]
        return (-value if value is not None else math.inf, i)

    keep = [drawn[i] for i in sorted(range(len(drawn)), key=key)[:pool]]
    taken.difference_update(set(drawn) - set(keep))
    return keep, scores


def evolutionary_search(
    evaluate: Evaluate, *, blocks: Sequence[str] = DEFAULT_BLOCKS,
    length: int = DEFAULT_LENGTH, lam: float = DEFAULT_LAM, n_avg: float, rounds: int = 10,
    pool: int = 20, top_k: int = 10, mutations: int = 10, crossovers: int = 10,
    mutation_prob: float = 0.2, seed: int = 0, progress: bool = False,
    state_path: str | Path | None = None,
    cache: dict[Arch, Scores] | None = None,
    energy_lam: float = 0.0, max_energy: float | None = None, e_avg: float | None = None,
    warm_start: int = 0, proxy: Proxy | None = None, proxy_name: str = "",
) -> SearchResult:
    """Algorithm 1: ``rounds`` rounds of ``pool`` new evaluations, elitist top-k.

    Round 1 evaluates ``pool`` random architectures; every later round evaluates
    ``mutations`` mutants and ``crossovers`` one-point crossovers of top-k parents, topped
    up with random architectures to ``pool``. No architecture is evaluated twice, so at
    most ``rounds * pool`` evaluations are spent (exactly that unless the space runs out).
    ``cache`` (arch -> scores) may be shared between searches to skip ``evaluate``
    calls; it does not change the search. ``state_path`` saves progress after every round
    (and on an exception) and resumes from it.

    Energy (``evaluate`` must then return ``(acc, spikes, energy)``): ``energy_lam`` ≠ 0
    multiplies the fitness by ``(energy / e_avg) ** energy_lam``, ``e_avg`` defaulting to
    the mean energy of round 1's architectures; ``max_energy`` keeps architectures above
    it out of the population (``SearchResult.over_budget``; a round without any parent is
    all random) and fails if none fits. ``warm_start`` > ``pool`` seeds round 1 with the
    ``pool`` best of ``warm_start`` random architectures by ``proxy`` (named
    ``proxy_name``).
    """
    check_lam(lam)
    check_energy_options(energy_lam, max_energy)
    blocks = _validate(blocks, length)
    if min(rounds, pool, top_k) < 1 or min(mutations, crossovers) < 0:
        raise NasforgeError("rounds, pool and top_k must be >= 1; mutations, crossovers >= 0")
    if mutations + crossovers > pool:
        raise NasforgeError(f"mutations + crossovers ({mutations + crossovers}) exceed the "
                            f"evaluation pool ({pool})")
    if not 0.0 <= mutation_prob <= 1.0:
        raise NasforgeError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
    if warm_start and warm_start <= pool:
        raise NasforgeError(f"warm_start ({warm_start}) must exceed the pool ({pool}): it "
                            "draws that many architectures and keeps the pool best (0 = off)")
    params = {"blocks": list(blocks), "length": length, "lam": float(lam),
              "n_avg": float(n_avg), "rounds": rounds, "pool": pool, "top_k": top_k,
              "mutations": mutations, "crossovers": crossovers,
              "mutation_prob": float(mutation_prob), "seed": seed}
    params.update(_energy_params(energy_lam, max_energy, e_avg))
    if warm_start:
        params.update(warm_start=warm_start, warm_proxy=proxy_name)
    evals = EvalCache(evaluate, cache)
    calls_before = evals.calls
    done_rounds, saved, warm_saved = 0, [], None
    replay: dict[Arch, Scores] = {}
    path = Path(state_path) if state_path is not None else None
    if path is not None and path.exists():
        state = _load_state(path, params)
        done_rounds, saved = int(state["round"]), list(state["evaluated"])
        warm_saved = state.get("warm_scores")
        replay = {arch_from_text(r["arch"]): _saved_scores(r) for r in saved}
        evals = EvalCache(evaluate, {**evals.store, **replay})

    rng = random.Random(seed)
    scorer = _Scorer(n_avg, lam, energy_lam, max_energy, e_avg)
    evaluated: list[tuple[Arch, Scores, int]] = []
    taken: set[Arch] = set()
    warm_scores: dict[str, float | None] | None = None

    def save(completed: int) -> None:
        if path is not None:
            rows = []
            for arch, scores, rnd in evaluated:
                row = {"arch": arch_to_text(arch), "acc": scores[0], "spikes": scores[1],
                       "round": rnd}
                if len(scores) > 2:
                    row["energy"] = scores[2]
                rows.append(row)
            state = {"format": STATE_FORMAT, "params": params, "round": completed,
                     "evaluated": rows}
            if warm_scores is not None:
                state["warm_scores"] = warm_scores
            atomic_write_json(path, state)

    completed = done_rounds
    bar = tqdm(total=rounds * pool, desc=f"evolution lam={lam}", unit="arch",
               disable=not progress)
    try:
        for rnd in range(1, rounds + 1):
            top = _ranked(scorer.history, top_k)
            if rnd == 1 and warm_start:
                candidates, warm_scores = _warm_round(rng, blocks, length, pool, warm_start,
                                                      taken, proxy, warm_saved)
            elif rnd == 1 or not top:  # no parent yet (all over the energy budget)
                candidates = sample_unique(rng, blocks, length, pool, taken)
            else:
                candidates = _offspring(
                    lambda top=top: mutate(rng.choice(top), rng, blocks, mutation_prob),
                    mutations, taken)
                candidates += _offspring(
                    lambda top=top: crossover(*_two_parents(top, rng), rng), crossovers, taken)
                candidates += sample_unique(rng, blocks, length, pool - len(candidates), taken)
            this_round: list[tuple[Arch, Scores]] = []
            for arch in candidates:
                if rnd <= done_rounds and arch not in replay:
                    raise NasforgeError(f"{path} does not replay: {arch_to_text(arch)} was "
                                        f"not evaluated in saved round {rnd}")
                scores = evals(arch)
                this_round.append((arch, scores))
                evaluated.append((arch, scores, rnd))
                bar.update()
            scorer.add(this_round, rnd)
            if rnd > done_rounds:
                completed = rnd
                save(rnd)
            if not candidates:
                break  # the whole space has been evaluated
    except BaseException:
        if len(evaluated) > len(saved):  # keep finished evaluations of the broken round
            save(completed)
        raise
    finally:
        bar.close()
    if cache is not None:
        cache.update(evals.store)
    if max_energy is not None:
        scorer.check_some_fit()
    return SearchResult("evolution", float(lam), float(n_avg), seed,
                        _ranked(scorer.history, top_k), scorer.history,
                        evals.calls - calls_before, params,
                        scorer.e_avg if energy_lam else None, scorer.over_budget, warm_scores)


def _energy_params(energy_lam: float, max_energy: float | None, e_avg: float | None
                   ) -> dict[str, float]:
    """The energy settings a search records (only those in use: older states stay valid)."""
    out = {}
    if energy_lam:
        out["energy_lam"] = float(energy_lam)
    if max_energy is not None:
        out["max_energy"] = float(max_energy)
    if e_avg is not None:
        out["e_avg"] = float(e_avg)
    return out


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
    cache: dict[Arch, Scores] | None = None,
    energy_lam: float = 0.0, max_energy: float | None = None, e_avg: float | None = None,
) -> SearchResult:
    """WS + random search (Table 5.7 ablation): ``budget`` unique random architectures
    (energy options as :func:`evolutionary_search`; E_avg: the mean over all of them)."""
    check_lam(lam)
    check_energy_options(energy_lam, max_energy)
    blocks = _validate(blocks, length)
    if budget < 1:
        raise NasforgeError(f"budget must be >= 1, got {budget}")
    params = {"blocks": list(blocks), "length": length, "lam": float(lam),
              "n_avg": float(n_avg), "budget": budget, "seed": seed,
              **_energy_params(energy_lam, max_energy, e_avg)}
    evals = EvalCache(evaluate, cache)
    rng = random.Random(seed)
    archs = sample_unique(rng, blocks, length, budget, set())
    scorer = _Scorer(n_avg, lam, energy_lam, max_energy, e_avg)
    scorer.add([(arch, evals(arch)) for arch in tqdm(
        archs, desc=f"random lam={lam}", unit="arch", disable=not progress)], 1)
    if max_energy is not None:
        scorer.check_some_fit()
    return SearchResult("random", float(lam), float(n_avg), seed,
                        _ranked(scorer.history, top_k), scorer.history, evals.calls, params,
                        scorer.e_avg if energy_lam else None, scorer.over_budget)


def search_many(
    evaluate: Evaluate, lams: Iterable[float], *, method: str = "evolution",
    n_avg: float, cache: dict[Arch, Scores] | None = None, **kwargs: Any,
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
