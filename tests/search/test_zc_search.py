"""Zero-cost search: ``--algo zc-random`` and ``--algo zc-evolution`` (issue 17, item 2)."""

import json
import math
import random
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN, assert_refused
from nasforge.benchmarks.tabular import TabularBenchmark, cell_key, enumerate_cells
from nasforge.config import SearchConfig, load_config
from nasforge.data import load_dataset, read_index_file
from nasforge.search import ONESHOT_STRATEGIES, STRATEGIES
from nasforge.search.loop import check_space, run_search
from nasforge.search.zc_evolution import aging_evolution
from nasforge.search.zc_random import ZCSpace, best_position, mean_ranks
from nasforge.spaces.darts.genotype import parse_genotype
from nasforge.zc import Sample, load_batch, score_architectures
from nasforge.zc.sample import NetSettings

TABLE = ["search.space=tabular-digits", "search.nodes=2", "search.channels=4",
         "search.layers=3", "run.progress=false"]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def test_both_are_registered_in_every_kind_of_space():
    for name in ("zc-random", "zc-evolution"):
        assert name in STRATEGIES.names() and name in ONESHOT_STRATEGIES.names()
        assert STRATEGIES.get(name).zero_cost


# --------------------------------------------------------------------------- the vote


def test_vote_is_the_mean_rank_computed_by_hand():
    """a: 3 1 2 2 → ranks 4 1 2.5 2.5; b: NaN 10 5 −inf → NaN and −inf share the bottom
    (1.5 each), 5 → 3, 10 → 4. Means: 2.75 2.5 2.75 2.0; rows 0 and 2 tie: the first wins."""
    rows = [{"a": 3.0, "b": math.nan}, {"a": 1.0, "b": 10.0}, {"a": 2.0, "b": 5.0},
            {"a": 2.0, "b": -math.inf}]
    assert mean_ranks(rows, ["a", "b"]) == [2.75, 2.5, 2.75, 2.0]
    assert best_position(rows, ["a", "b"]) == 0
    assert mean_ranks(rows, ["b"]) == [1.5, 4.0, 3.0, 1.5]
    assert best_position(rows, ["b"]) == 1  # one proxy: simply its highest score
    assert best_position(rows[2:], ["a"]) == 0  # tied scores: the first


# --------------------------------------------------------------------------- mutation

SPACES = [dict(space="darts"), dict(space="s1"), dict(space="darts", rule="topk", k=10),
          dict(space="tabular-digits", nodes=2), dict(space="1shot1-ss1"),
          dict(space="1shot1-ss2"), dict(space="1shot1-ss3")]


def _decisions(space: ZCSpace, w) -> set:
    """The cell's decisions as (where, input, op) triples."""
    if space.oneshot is not None:
        arch = space.oneshot.discretize(w)
        return ({("op", b, op) for b, op in enumerate(arch.ops)}
                | {("in", v, p) for v, ps in enumerate(arch.parents, 1) for p in ps}
                | {("out", 0, p) for p in arch.output})
    edges = space.edges
    return {(c, edges[e][1], edges[e][0], k) for c in w for e, k in w[c].nonzero().tolist()}


