"""The random baselines: ``--algo random`` and ``--algo random-ws`` (issue 19, item 3)."""

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
import torch
from scipy.stats import chisquare

from conftest import TINY_SEARCH, assert_resume_matches, run_cli
from nasforge.benchmarks.tabular import TabularBenchmark
from nasforge.config import SearchConfig, load_config
from nasforge.search import ONESHOT_STRATEGIES, STRATEGIES
from nasforge.search.loop import run_search
from nasforge.search.random_search import CellSampler, draw_cells
from nasforge.spaces.darts.genotype import cell_edges, parse_genotype
from nasforge.spaces.darts.spaces import SPACES
from nasforge.spaces.nb101.space import NB101_OPS, ONESHOT_SPACES

TABLE = ["search.algo=random", "search.space=tabular-digits", "search.nodes=2",
         "search.bench=tabular-digits", "search.samples=12", "run.progress=false"]


def test_both_baselines_are_registered_in_every_kind_of_space():
    for name in ("random", "random-ws"):
        assert name in STRATEGIES.names() and name in ONESHOT_STRATEGIES.names()


# --------------------------------------------------------------------------- the sampler


def chi2_p(counts: Counter, categories: list) -> float:
    """p-value of a chi-square test that ``counts`` is uniform over ``categories``."""
    assert set(counts) <= set(categories)
    if len(categories) < 2:
        return 1.0
    return float(chisquare([counts.get(c, 0) for c in categories]).pvalue)


def test_darts_sampler_is_uniform_over_input_pairs_and_ops():
    """2,000 normal cells of the DARTS space (4 nodes): every node's input pair and every
    chosen edge's op pass a chi-square test of uniformity (p > 0.001 each; 1 in 1,000 per
    test to fail by chance: the draws are seeded, so the outcome is fixed)."""
    sampler = CellSampler(SearchConfig(), None)
    prims = sampler.primitives
    ops = [k for k, p in enumerate(prims) if p != "none"]
    edges = cell_edges(4)
    rng = random.Random(0)
    pairs = {j: Counter() for j in range(2, 6)}
    op_counts = Counter()
    for _ in range(2000):
        w = sampler.sample(rng)["normal"]
        assert int(w.sum()) == 8 and float(w[:, prims.index("none")].sum()) == 0
        for j in range(2, 6):
            chosen = tuple(i for e, (i, jj) in enumerate(edges) if jj == j and w[e].any())
            pairs[j][chosen] += 1
        op_counts.update(int(k) for k in w.nonzero()[:, 1])
    for j, counts in pairs.items():
        assert len(counts) == math.comb(j, 2)
        assert chi2_p(counts, list(combinations(range(j), 2))) > 1e-3
    assert chi2_p(op_counts, ops) > 1e-3


def test_per_edge_op_sets_are_respected_and_uniform():
    """S1 holds 2 ops per edge: only those are drawn, each about half the time."""
    cfg = SearchConfig(space="s1")
    sampler = CellSampler(cfg, None)
    mask = SPACES.get("s1").op_mask(4)
    rng = random.Random(1)
    per_edge = Counter()
    for _ in range(2000):
        for c, w in sampler.sample(rng).items():
            assert not (w.bool() & ~mask[c]).any()
            per_edge.update((c, int(e), int(k)) for e, k in w.nonzero())
    for c in ("normal", "reduce"):
        for e in range(14):
            allowed = [int(k) for k in mask[c][e].nonzero()]
            if len(allowed) > 1:
                assert chi2_p(Counter({k: per_edge[(c, e, k)] for k in allowed}),
                              allowed) > 1e-3


def test_topk_sampler_draws_valid_extcells_with_k_ops():
    cfg = SearchConfig(rule="topk", k=10)
    sampler = CellSampler(cfg, None)
    rng = random.Random(2)
    op_counts = Counter()
    for _ in range(300):
        w = sampler.sample(rng)
        assert int(sum(v.sum() for v in w.values())) == 10
        g = sampler.genotype(w)
        assert len(g.normal.ops) + len(g.reduce.ops) == 10
        op_counts.update(op for op, _, _ in g.normal.ops + g.reduce.ops)
    assert chi2_p(op_counts, [p for p in sampler.primitives if p != "none"]) > 1e-3


