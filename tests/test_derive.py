"""Derivation rules (argmax, top-k, ActAll) on strengths worked out by hand, and their CLI."""

import json
from pathlib import Path

import pytest
import torch

from nasforge.cli import main
from nasforge.config import read_config
from nasforge.derive import DERIVE_RULES, derive, rule_options
from nasforge.errors import NasforgeError
from nasforge.search.loop import derive_from_run
from nasforge.spaces.darts.genotype import (
    PRIMITIVES,
    CellGenotype,
    Genotype,
    cell_edges,
    load_genotype,
    parse_genotype,
)
from nasforge.spaces.darts.known_genotypes import KNOWN_GENOTYPES

K = {op: k for k, op in enumerate(PRIMITIVES)}
EDGE = {edge: e for e, edge in enumerate(cell_edges(4))}


def hand_made_normal() -> torch.Tensor:
    """Uniform 0.1 background with a few strong ops; expected result in the test."""
    w = torch.full((14, 8), 0.1)
    w[EDGE[(0, 2)], K["none"]] = 0.9  # 'none' is largest here and must be skipped
    w[EDGE[(0, 2)], K["sep_conv_3x3"]] = 0.5
    w[EDGE[(1, 2)], K["skip_connect"]] = 0.6
    w[EDGE[(0, 3)], K["max_pool_3x3"]] = 0.3  # edges (0,3) and (1,3) tie at 0.3:
    w[EDGE[(1, 3)], K["dil_conv_3x3"]] = 0.3  # the lower edge index comes first
    w[EDGE[(2, 3)], K["avg_pool_3x3"]] = 0.2
    w[EDGE[(3, 4)], K["sep_conv_5x5"]] = 0.4
    w[EDGE[(2, 4)], K["none"]] = 0.95  # best non-none op is a 0.1 tie: too weak to keep
    w[EDGE[(0, 4)], K["skip_connect"]] = 0.15
    w[EDGE[(4, 5)], K["sep_conv_5x5"]] = 0.7  # op tie on one edge: earlier primitive wins
    w[EDGE[(4, 5)], K["dil_conv_5x5"]] = 0.7
    w[EDGE[(2, 5)], K["dil_conv_5x5"]] = 0.45
    return w


EXPECTED_NORMAL = CellGenotype(
    ops=(
        ("skip_connect", 1, 2),
        ("sep_conv_3x3", 0, 2),
        ("max_pool_3x3", 0, 3),
        ("dil_conv_3x3", 1, 3),
        ("sep_conv_5x5", 3, 4),
        ("skip_connect", 0, 4),
        ("sep_conv_5x5", 4, 5),
        ("dil_conv_5x5", 2, 5),
    ),
    concat=(2, 3, 4, 5),
)


def test_argmax_hand_made():
    uniform = torch.full((14, 8), 1 / 8)  # all ties: first non-none op, first two edges
    g = derive("argmax", {"normal": hand_made_normal(), "reduce": uniform})
    assert g.normal == EXPECTED_NORMAL
    assert g.reduce.ops == tuple(
        ("max_pool_3x3", inp, node) for node in range(2, 6) for inp in (0, 1)
    )
    assert g.reduce.concat == (2, 3, 4, 5)


def strengths_for(g: Genotype) -> dict[str, torch.Tensor]:
    """Strengths whose argmax is ``g``: chosen ops strong, in their listed order."""
    out = {}
    for name in ("normal", "reduce"):
        w = torch.full((14, 8), 0.01)
        w[:, K["none"]] = 0.5  # 'none' dominates every edge and must be ignored
        for i, (op, inp, node) in enumerate(getattr(g, name).ops):
            w[EDGE[(inp, node)], K[op]] = 0.4 - 0.01 * i
        out[name] = w
    return out


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_argmax_reproduces_published_order(name):
    g = load_genotype(name)
    assert derive("argmax", strengths_for(g)) == g


