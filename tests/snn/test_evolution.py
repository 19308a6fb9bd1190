"""Spike-aware evolutionary search (Algorithm 1) on synthetic evaluations."""

import csv
import json
import random
from collections import Counter

import pytest

from nasforge.errors import NasforgeError
from nasforge.snn.evolution import (
    DEFAULT_BLOCKS,
    SearchResult,
    arch_from_text,
    arch_to_text,
    crossover,
    evolutionary_search,
    fitness,
    mutate,
    random_search,
    search_many,
)

BEST = ("SRB_k5",) * 5


class Counting:
    """Synthetic evaluate: acc = number of SRB_k5 blocks + tiny fixed noise; counts calls."""

    def __init__(self, fail_at: int | None = None, spikes=lambda arch: 1000.0):
        self.calls: Counter = Counter()
        self.fail_at = fail_at
        self.spikes = spikes

    def __call__(self, arch):
        if self.fail_at is not None and sum(self.calls.values()) + 1 == self.fail_at:
            raise RuntimeError("interrupted")
        self.calls[arch] += 1
        noise = 0.1 * random.Random(arch_to_text(arch)).random()
        return arch.count("SRB_k5") + noise, self.spikes(arch)


def skip_saves_spikes(arch):
    return 1000.0 * 0.1 ** arch.count("skip")


def test_fitness_matches_eq_5_1():
    assert fitness(0.9, 2000.0, 1000.0, -0.08) == pytest.approx(0.9 * 2 ** -0.08)
    assert fitness(0.9, 123.0, 1000.0, 0.0) == 0.9


def test_negative_lam_prefers_fewer_spikes_at_equal_accuracy():
    few, many = fitness(0.8, 900.0, 1000.0, -0.08), fitness(0.8, 1100.0, 1000.0, -0.08)
    assert few > many
    results = search_many(lambda a: (0.5, 1000.0 - 100.0 * a.count("skip")), [-0.08, 0.0],
                          n_avg=1000.0, seed=0)
    assert results[-0.08].best == ("skip",) * 5
    evals = results[-0.08].history
    assert {r.acc for r in evals} == {0.5}


def test_positive_lam_warns_but_runs():
    with pytest.warns(UserWarning, match="lam=0.1"):
        result = evolutionary_search(Counting(), n_avg=1000.0, lam=0.1, rounds=2, seed=0)
    assert len(result.history) == 40
    with pytest.warns(UserWarning):
        search_many(Counting(), [0.2], n_avg=1000.0, rounds=1, seed=0)


def test_mutation_changes_blocks_only_to_different_blocks():
    rng = random.Random(0)
    parent = ("SCB_k3", "SRB_k5", "skip", "SRB_k3", "SCB_k5")
    changed = 0
    for _ in range(2000):
        child = mutate(parent, rng, DEFAULT_BLOCKS, 0.2)
        assert len(child) == 5 and set(child) <= set(DEFAULT_BLOCKS)
        changed += sum(c != p for c, p in zip(child, parent, strict=True))
    assert changed / (2000 * 5) == pytest.approx(0.2, abs=0.02)  # every draw moves a block
    assert mutate(parent, rng, DEFAULT_BLOCKS, 1.0) != parent
    assert all(c != p for c, p in zip(mutate(parent, rng, DEFAULT_BLOCKS, 1.0), parent,
                                      strict=True))


def test_crossover_is_one_point_and_stays_in_the_space():
    rng = random.Random(1)
    a, b = ("SCB_k3",) * 5, ("skip",) * 5
    cuts = set()
    for _ in range(500):
        child = crossover(a, b, rng)
        assert len(child) == 5 and set(child) <= set(DEFAULT_BLOCKS)
        cut = child.count("SCB_k3")
        assert child == a[:cut] + b[cut:]
        cuts.add(cut)
    assert cuts == {1, 2, 3, 4}


def test_search_children_stay_in_the_block_set():
    result = evolutionary_search(Counting(), n_avg=1000.0, seed=3)
    for row in result.history:
        assert len(row.arch) == 5 and set(row.arch) <= set(DEFAULT_BLOCKS)


def test_never_evaluates_twice_and_respects_the_budget():
    ev = Counting()
    result = evolutionary_search(ev, n_avg=1000.0, seed=0)
    assert max(ev.calls.values()) == 1
    assert len(result.history) == sum(ev.calls.values()) == 200 == result.evaluate_calls
    assert len({r.arch for r in result.history}) == 200
    assert Counter(r.round for r in result.history) == {r: 20 for r in range(1, 11)}


def test_small_space_runs_out_without_repeats():
    ev = Counting()
    result = evolutionary_search(ev, blocks=("SRB_k5", "skip"), length=3, n_avg=1.0,
                                 rounds=5, pool=4, top_k=2, mutations=2, crossovers=2,
                                 seed=0)
    assert len(result.history) == 8 and max(ev.calls.values()) == 1
    assert result.best == ("SRB_k5",) * 3


@pytest.mark.parametrize("seed", range(5))
def test_finds_the_best_architecture_within_budget(seed):
    assert evolutionary_search(Counting(), n_avg=1000.0, seed=seed).best == BEST