@pytest.mark.parametrize("space", ["1shot1-ss1", "1shot1-ss2", "1shot1-ss3"])
def test_oneshot_sampler_is_uniform_over_ops_and_parents(space):
    sp = ONESHOT_SPACES.get(space)
    sampler = CellSampler(SearchConfig(space=space), sp)
    rng = random.Random(3)
    ops, parents, outputs = Counter(), {v: Counter() for v in sp.choice_vertices()}, Counter()
    for _ in range(3000):
        arch = sampler.sample_arch(rng)
        sp.validate(arch)
        ops.update(arch.ops)
        for v in sp.choice_vertices():
            parents[v][arch.parents[v - 1]] += 1
        outputs[arch.output] += 1
        w = sampler.weights_of(arch)
        assert sp.discretize(w) == arch  # the weights read back as the same cell
    assert chi2_p(ops, list(NB101_OPS)) > 1e-3
    for v, counts in parents.items():
        assert chi2_p(counts, list(combinations(range(v), sp.parents[v - 1]))) > 1e-3
    assert chi2_p(outputs, list(combinations(range(sp.blocks + 1), sp.output_parents))) > 1e-3


def test_the_drawn_cells_depend_only_on_the_seed():
    sampler = CellSampler(SearchConfig(), None)
    a, b, c = (draw_cells(sampler, 5, seed) for seed in (0, 0, 1))
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert any(not torch.equal(x["normal"], y["normal"]) for x, y in zip(a, c, strict=True))


# --------------------------------------------------------------------------- random


def test_random_with_a_table_returns_the_best_tabulated_validation_accuracy(tmp_path):
    out = tmp_path / "r"
    results = run_search(load_config(None, TABLE), out)
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(12))
    bench = TabularBenchmark.load("tabular-digits")
    for r in rows:  # each score is the table's mean validation accuracy of that cell
        assert r["val_acc"] == bench.query(parse_genotype(r["genotype"]))["val_acc_mean"]
    best = max(rows, key=lambda r: (r["val_acc"], -r["index"]))
    assert results["genotype"] == best["genotype"] and results["val_acc"] == best["val_acc"]
    assert (out / "genotype.txt").read_text().strip() == best["genotype"]
    # every written cell carries the table's fixed reduction cell: what the table trained
    from nasforge.benchmarks.tabular import fixed_reduction_cell

    assert {parse_genotype(r["genotype"]).reduce for r in rows} == {fixed_reduction_cell()}
    # the sampled keys are spread over the table (12 draws, at least 10 distinct cells)
    assert len({r["key"] for r in rows}) >= 10
    # same seed, same cells; another seed, other cells
    again = run_search(load_config(None, TABLE), tmp_path / "again")
    assert again["genotype"] == results["genotype"]
    other = [json.loads(line) for line in (run_search(
        load_config(None, [*TABLE, "run.seed=1"]), tmp_path / "other") and
        (tmp_path / "other" / "samples.jsonl").read_text().splitlines())]
    assert [r["key"] for r in other] != [r["key"] for r in rows]


