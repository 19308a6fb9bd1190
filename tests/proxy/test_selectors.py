import itertools
import math
from fractions import Fraction as F

import numpy as np
import pytest
import torch

from nasforge.data.subset import read_index_file
from nasforge.errors import NasforgeError
from nasforge.proxy.histogram import entropy_histogram
from nasforge.proxy.selectors import (
    P_WEIGHTS,
    SELECTORS,
    class_quotas,
    example_probabilities,
    greedy_k_center,
    k_center_radius,
    resolve_size,
    sample_without_replacement,
    select,
    select_to_file,
)

N = 60
GEN = torch.Generator().manual_seed(7)
ENTROPY = 10 ** (torch.randn(N, generator=GEN, dtype=torch.float64) - 1)
LABELS = torch.arange(N) % 3
FEATURES = torch.randn(N, 4, generator=GEN)
FORGETTING = torch.randint(0, 6, (N,), generator=GEN)
INPUTS = dict(entropy=ENTROPY, labels=LABELS, features=FEATURES, forgetting=FORGETTING)
STOCHASTIC = ["random", "p1", "p2", "p3", "easy-middle", "k-center"]

# Hand-made histogram, width 1 on log10 entropy: bins [0,1) x3, [1,2) x1, [2,3) empty, [3,4] x2.
HAND = 10 ** torch.tensor([0.1, 0.2, 0.3, 1.5, 3.1, 3.5], dtype=torch.float64)
HAND_P = {
    # W1 = (3 - c + 1) / 6 -> 1/6, 3/6, 2/6; P = W1 / c per example.
    "p1": [F(1, 18)] * 3 + [F(1, 2)] + [F(1, 6)] * 2,
    # W2 = 1/3 per non-empty bin.
    "p2": [F(1, 9)] * 3 + [F(1, 3)] + [F(1, 6)] * 2,
    # W3 = (1/c) / (11/6) -> 2/11, 6/11, 3/11.
    "p3": [F(2, 33)] * 3 + [F(6, 11)] + [F(3, 22)] * 2,
}


@pytest.mark.parametrize("name", ["p1", "p2", "p3"])
def test_probabilities_match_the_equations_on_a_hand_made_histogram(name):
    hist = entropy_histogram(HAND, 1.0)
    assert hist.counts.tolist() == [3, 1, 0, 2]
    probs = example_probabilities(hist, P_WEIGHTS[name])
    assert probs.tolist() == pytest.approx([float(p) for p in HAND_P[name]], abs=1e-12)


def formula_probabilities(name, counts, bin_of):
    """Eqs. 3.3-3.6 written out with plain Python over the non-empty bins."""
    filled = [c for c in counts if c > 0]
    top = max(filled)
    if name == "p1":
        weight = {c: (top - c + 1) / sum(top - h + 1 for h in filled) for c in filled}
    elif name == "p2":
        weight = {c: 1 / len(filled) for c in filled}
    else:
        weight = {c: (1 / c) / sum(1 / h for h in filled) for c in filled}
    raw = [weight[counts[b]] / counts[b] for b in bin_of]
    return [r / sum(raw) for r in raw]


@pytest.mark.parametrize("name", ["p1", "p2", "p3"])
def test_probabilities_match_the_equations_on_random_entropies(name):
    hist = entropy_histogram(ENTROPY, 0.25)
    expected = formula_probabilities(name, hist.counts.tolist(), hist.bin_of.tolist())
    got = example_probabilities(hist, P_WEIGHTS[name])
    assert got.tolist() == pytest.approx(expected, rel=1e-12)
    assert float(got.sum()) == pytest.approx(1.0)


def test_p1_sampling_frequencies_follow_the_probabilities():
    p = [float(x) for x in HAND_P["p1"]]
    first = torch.zeros(len(HAND))
    for seed in range(1000):
        first[select("p1", 1, entropy=HAND, seed=seed, bin_width=1.0)] += 1
    assert (first / 1000).tolist() == pytest.approx(p, abs=0.05)
    # Two draws without replacement include example i with probability
    # p_i + sum_j p_j p_i / (1 - p_j).
    probs = example_probabilities(entropy_histogram(HAND, 1.0), P_WEIGHTS["p1"])
    pairs = torch.zeros(len(HAND))
    for seed in range(3000):
        pairs[sample_without_replacement(probs, 2, torch.Generator().manual_seed(seed))] += 1
    incl = [pi + sum(pj * pi / (1 - pj) for j, pj in enumerate(p) if j != i)
            for i, pi in enumerate(p)]
    assert (pairs / 3000).tolist() == pytest.approx(incl, abs=0.04)


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("method", SELECTORS.names())
def test_every_method_returns_k_unique_sorted_indices(method, balanced):
    for k in (1, 7, 30, N):
        chosen = select(method, k, seed=3, bin_width=0.25, class_balanced=balanced, **INPUTS)
        assert chosen.dtype == torch.int64 and chosen.numel() == k
        assert torch.equal(chosen, torch.unique(chosen))  # sorted and distinct
        assert int(chosen.min()) >= 0 and int(chosen.max()) < N