def test_argmax_without_none_considers_every_op():
    prims = ("skip_connect", "sep_conv_3x3")
    w = torch.zeros(5, 2)  # nodes=2: edges (0,2) (1,2) (0,3) (1,3) (2,3)
    w[0, 0] = 0.9
    w[1, 1] = 0.8
    w[2, 1] = 0.2
    w[4, 0] = 0.7
    w[3, 0] = 0.1
    g = derive("argmax", {"normal": w, "reduce": w.clone()}, primitives=prims, nodes=2)
    assert g.normal.ops == (
        ("skip_connect", 0, 2),
        ("sep_conv_3x3", 1, 2),
        ("skip_connect", 2, 3),
        ("sep_conv_3x3", 0, 3),
    )
    assert g.normal.concat == (2, 3)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((13, 8), "shape [13, 8]; expected [14, 8]"), ((14, 7), "shape [14, 7]; expected [14, 8]")],
)
def test_wrong_shape_names_expected_and_got(shape, expected):
    strengths = {"normal": torch.rand(14, 8), "reduce": torch.rand(*shape)}
    with pytest.raises(NasforgeError, match="reduce strengths have") as err:
        derive("argmax", strengths)
    assert expected in str(err.value)


def test_shape_follows_nodes():
    strengths = {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)}
    with pytest.raises(NasforgeError, match=r"expected \[20, 8\] \(20 edges for 5 nodes"):
        derive("argmax", strengths, nodes=5)
    g = derive("argmax", {c: torch.rand(20, 8) for c in ("normal", "reduce")}, nodes=5)
    assert len(g.normal.ops) == 10 and g.normal.concat == (2, 3, 4, 5, 6)


def test_bad_strengths_and_rule():
    with pytest.raises(NasforgeError, match="keys 'normal' and 'reduce'"):
        derive("argmax", {"normal": torch.rand(14, 8)})
    with pytest.raises(NasforgeError, match="NaN"):
        derive("argmax", {"normal": torch.full((14, 8), float("nan")), "reduce": torch.rand(14, 8)})
    with pytest.raises(
        NasforgeError, match="unknown derivation rule 'argmin'; choose from: .*argmax"
    ):
        derive("argmin", {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)})
    with pytest.raises(NasforgeError, match="takes no options; got: k"):
        derive("argmax", {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)}, k=3)


def test_registry_lists_argmax():
    assert "argmax" in DERIVE_RULES.names()


# ------------------------------------------------------------------------- top-k survival


def topk_strengths() -> dict[str, torch.Tensor]:
    """Background 0.01, 'none' strongest everywhere (ignored), a few strong ops per cell."""
    out = {}
    for cell, ops in {
        "normal": {
            ((0, 2), "sep_conv_3x3"): 0.9,
            ((0, 2), "skip_connect"): 0.7,  # same edge as above: an edge keeps both
            ((3, 5), "dil_conv_3x3"): 0.8,  # reads node 3, which gets no op: a dead op
        },
        "reduce": {
            ((0, 2), "max_pool_3x3"): 0.85,
            ((1, 3), "sep_conv_5x5"): 0.75,
            ((1, 2), "skip_connect"): 0.7,  # ties the normal skip: normal ranks first
            ((4, 5), "sep_conv_3x3"): 0.65,
            ((2, 4), "avg_pool_3x3"): 0.6,
        },
    }.items():
        w = torch.full((14, 8), 0.01)
        w[:, K["none"]] = 0.95
        for (edge, op), value in ops.items():
            w[EDGE[edge], K[op]] = value
        out[cell] = w
    return out


def test_topk_hand_made_k8_splits_three_five():
    g = derive("topk", topk_strengths(), k=8)
    # Kept: normal sep(0.9), dil(0.8), skip(0.7); reduce max(0.85), sep5(0.75), skip(0.7),
    # sep3(0.65), avg(0.6). The normal dil reads node 3, which gets no op: it stays in the
    # genotype (a k-ExtCell has exactly k ops) but carries nothing.
    assert g.normal == CellGenotype(
        ops=(("sep_conv_3x3", 0, 2), ("skip_connect", 0, 2), ("dil_conv_3x3", 3, 5)),
        concat=(2, 5),
    )
    assert g.reduce == CellGenotype(
        ops=(
            ("max_pool_3x3", 0, 2), ("skip_connect", 1, 2), ("sep_conv_5x5", 1, 3),
            ("avg_pool_3x3", 2, 4), ("sep_conv_3x3", 4, 5),
        ),
        concat=(2, 3, 4, 5),
    )
    assert len(g.normal.ops) + len(g.reduce.ops) == 8