def test_random_killed_mid_way_resumes_to_the_same_result(tmp_path):
    sets = [f"--set={s}" for s in TABLE]
    full = run_cli("search", "--algo", "random", "--dataset", "digits", "--out",
                   str(tmp_path / "full"), *sets)
    assert full.returncode == 0, full.stderr
    env = {**os.environ, "NASFORGE_TEST_KILL_AT": "random-sample:5", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--algo",
                             "random", "--dataset", "digits", "--out",
                             str(tmp_path / "part"), *sets], capture_output=True, text=True,
                            env=env, timeout=600)
    assert killed.returncode != 0
    lines = (tmp_path / "part" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 5 and not (tmp_path / "part" / "results.json").exists()
    resumed = run_cli("search", "--resume", str(tmp_path / "part"))
    assert resumed.returncode == 0, resumed.stderr

    def strip(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (tmp_path / run / "samples.jsonl").read_text().splitlines()]

    assert strip("part") == strip("full")
    a, b = (json.loads((tmp_path / r / "results.json").read_text()) for r in ("part", "full"))
    assert a["genotype"] == b["genotype"] and a["val_acc"] == b["val_acc"]


def test_random_trains_each_cell_from_the_cli_and_is_deterministic(tmp_path, small_proxy,
                                                                   one_thread):
    """Training path (no table) on 64 digits: 2 cells × 1 epoch, through the CLI; a second
    in-process run with the same seed scores the cells identically."""
    sets = [*TINY_SEARCH, "search.epochs=1", "search.samples=2", f"data.proxy={small_proxy}"]
    r = run_cli("search", "--algo", "random", "--dataset", "digits", "--out",
                str(tmp_path / "cli"), *[f"--set={s}" for s in sets])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "cli" / "samples.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 2 and all(0.0 <= row["val_acc"] <= 100.0 for row in rows)
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["scored_by"] == "training"
    assert results["val_acc"] == max(row["val_acc"] for row in rows)
    again = run_search(load_config(None, [*sets, "search.algo=random"]), tmp_path / "again")
    rows2 = [json.loads(line) for line in (tmp_path / "again" / "samples.jsonl").read_text()
             .splitlines()]
    assert [(x["genotype"], x["val_acc"]) for x in rows] == \
        [(x["genotype"], x["val_acc"]) for x in rows2]
    assert again["genotype"] == results["genotype"]


def test_random_selects_its_proxy_subset_first_and_trains_on_it(tmp_path, one_thread):
    """--proxy-method with cells trained from scratch: the subset is selected into the run
    (proxy.json, index file) and every cell trains on it alone, as every other search does."""
    sets = [s for s in TINY_SEARCH if not s.startswith("data.proxy")]
    sets += ["search.epochs=1", "search.samples=2"]
    r = run_cli("search", "--algo", "random", "--dataset", "digits", "--proxy-method",
                "random", "--proxy-size", "96", "--out", str(tmp_path / "p"),
                *[f"--set={s}" for s in sets])
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "p" / "results.json").read_text())
    cost = results["cost"]
    assert cost["train_examples"] == 96 and cost["selection"]["method"] == "random"
    index = [int(x) for x in Path(cost["proxy"]).read_text().split()]
    assert len(set(index)) == 96 and Path(cost["proxy"]).parent == tmp_path / "p"
    # each cell saw its weight half of those 96 for one epoch, then the other half once
    rows = [json.loads(line) for line in (tmp_path / "p" / "samples.jsonl").read_text()
            .splitlines()]
    assert [row["examples_seen"] for row in rows] == [96, 96]


def test_random_with_a_table_says_the_proxy_subset_is_unused(tmp_path):
    r = run_cli("search", "--algo", "random", "--dataset", "digits", "--proxy-method",
                "random", "--out", str(tmp_path / "t"), *[f"--set={s}" for s in TABLE])
    assert r.returncode == 0, r.stderr
    assert "warning: random search scores its cells by a table" in r.stderr
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    assert results["cost"]["proxy"] is None and results["cost"]["train_examples"] == 0
    assert not (tmp_path / "t" / "proxy.json").exists()


def test_random_refuses_a_table_of_another_space(tmp_path):
    r = run_cli("search", "--algo", "random", "--dataset", "digits", "--out",
                str(tmp_path / "x"), "--set", "search.bench=tabular-digits")
    assert r.returncode == 2 and "tabular-digits space" in r.stderr
    assert not (tmp_path / "x").exists()
    for algo in ("random", "random-ws"):  # no space of cells to draw for the threshold rule
        r = run_cli("search", "--algo", algo, "--dataset", "digits", "--out",
                    str(tmp_path / algo), "--derive", "threshold", "--threshold", "0.5")
        assert r.returncode == 2 and "argmax or topk" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / algo).exists()


# --------------------------------------------------------------------------- random-ws


def _ranked(run_dir):
    from nasforge.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoint.pt")["strategy"]


