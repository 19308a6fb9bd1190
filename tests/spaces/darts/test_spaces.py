import pytest
import torch

from conftest import TINY_SEARCH
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.search.loop import run_search
from nasforge.spaces.darts.genotype import PRIMITIVES, parse_genotype
from nasforge.spaces.darts.ops import OPS
from nasforge.spaces.darts.spaces import SPACES


def test_registered_spaces_and_their_ops():
    assert SPACES.get("darts").primitives == PRIMITIVES
    assert SPACES.get("s2").primitives == ("sep_conv_3x3", "skip_connect")
    assert SPACES.get("s3").primitives == ("none", "sep_conv_3x3", "skip_connect")
    assert SPACES.get("s4").primitives == ("sep_conv_3x3", "noise")
    for name in SPACES.names():
        assert all(op in OPS for op in SPACES.get(name).primitives)
    with pytest.raises(NasforgeError, match="unknown search space 's9'"):
        SPACES.get("s9")


def test_noise_op_ignores_its_input_and_is_standard_normal():
    torch.manual_seed(0)
    op = OPS["noise"](8, 1, False)
    x = torch.full((16, 8, 6, 6), 7.0)
    y = op(x)
    assert y.shape == x.shape
    assert abs(float(y.mean())) < 0.05 and abs(float(y.std()) - 1) < 0.05
    assert OPS["noise"](8, 2, False)(x).shape == (16, 8, 3, 3)


@pytest.mark.parametrize("space, rule", [("s2", "argmax"), ("s4", "topk")])
def test_search_in_a_restricted_space_uses_only_its_ops(tmp_path, proxy_file, space, rule):
    extra = ["search.rule=topk", "search.k=10"] if rule == "topk" else []
    cfg = load_config(None, [*TINY_SEARCH, "search.epochs=1", f"search.space={space}",
                             "search.nodes=4", "search.algo=btnas", *extra,
                             f"data.proxy={proxy_file}"])
    res = run_search(cfg, tmp_path / "run")
    allowed = SPACES.get(space).primitives
    g = parse_genotype(res["genotype"], primitives=allowed)
    ops = {op for cell in (g.normal, g.reduce) for op, _, _ in cell.ops}
    assert ops <= set(allowed) - {"none"}
    if rule == "topk":
        assert len(g.normal.ops) + len(g.reduce.ops) == 10


def test_s1_holds_two_ops_per_edge_as_robustdarts_lists():
    s1 = SPACES.get("s1")
    mask = s1.op_mask(4)
    assert all(int(m.sum(1).min()) == int(m.sum(1).max()) == 2 for m in mask.values())
    names = s1.primitives
    assert [names[k] for k in mask["normal"][12].nonzero().flatten()] == ["dil_conv_3x3",
                                                                           "dil_conv_5x5"]
    assert [names[k] for k in mask["reduce"][0].nonzero().flatten()] == ["max_pool_3x3",
                                                                          "avg_pool_3x3"]
    with pytest.raises(NasforgeError, match="search.nodes=2"):
        s1.op_mask(2)


def test_s1_network_builds_only_the_listed_ops_and_darts_softmax_ignores_the_rest():
    from nasforge.config import SearchConfig
    from nasforge.search.darts import DARTS
    from nasforge.spaces.darts.search_network import SearchNetwork

    s1 = SPACES.get("s1")
    net = SearchNetwork(4, 10, 3, 4, in_channels=1, primitives=s1.primitives,
                        op_mask=s1.op_mask(4))
    for cell in net.cells:
        assert all(len(edge.ops) == 2 for edge in cell.ops)
    strategy = DARTS(net, SearchConfig())
    w = strategy.op_weights()
    for kind, m in s1.op_mask(4).items():
        assert torch.all(w[kind][~m] == 0)
        assert torch.allclose(w[kind].sum(1), torch.ones(14))
    assert net(torch.randn(2, 1, 8, 8), w).shape == (2, 10)
    loss = (strategy.op_weights()["normal"] * torch.randn(14, len(s1.primitives))).sum()
    loss.backward()  # no NaN from the -inf logits
    assert torch.isfinite(strategy.alphas["normal"].grad).all()
    assert torch.all(strategy.alphas["normal"].grad[~s1.op_mask(4)["normal"]] == 0)


def test_search_in_s1_derives_only_listed_ops(tmp_path, proxy_file):
    cfg = load_config(None, [*TINY_SEARCH, "search.epochs=1", "search.space=s1",
                             "search.nodes=4", "search.algo=darts", f"data.proxy={proxy_file}"])
    res = run_search(cfg, tmp_path / "run")
    s1 = SPACES.get("s1")
    g = parse_genotype(res["genotype"], primitives=s1.primitives)
    from nasforge.spaces.darts.genotype import cell_edges

    index = {edge: e for e, edge in enumerate(cell_edges(4))}
    for cell, table in ((g.normal, s1.edge_ops[0]), (g.reduce, s1.edge_ops[1])):
        for op, i, j in cell.ops:
            assert op in table[index[(i, j)]]