def test_random_search_baseline():
    ev = Counting()
    result = random_search(ev, n_avg=1000.0, budget=200, seed=0)
    assert len(result.history) == 200 and max(ev.calls.values()) == 1
    best = max(result.history, key=lambda r: r.fitness)
    assert result.best == best.arch and result.method == "random"


def test_same_seed_same_result():
    first = evolutionary_search(Counting(), n_avg=1000.0, seed=7).to_json()
    assert evolutionary_search(Counting(), n_avg=1000.0, seed=7).to_json() == first
    assert evolutionary_search(Counting(), n_avg=1000.0, seed=8).to_json() != first


def test_search_many_shares_evaluations_across_lams():
    ev = Counting(spikes=skip_saves_spikes)
    lams = [0.0, -0.08, -0.24]
    shared = {}
    results = search_many(ev, lams, n_avg=1000.0, seed=0, cache=shared)
    assert len(shared) == sum(ev.calls.values())
    assert max(ev.calls.values()) == 1
    assert sum(r.evaluate_calls for r in results.values()) == sum(ev.calls.values())
    assert sum(ev.calls.values()) < 600  # shared round-1 pools at least
    for lam in lams:
        alone = evolutionary_search(Counting(spikes=skip_saves_spikes), n_avg=1000.0,
                                    lam=lam, seed=0)
        assert results[lam].history == alone.history and results[lam].top == alone.top
    assert results[0.0].best == BEST
    assert results[-0.24].best.count("skip") >= 2  # 3 skips + 2 SRB_k5 is optimal here
    again = search_many(ev, lams, method="random", n_avg=1000.0, budget=50, seed=0,
                        cache=shared)
    assert max(ev.calls.values()) == 1 and set(again) == set(lams)


@pytest.mark.parametrize("fail_at", [1, 25, 70, 200])
def test_resume_after_interruption_gives_identical_result(tmp_path, fail_at):
    reference = evolutionary_search(Counting(), n_avg=1000.0, seed=5)
    state = tmp_path / "state.json"
    broken = Counting(fail_at=fail_at)
    with pytest.raises(RuntimeError, match="interrupted"):
        evolutionary_search(broken, n_avg=1000.0, seed=5, state_path=state)
    resumed_ev = Counting()
    resumed = evolutionary_search(resumed_ev, n_avg=1000.0, seed=5, state_path=state)
    assert resumed.to_json() | {"evaluate_calls": 0} == reference.to_json() | {
        "evaluate_calls": 0}
    assert sum(broken.calls.values()) == fail_at - 1
    assert set(broken.calls).isdisjoint(resumed_ev.calls)  # nothing evaluated twice
    assert sum(broken.calls.values()) + sum(resumed_ev.calls.values()) == 200
    saved = json.loads(state.read_text())
    assert saved["round"] == 10 and len(saved["evaluated"]) == 200
    finished = Counting()
    evolutionary_search(finished, n_avg=1000.0, seed=5, state_path=state)
    assert not finished.calls


def test_state_of_another_search_is_refused(tmp_path):
    state = tmp_path / "state.json"
    evolutionary_search(Counting(), n_avg=1000.0, seed=5, rounds=2, state_path=state)
    with pytest.raises(NasforgeError, match="other parameters"):
        evolutionary_search(Counting(), n_avg=1000.0, seed=6, rounds=2, state_path=state)


def test_result_is_plain_data(tmp_path):
    result = evolutionary_search(Counting(), n_avg=1000.0, seed=0, rounds=2)
    data = json.loads(json.dumps(result.to_json()))
    assert data["best"] == arch_to_text(result.best)
    assert arch_from_text(data["best"]) == result.best
    assert data["evaluations"] == len(data["history"]) == 40
    assert SearchResult.from_json(data).to_json() == data
    rows = list(csv.DictReader(result.write_history_csv(tmp_path / "h.csv").open()))
    assert len(rows) == 40 and rows[0]["arch"] == arch_to_text(result.history[0].arch)
    assert float(rows[0]["fitness"]) == result.history[0].fitness


def test_bad_parameters_are_refused():
    with pytest.raises(NasforgeError, match="exceed"):
        evolutionary_search(Counting(), n_avg=1.0, pool=10, mutations=10, crossovers=10)
    with pytest.raises(NasforgeError, match="distinct"):
        evolutionary_search(Counting(), n_avg=1.0, blocks=("skip", "skip"))
    with pytest.raises(NasforgeError, match="returned"):
        evolutionary_search(lambda a: (float("nan"), 1.0), n_avg=1.0)


def test_tampered_state_does_not_replay(tmp_path):
    state = tmp_path / "state.json"
    evolutionary_search(Counting(), n_avg=1000.0, seed=5, rounds=2, state_path=state)
    data = json.loads(state.read_text())
    data["evaluated"][0]["arch"] = "skip,skip,skip,skip,skip,skip"
    state.write_text(json.dumps(data))
    with pytest.raises(NasforgeError, match="does not replay"):
        evolutionary_search(Counting(), n_avg=1000.0, seed=5, rounds=2, state_path=state)