@pytest.mark.parametrize("method", STOCHASTIC)
def test_seed_fixes_the_subset(method):
    one = select(method, 15, seed=1, **INPUTS)
    assert torch.equal(one, select(method, 15, seed=1, **INPUTS))
    assert not torch.equal(one, select(method, 15, seed=2, **INPUTS))


def test_deterministic_methods_ignore_the_seed():
    for method in ("top-k", "bottom-k", "beta", "forgetting"):
        assert torch.equal(select(method, 9, seed=1, **INPUTS), select(method, 9, seed=5, **INPUTS))


def test_top_bottom_and_beta_take_exactly_the_tails():
    entropy = torch.randperm(100, generator=torch.Generator().manual_seed(0)).double() + 1
    rank = entropy.argsort()  # distinct values: ranks are unambiguous
    assert set(select("top-k", 10, entropy=entropy).tolist()) == set(rank[-10:].tolist())
    assert set(select("bottom-k", 10, entropy=entropy).tolist()) == set(rank[:10].tolist())
    for beta, k, easy in [(0.3, 10, 3), (0.9, 20, 18), (0.5, 5, 3), (0.0, 8, 0), (1.0, 8, 8)]:
        chosen = set(select("beta", k, entropy=entropy, beta=beta).tolist())
        expected = set(rank[:easy].tolist()) | set(rank[len(rank) - (k - easy):].tolist())
        assert chosen == expected, (beta, k)


def test_ties_go_to_the_lower_index():
    flat = torch.ones(10, dtype=torch.float64)
    for method in ("top-k", "bottom-k", "beta"):
        assert select(method, 4, entropy=flat).tolist() == [0, 1, 2, 3]
    counts = torch.tensor([0, 2, 1, 2, 0, 2])
    assert select("forgetting", 2, entropy=flat[:6], forgetting=counts).tolist() == [1, 3]


def test_easy_middle_is_bottom_beta_k_plus_random_rest():
    entropy = torch.arange(1, 101, dtype=torch.float64)  # index i has rank i
    seen = set()
    for seed in range(5):
        chosen = select("easy-middle", 10, entropy=entropy, beta=0.8, seed=seed).tolist()
        assert chosen[:8] == list(range(8)) and all(i >= 8 for i in chosen[8:])
        seen.update(chosen[8:])
    assert len(seen) > 2


def test_missing_inputs_are_user_errors():
    with pytest.raises(NasforgeError, match="--forgetting"):
        select("forgetting", 3, entropy=ENTROPY)
    with pytest.raises(NasforgeError, match="--features"):
        select("k-center", 3, entropy=ENTROPY)
    with pytest.raises(NasforgeError, match="labels"):
        select("random", 3, entropy=ENTROPY, class_balanced=True)
    with pytest.raises(NasforgeError, match="unknown selection method 'p4'"):
        select("p4", 3, entropy=ENTROPY)
    with pytest.raises(NasforgeError, match="beta"):
        select("beta", 3, entropy=ENTROPY, beta=1.5)
    with pytest.raises(NasforgeError, match="shape"):
        select("k-center", 3, entropy=ENTROPY, features=FEATURES[:5])
    with pytest.raises(NasforgeError, match="example 2"):
        select("random", 1, entropy=torch.tensor([1.0, 1.0, math.nan]))


def brute_radius(points, centres):
    return max(min(math.dist(p, points[c]) for c in centres) for p in points)


def brute_greedy(points, first, k):
    centres = [first]
    while len(centres) < k:
        far = [min(math.dist(p, points[c]) for c in centres) for p in points]
        for c in centres:
            far[c] = -1.0
        centres.append(max(range(len(points)), key=lambda i: (far[i], -i)))
    return centres