def test_topk_k7_keeps_exactly_k_ops_and_the_network_prunes_dead_ones():
    from nasforge.spaces.darts.eval_network import _wire

    g = derive("topk", topk_strengths(), k=7)
    # avg(0.6) is 8th: reduction node 4 gets nothing, so sep3 4→5 reads an inactive node.
    assert g.reduce == CellGenotype(
        ops=(("max_pool_3x3", 0, 2), ("skip_connect", 1, 2), ("sep_conv_5x5", 1, 3),
             ("sep_conv_3x3", 4, 5)),
        concat=(2, 3, 5),
    )
    assert len(g.normal.ops) + len(g.reduce.ops) == 7
    wired = _wire(g.reduce)
    assert wired.concat == (2, 3) and ("sep_conv_3x3", 4, 5) not in wired.ops
    assert _wire(g.normal).concat == (2,)


def test_topk_ties_rank_normal_then_edge_then_op():
    reduce = torch.full((14, 8), 0.5)
    reduce[EDGE[(1, 2)], K["skip_connect"]] = 0.6
    s = {"normal": torch.full((14, 8), 0.5), "reduce": reduce}
    g = derive("topk", s, k=10)
    # 0.6 first, then 9 equal strengths: the normal cell's edge 0→2 (all 7 ops, in primitive
    # order), then the first two ops of edge 1→2; none of the reduction cell's ties.
    assert g.reduce.ops == (("skip_connect", 1, 2),)
    assert g.normal.ops == (
        *((op, 0, 2) for op in PRIMITIVES[1:]), ("max_pool_3x3", 1, 2), ("avg_pool_3x3", 1, 2)
    )
    uniform = {c: torch.full((14, 8), 0.5) for c in ("normal", "reduce")}
    with pytest.raises(NasforgeError, match="reduce cell without an active"):
        derive("topk", uniform, k=9)


SMALL = ("none", "skip_connect", "sep_conv_3x3")  # nodes=2: edges 0→2 1→2 0→3 1→3 2→3


def small_strengths() -> dict[str, torch.Tensor]:
    normal = torch.zeros(5, 3)
    normal[0, 1] = 0.2  # node 2: skip 0→2 is its strongest, but weak globally
    normal[1, 2] = 0.1
    normal[2, 1] = 0.9  # node 3: max 0.9
    normal[4, 2] = 0.6  # 2→3: 0.6 / 0.9 = 0.667 under ActAll
    normal[3, 1] = 0.45  # 1→3: 0.5 under ActAll, ties sep 1→2 (0.1 / 0.2)
    reduce = torch.zeros(5, 3)
    reduce[0, 2] = 0.5
    reduce[3, 2] = 0.25
    return {"normal": normal, "reduce": reduce}


def test_act_all_changes_the_ranking_as_the_formula_says():
    s = small_strengths()
    plain = derive("topk", s, primitives=SMALL, nodes=2, k=4)
    # 0.9, 0.6, 0.5, 0.45: normal node 2 gets nothing, so sep 2→3 is kept but dead.
    assert plain.normal == CellGenotype(
        (("skip_connect", 0, 3), ("sep_conv_3x3", 2, 3), ("skip_connect", 1, 3)), (3,))
    assert plain.reduce == CellGenotype((("sep_conv_3x3", 0, 2),), (2,))
    # ActAll: every node's strongest op scores 1 and these four rank first.
    g = derive("topk", s, primitives=SMALL, nodes=2, k=4, act_all=True)
    assert g.normal == CellGenotype((("skip_connect", 0, 2), ("skip_connect", 0, 3)), (2, 3))
    assert g.reduce == CellGenotype((("sep_conv_3x3", 0, 2), ("sep_conv_3x3", 1, 3)), (2, 3))
    g5 = derive("topk", s, primitives=SMALL, nodes=2, k=5, act_all=True)
    assert ("sep_conv_3x3", 2, 3) in g5.normal.ops  # 0.667 beats the 0.5 pair
    g6 = derive("topk", s, primitives=SMALL, nodes=2, k=6, act_all=True)
    assert ("sep_conv_3x3", 1, 2) in g6.normal.ops  # 0.5 tie: edge 1→2 before edge 1→3
    assert ("skip_connect", 1, 3) not in g6.normal.ops