@pytest.mark.parametrize("kw", SPACES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_a_mutation_changes_exactly_one_decision_and_stays_in_the_space(kw):
    s = SearchConfig(**kw)
    space = ZCSpace(s, check_space(s.space))
    rng = random.Random(0)
    kinds = set()
    keys = {cell_key(c) for c in enumerate_cells()}
    for w in space.draw(25, 3):
        child, kind = space.mutate(w, rng)
        kinds.add(kind)
        gone, new = _decisions(space, w) - _decisions(space, child), \
            _decisions(space, child) - _decisions(space, w)
        assert len(gone) == len(new) == 1, (gone, new)
        (a,), (b,) = gone, new
        if space.oneshot is not None:
            assert a[0] == b[0] and a[1] == b[1]  # the same block / vertex / output
            assert kind == ("op" if a[0] == "op" else "input")
            space.oneshot.validate(space.arch(child))
        else:
            assert a[0] == b[0] and a[1] == b[1]  # the same cell and node
            if kind == "op":
                assert a[2] == b[2] and a[3] != b[3]
            else:
                assert a[2] != b[2] and a[3] == b[3]
            assert space.sampler.primitives[b[3]] != "none"
            genotype = parse_genotype(space.text(child), primitives=space.sampler.primitives)
            if not space.topk:  # every node keeps 2 distinct inputs
                for cell in (genotype.normal, genotype.reduce):
                    for node in {j for _, _, j in cell.ops}:
                        inputs = [i for _, i, j in cell.ops if j == node]
                        assert len(inputs) == 2 and len(set(inputs)) == 2
            if s.space == "s1":  # S1's per-edge op sets
                mask = space.sampler.allowed
                assert all(k in mask[c][e] for c in child for e, k in child[c].nonzero().tolist())
            if space.tabular:
                assert cell_key(genotype.normal) in keys and a[0] == "normal"
        w = child
    assert kinds == {"op", "input"}


# --------------------------------------------------------------------------- aging


def test_aging_removes_the_oldest_even_when_it_is_the_fittest():
    """Fitness falls with age order (member 0 is the fittest), so removing the worst would
    keep it; aging evolution keeps exactly the P youngest."""
    P, S, N = 4, 2, 11

    def evaluate(cell, parent, how):
        return {"index": len(history_seen), "cell": cell, "fit": -len(history_seen),
                "parent": parent}

    history_seen: list = []

    def evaluate_and_count(cell, parent, how):
        member = evaluate(cell, parent, how)
        history_seen.append(member)
        return member

    history, population = aging_evolution(
        population=P, tournament=S, samples=N, rng=random.Random(0),
        initial=lambda i: i, mutate=lambda m, rng: (m["cell"] + 100, "op"),
        evaluate=evaluate_and_count, winner=lambda c: max(c, key=lambda m: m["fit"]))
    assert [m["index"] for m in history] == list(range(N))
    assert population == history[-P:]
    # each child's parent was alive: among the P members before it
    for m in history[P:]:
        assert m["index"] - P <= m["parent"]["index"] < m["index"]
    one = aging_evolution(population=P, tournament=S, samples=P + 1, rng=random.Random(0),
                          initial=lambda i: i, mutate=lambda m, rng: (m["cell"] + 100, "op"),
                          evaluate=evaluate_and_count,
                          winner=lambda c: max(c, key=lambda m: m["fit"]))
    assert one[1] == one[0][1:]  # the first (fittest) member left after one cycle


# --------------------------------------------------------------------------- runs


def _run(tmp_path, name, sets):
    cfg = load_config(None, [*TABLE, "data.dataset=digits", *sets])
    return run_search(cfg, tmp_path / name), tmp_path / name


def _rows(run):
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def test_the_proxy_best_cell_is_returned_with_scores_from_the_proxy_subset(tmp_path,
                                                                           proxy_file):
    """zc-random on a 160-example proxy: every cell's scores equal an independent scoring of
    the same cells (nasforge.zc, a batch drawn from the subset), and the returned cell has
    the best mean rank of synflow and grad_norm (ranks computed here by hand)."""
    sets = ["search.algo=zc-random", "search.samples=6", "search.zc_proxies=synflow,grad_norm",
            "search.zc_batch=16", f"data.proxy={proxy_file}", "search.bench=tabular-digits",
            "run.seed=3"]
    results, run = _run(tmp_path, "zr", sets)
    rows = _rows(run)
    assert results["samples"] == len(rows) == 6 and results["cost"]["epochs"] == 0
    assert results["cost"]["train_examples"] == 160
    assert results["cost"]["examples_seen"] == results["scored"] * 16  # grad_norm reads 16

    s = load_config(None, [*TABLE, *sets]).search
    space = ZCSpace(s, None)
    cells = space.draw(6, 3)
    indices = read_index_file(proxy_file, 1258)
    batch = load_batch("digits", 16, 3, indices=indices)
    samples = [Sample("tabular-digits", space.arch(w), space.text(w), i)
               for i, w in enumerate(cells)]
    ref = score_architectures("tabular-digits", samples, ["synflow", "grad_norm"], batch, 16, 3,
                              settings=NetSettings(channels=4, layers=3))
    for row, want in zip(rows, ref, strict=True):
        assert row["genotype"] == want["arch"]
        assert row["synflow"] == want["synflow"] and row["grad_norm"] == want["grad_norm"]

    def ranks(values):  # 1 = lowest; ties share their mean rank
        return [sum(1 for u in values if u < v) + (sum(1 for u in values if u == v) + 1) / 2
                for v in values]

    mean = [(a + b) / 2 for a, b in zip(ranks([r["synflow"] for r in ref]),
                                        ranks([r["grad_norm"] for r in ref]), strict=True)]
    best = max(range(6), key=lambda i: (mean[i], -i))
    assert results["best_index"] == best and results["genotype"] == ref[best]["arch"]
    assert (run / "genotype.txt").read_text().strip() == ref[best]["arch"]
    table = TabularBenchmark.load("tabular-digits").query(ref[best]["arch"])
    assert results["test_acc_tabulated"] == table["test_acc_mean"]
    assert results["percentile"] == table["percentile"]
    # the batch really comes from the subset
    data = load_dataset("digits")
    chosen = batch.x.flatten(1)
    pool = ((data.train.x[indices].float() / 255 - data.mean[0]) / data.std[0]).flatten(1)
    assert all(bool(torch.isclose(pool, x, atol=1e-5).all(1).any()) for x in chosen)


def test_evolution_is_seeded_and_reproducible(tmp_path):
    sets = ["search.algo=zc-evolution", "search.samples=14", "search.population=5",
            "search.tournament=3", "search.zc_proxies=synflow,params"]
    a, run_a = _run(tmp_path, "a", sets)
    b, run_b = _run(tmp_path, "b", sets)
    c, run_c = _run(tmp_path, "c", [*sets, "run.seed=1"])
    assert a["genotype"] == b["genotype"]
    assert (run_a / "samples.jsonl").read_text() == (run_b / "samples.jsonl").read_text()
    assert [r["genotype"] for r in _rows(run_c)] != [r["genotype"] for r in _rows(run_a)]
    rows = _rows(run_a)
    assert len(rows) == 14 and a["population"] == 5 and a["tournament"] == 3
    assert a["scored"] == len({r["genotype"] for r in rows}) <= 14
    assert all(r["parent"] is None for r in rows[:5])
    assert all(r["index"] - 5 <= r["parent"] < r["index"] and r["mutation"] in ("op", "input")
               for r in rows[5:])
    # the first P cells are zc-random's (and random's) first draws
    z, run_z = _run(tmp_path, "z", ["search.algo=zc-random", "search.samples=5",
                                    "search.zc_proxies=synflow,params"])
    assert [r["genotype"] for r in _rows(run_z)] == [r["genotype"] for r in rows[:5]]
    # the result is the best mean rank over the history
    assert a["best_index"] == rows[best_position(rows, ["synflow", "params"])]["index"]


@pytest.mark.parametrize("space, sets", [
    ("1shot1-ss2", ["search.layers=3"]),
    ("darts", ["search.rule=topk", "search.k=6"]),
])
def test_other_spaces_run_and_read_back(tmp_path, space, sets):
    cfg = load_config(None, ["data.dataset=digits", "search.algo=zc-evolution",
                             f"search.space={space}", "search.nodes=2", "search.channels=4",
                             "search.layers=3", "search.samples=6", "search.population=3",
                             "search.tournament=2", "search.zc_proxies=params",
                             "run.progress=false", *sets])
    results = run_search(cfg, tmp_path / "run")
    strengths = json.loads((tmp_path / "run" / "strengths.json").read_text())
    oneshot = check_space(space)
    if oneshot is not None:
        arch = oneshot.discretize({k: torch.tensor(strengths[k])
                                   for k in ("ops", "inputs", "output")})
        assert oneshot.format(arch) == results["genotype"]
    else:
        from nasforge.search.loop import derive_from_run
        from nasforge.spaces.darts.genotype import format_genotype

        assert format_genotype(derive_from_run(tmp_path / "run", "topk", k=6)) == \
            results["genotype"]
    rows = _rows(tmp_path / "run")
    assert results["scores"]["params"] == max(r["params"] for r in rows)


def test_the_cli_writes_a_genotype_that_train_accepts(tmp_path, capsys):
    from nasforge.cli import main

    run = tmp_path / "search"
    assert main(["search", "--algo", "zc-evolution", "--dataset", "digits", "--space", "darts",
                 "--set", "search.nodes=2", "--set", "search.channels=4", "--set",
                 "search.layers=3", "--set", "search.samples=6", "--set",
                 "search.population=4", "--set", "search.tournament=2", "--set",
                 "run.progress=false", "--out", str(run)]) == 0
    genotype = (run / "genotype.txt").read_text().strip()
    assert capsys.readouterr().out.strip() == genotype
    assert main(["train", "--genotype", str(run), "--dataset", "digits",
                 *[a for t in TINY_TRAIN for a in ("--set", t)], "--set", "train.epochs=1",
                 "--out", str(tmp_path / "train")]) == 0
    trained = json.loads((tmp_path / "train" / "results.json").read_text())
    assert 0 <= trained["test_acc"] <= 100
    assert "genotype.txt" in (run / ".nasforge").read_text()
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    listed = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert listed["search"]["status"] == "done" and listed["search"]["kind"] == "search"
    assert main(["report", str(run)]) == 0
    report = (run / "report" / "report.md").read_text()
    assert genotype in report and "zc-evolution" in report


def test_proxy_method_selects_the_subset_first(tmp_path):
    results, run = _run(tmp_path, "pm", ["search.algo=zc-random", "search.samples=3",
                                         "proxy.method=random", "proxy.size=64",
                                         "search.zc_proxies=snip"])
    assert results["cost"]["train_examples"] == 64
    assert results["cost"]["selection"]["size"] == 64 and (run / "proxy.json").is_file()
    assert len(read_index_file(run / "proxy.txt", 1258)) == 64


def test_a_bad_proxy_name_is_one_line_and_leaves_no_directory(tmp_path, capsys, proxy_file):
    out = tmp_path / "bad"
    assert_refused(capsys, ["search", "--algo", "zc-random", "--dataset", "digits", "--proxy",
                            str(proxy_file), "--set", "search.zc_batch=200", "--out", str(out)],
                   "the proxies read 200 examples", "holds 160", "search.zc_batch")
    assert not out.exists()
    assert_refused(capsys, ["search", "--algo", "zc-random", "--dataset", "digits", "--set",
                            "search.zc_proxies=synflow,nope", "--out", str(out)],
                   "unknown zero-cost proxy 'nope'", "choose from:", "synflow", "naswot")
    assert not out.exists()
    assert_refused(capsys, ["search", "--algo", "zc-evolution", "--dataset", "digits", "--set",
                            "search.samples=10", "--set", "search.population=20", "--out",
                            str(out)], "search.population (20)", "search.samples (10)")
    assert not out.exists()