def test_greedy_k_center_matches_brute_force():
    # Three tight clusters far apart: greedy must pick one centre per cluster.
    points = [(0.0, 0.0), (0.3, 0.1), (0.1, 0.4), (10.0, 0.0), (10.2, 0.3), (0.0, 10.0),
              (0.4, 10.1), (0.2, 9.7)]
    features = torch.tensor(points, dtype=torch.float64)
    for seed in range(4):
        order = greedy_k_center(features, 3, torch.Generator().manual_seed(seed)).tolist()
        assert order == brute_greedy(points, order[0], 3)
        assert sorted(i // 3 if i < 3 else (1 if i < 5 else 2) for i in order) == [0, 1, 2]
        radius = k_center_radius(features, torch.tensor(order))
        assert radius == pytest.approx(brute_radius(points, order))
        optimum = min(brute_radius(points, c) for c in itertools.combinations(range(8), 3))
        assert radius <= 2 * optimum + 1e-12  # the greedy 2-approximation guarantee


def test_greedy_k_center_matches_brute_force_on_random_points():
    features = torch.randn(40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points = [tuple(p) for p in features.tolist()]
    order = greedy_k_center(features, 12, torch.Generator().manual_seed(0)).tolist()
    assert order == brute_greedy(points, order[0], 12)


def test_greedy_k_center_handles_duplicate_points():
    chosen = select("k-center", 5, entropy=torch.ones(5), features=torch.zeros(5, 2))
    assert chosen.tolist() == [0, 1, 2, 3, 4]


def test_class_quotas_use_largest_remainders():
    assert class_quotas(torch.tensor([50, 30, 20]), 10).tolist() == [5, 3, 2]
    assert class_quotas(torch.tensor([50, 30, 20]), 7).tolist() == [4, 2, 1]
    assert class_quotas(torch.tensor([1, 1, 1]), 2).tolist() == [1, 1, 0]
    assert class_quotas(torch.tensor([5, 5]), 10).tolist() == [5, 5]


@pytest.mark.parametrize("method", SELECTORS.names())
def test_class_balanced_counts_follow_class_sizes(method):
    labels = torch.tensor([0] * 30 + [1] * 18 + [2] * 12)[torch.randperm(N, generator=GEN)]
    inputs = {**INPUTS, "labels": labels}
    chosen = select(method, 10, seed=0, class_balanced=True, **inputs)
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [5, 3, 2]


def test_class_balanced_with_one_class_equals_plain_selection():
    one = torch.zeros(N, dtype=torch.int64)
    for method in ("p1", "random", "beta"):
        plain = select(method, 12, entropy=ENTROPY, labels=one, seed=4)
        balanced = select(method, 12, entropy=ENTROPY, labels=one, seed=4, class_balanced=True)
        assert torch.equal(plain, balanced)


def test_resolve_size():
    assert resolve_size(10, 50) == 10
    assert resolve_size(7.0, 50) == 7
    assert resolve_size("7", 50) == 7
    assert resolve_size(0.1, 50) == 5
    assert resolve_size("0.1", 50) == 5
    assert resolve_size("10%", 50) == 5
    assert resolve_size(1, 50) == 1 and resolve_size(50, 50) == 50
    for bad in (0, -3, 51, 1.5, 0.001, "abc", True, math.nan, "150%", None):
        with pytest.raises(NasforgeError, match=r"1\.\.50") as info:
            resolve_size(bad, 50)
        assert repr(bad) in str(info.value)


def test_select_to_file_writes_a_valid_index_file(tmp_path):
    # An entropy list covering dataset indices 10..29 (a subset), features for 30 examples.
    rows = [f"{10 + i}\t{float(h)!r}\t{i % 2}" for i, h in enumerate(ENTROPY[:20].tolist())]
    entropy_path = tmp_path / "entropy.tsv"
    entropy_path.write_text("\n".join(rows) + "\n")
    features_path = tmp_path / "features.npy"
    np.save(features_path, np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32))
    for method, extra in [("p1", {}), ("k-center", {"features_path": features_path}),
                          ("beta", {"class_balanced": True})]:
        out = tmp_path / f"{method}.txt"
        summary = select_to_file(entropy_path, method, 0.25, out=out, seed=2, dataset="svhn",
                                 **extra)
        indices = read_index_file(out, 30)
        assert indices.numel() == summary["k"] == 5 and summary["n"] == 20
        assert torch.equal(indices, indices.sort().values) and int(indices.min()) >= 10
        assert summary["method"] == method and summary["seed"] == 2
        assert out.read_text().startswith(f"# nasforge select method={method}")
    assert summary["beta"] == 0.5
    again = select_to_file(entropy_path, "p1", 5, out=tmp_path / "again.txt", seed=2,
                           dataset="svhn")
    assert again["bin_width"] == 0.2
    assert (tmp_path / "again.txt").read_text().splitlines()[1:] == \
        (tmp_path / "p1.txt").read_text().splitlines()[1:]
    with pytest.raises(NasforgeError, match="--features"):
        select_to_file(entropy_path, "k-center", 5, out=tmp_path / "x.txt")
    with pytest.raises(NasforgeError, match="unknown selection method"):
        select_to_file(tmp_path / "missing.tsv", "nope", 5, out=tmp_path / "x.txt")