@pytest.mark.parametrize("k", [8, 9, 12, 14, 16])
def test_act_all_keeps_every_node_active(k):
    for seed in range(25):
        gen = torch.Generator().manual_seed(seed)
        # Skewed strengths: a few ops dominate, as after a long search.
        s = {c: torch.rand(14, 8, generator=gen) ** 6 for c in ("normal", "reduce")}
        g = derive("topk", s, k=k, act_all=True)
        assert g.normal.concat == g.reduce.concat == (2, 3, 4, 5), (seed, k)
    ties = {c: torch.full((14, 8), 0.125) for c in ("normal", "reduce")}
    g = derive("topk", ties, k=8, act_all=True)  # all equal: leaders still rank first
    assert len(g.normal.ops) == len(g.reduce.ops) == 4
    assert g.normal.concat == g.reduce.concat == (2, 3, 4, 5)


def test_act_all_needs_positive_strengths():
    s = {c: torch.rand(14, 8) for c in ("normal", "reduce")}
    s["reduce"][2:5] = 0.0  # node 3 of the reduction cell (edges 2..4) has maximum 0
    with pytest.raises(NasforgeError, match="node 3 of the reduce cell has maximum 0"):
        derive("topk", s, k=8, act_all=True)


@pytest.mark.parametrize("k", [0, 197, -3, 2.5, True])
def test_topk_bad_k_is_one_line(k):
    s = {c: torch.rand(14, 8) for c in ("normal", "reduce")}
    with pytest.raises(NasforgeError, match=r"out of range; allowed 1\.\.196") as err:
        derive("topk", s, k=k)
    assert "\n" not in str(err.value)


def test_topk_k_range_follows_space():
    s = {c: torch.rand(5, 3) for c in ("normal", "reduce")}
    with pytest.raises(NasforgeError, match=r"k=21 is out of range; allowed 1\.\.20"):
        derive("topk", s, primitives=SMALL, nodes=2, k=21)
    g = derive("topk", s, primitives=SMALL, nodes=2, k=20)  # everything survives
    assert len(g.normal.ops) == len(g.reduce.ops) == 10


def test_topk_empty_cell_names_cell_and_k():
    s = {"normal": torch.full((14, 8), 0.1), "reduce": torch.full((14, 8), 0.9)}
    with pytest.raises(NasforgeError) as err:
        derive("topk", s, k=16)  # FairDARTS-like: every top op is in the reduction cell
    msg = str(err.value)
    assert "k=16" in msg and "normal cell" in msg and "0 of the 16 kept ops" in msg
    assert "\n" not in msg


def test_topk_option_errors():
    s = {c: torch.rand(14, 8) for c in ("normal", "reduce")}
    with pytest.raises(NasforgeError, match="rule 'topk' needs option k"):
        derive("topk", s)
    with pytest.raises(NasforgeError, match="has no option kk; it takes: k, act_all"):
        derive("topk", s, k=3, kk=4)
    assert "topk" in DERIVE_RULES.names()


# ------------------------------------------------------------------------- rule_options