@pytest.mark.parametrize("space,extra", [("darts", []), ("s2", []), ("1shot1-ss1", []),
                                         ("darts", ["search.rule=topk", "search.k=6"])],
                         ids=["darts", "s2", "1shot1-ss1", "extcell-topk6"])
def test_random_ws_ranks_the_candidates_and_returns_the_best(tmp_path, small_proxy,
                                                             one_thread, space, extra):
    """Every kind of cell space: the derived cell is the best-scored of the candidates."""
    sets = [*TINY_SEARCH, "search.epochs=1", "search.samples=4", f"data.proxy={small_proxy}",
            "search.algo=random-ws", f"search.space={space}", *extra]
    out = tmp_path / "ws"
    results = run_search(load_config(None, sets), out)
    state = _ranked(out)
    scores = state["scores"]
    assert torch.isfinite(scores).all() and len(scores) == 4
    best = int(state["best"])
    assert float(scores[best]) == float(scores.max())
    assert results["val_acc"] == pytest.approx(float(scores[best]))  # eval with that cell
    # the derived genotype is the best candidate's cell
    cfg = load_config(None, sets)
    oneshot = ONESHOT_SPACES.get(space) if space in ONESHOT_SPACES else None
    sampler = CellSampler(cfg.search, oneshot)
    seed = state["_extra_state"]["seed"]
    cells = draw_cells(sampler, 4, seed)
    assert results["genotype"] == sampler.text(cells[best])


def test_random_ws_is_deterministic_and_resumes_exactly(tmp_path, small_proxy, one_thread):
    sets = [*TINY_SEARCH, "search.samples=3", f"data.proxy={small_proxy}",
            "search.algo=random-ws"]
    assert_resume_matches(tmp_path, sets)  # also: same seed → same strengths and genotype
    again = run_search(load_config(None, [*sets, "search.epochs=2"]), tmp_path / "again")
    assert again["genotype"] == (tmp_path / "full" / "genotype.txt").read_text().strip()
    a, b = _ranked(tmp_path / "full"), _ranked(tmp_path / "again")
    assert torch.equal(a["scores"], b["scores"])


def test_random_ws_runs_from_the_cli(tmp_path, small_proxy):
    sets = [*TINY_SEARCH, "search.epochs=1", "search.samples=2", f"data.proxy={small_proxy}"]
    r = run_cli("search", "--algo", "random-ws", "--dataset", "digits", "--out",
                str(tmp_path / "cli"), *[f"--set={s}" for s in sets])
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["algo"] == "random-ws"
    parse_genotype(results["genotype"])



def test_both_baselines_are_rows_of_the_algorithm_study(tmp_path, one_thread):
    """`study algorithms` runs them like any algorithm and scores their cells on the table."""
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet
    from nasforge.studies.algorithms import run_algorithm_study
    from studies.test_proxy_data_study import ENTROPY_TINY

    added = "resnet8" not in AUX_MODELS
    AUX_MODELS._entries.setdefault("resnet8", lambda k, c: cifar_resnet(8, k, c))
    try:
        cfg = load_config("study-algorithms-digits", [
            *ENTROPY_TINY, *TINY_SEARCH, "search.epochs=1", "search.nodes=2",
            "search.samples=2", "study.algos=[random,random-ws]", "study.seeds=[0]",
            "study.sizes=[64]"])
        summary = run_algorithm_study(cfg, tmp_path / "out", progress=False)
    finally:
        if added:
            AUX_MODELS._entries.pop("resnet8", None)
    assert {(r["algo"], r["data"]) for r in summary} == {
        ("random", "full"), ("random", "p1 64"), ("random-ws", "full"), ("random-ws", "p1 64")}
    bench = TabularBenchmark.load("tabular-digits")
    for run in ("random-full-1-s0", "random-ws-p1-64-s0"):
        result = json.loads((tmp_path / "out" / "runs" / run / "results.json").read_text())
        cell = bench.query(result["genotype"])
        assert any(r["test_acc_mean"] == cell["test_acc_mean"] for r in summary
                   if r["algo"] == result["algo"])
    assert "| random-ws |" in (tmp_path / "out" / "algorithms.md").read_text()