def test_rule_options_from_config():
    from nasforge.config import load_config

    def opts(*sets):
        cfg = load_config(None, list(sets))
        return rule_options(cfg.search, primitives=PRIMITIVES, nodes=cfg.search.nodes)

    assert opts() == {}
    assert opts("search.rule=topk", "search.k=14") == {"k": 14, "act_all": False}
    assert opts("search.rule=topk", "search.k=10", "search.act_all=true") == {
        "k": 10, "act_all": True
    }
    with pytest.raises(NasforgeError, match=r"rule 'topk' needs search\.k .*search\.k=14"):
        opts("search.rule=topk")
    with pytest.raises(NasforgeError, match=r"search\.k is not an option of rule 'argmax'"):
        opts("search.k=14")
    with pytest.raises(NasforgeError, match=r"search\.act_all is not an option"):
        opts("search.act_all=true")
    with pytest.raises(NasforgeError, match="k=500 is out of range"):
        opts("search.rule=topk", "search.k=500")
    with pytest.raises(NasforgeError, match="unknown derivation rule 'top3'"):
        opts("search.rule=top3")


def test_search_with_topk_and_no_k_fails_before_any_work(tmp_path):
    from nasforge.config import load_config
    from nasforge.search.loop import run_search

    cfg = load_config(None, ["search.rule=topk"])
    with pytest.raises(NasforgeError, match="needs search.k"):
        run_search(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def topk_run(tmp_path_factory) -> Path:
    """One tiny DARTS search (nodes=2: 70 candidate ops) derived with top-1 and ActAll.

    k=1 can fill only one cell, so every epoch's derivation fails: the search must still
    finish and keep its strengths for ``nasforge derive``.
    """
    from conftest import TINY_SEARCH

    tmp = tmp_path_factory.mktemp("topk")
    proxy = tmp / "proxy.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 640, 8)))
    run = tmp / "search"
    sets = [a for s in [*TINY_SEARCH, "search.epochs=1"] for a in ("--set", s)]
    assert main(["search", "--proxy", str(proxy), *sets, "--derive", "topk", "--k", "1",
                 "--act-all", "--out", str(run)]) == 0
    return run


def test_search_cli_passes_topk_options_and_survives_an_empty_cell(topk_run):
    cfg = read_config(topk_run / "config.yaml")
    assert (cfg.search.rule, cfg.search.k, cfg.search.act_all) == ("topk", 1, True)
    results = json.loads((topk_run / "results.json").read_text())
    assert results["rule"] == "topk"
    # ActAll ties: the normal cell's node-2 leader ranks first, so the reduction cell is empty.
    assert results["genotype"].startswith(
        "# no genotype: topk with k=1 leaves the reduce cell without an active"
    )
    assert (topk_run / "strengths.json").is_file()


def test_derive_cli_topk(capsys, topk_run, tmp_path):
    capsys.readouterr()
    out = tmp_path / "g.txt"
    assert main(["derive", str(topk_run), "--rule", "topk", "--k", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    g = parse_genotype(printed)
    assert out.read_text().strip() == printed
    assert g == derive_from_run(topk_run, "topk", k=10)
    assert len(g.normal.ops) + len(g.reduce.ops) <= 10
    assert main(["derive", str(topk_run), "--rule", "topk", "--k", "4", "--act-all"]) == 0
    g = parse_genotype(capsys.readouterr().out)
    assert g.normal.concat == g.reduce.concat == (2, 3)  # ActAll, k=4 >= 2 * nodes
    assert len(g.normal.ops) == len(g.reduce.ops) == 2


@pytest.mark.parametrize("argv, fragment", [
    (["--rule", "topk"], "rule 'topk' needs --k"),
    (["--rule", "topk", "--k", "71"], "k=71 is out of range; allowed 1..70"),
    (["--rule", "topk", "--k", "0"], "k=0 is out of range"),
    (["--k", "4"], "--k is not an option of rule 'argmax'"),
    (["--act-all"], "--act-all is not an option of rule 'argmax'"),
    (["--rule", "topk", "--k", "many"], "invalid int value: 'many'"),
    (["--rule", "top3"], "invalid choice: 'top3'"),
])
def test_derive_cli_bad_input_is_one_line_exit_2(capsys, topk_run, argv, fragment):
    capsys.readouterr()
    assert main(["derive", str(topk_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_search_cli_topk_without_k_fails_before_creating_the_run(capsys, tmp_path):
    assert main(["search", "--derive", "topk", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rule 'topk' needs search.k" in err
    assert not (tmp_path / "r").exists()
