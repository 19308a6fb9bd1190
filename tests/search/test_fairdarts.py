import pytest
import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig
from nasforge.derive import derive
from nasforge.errors import NasforgeError
from nasforge.search.fairdarts import FairDARTS, zero_one_loss
from nasforge.spaces.darts.genotype import cell_edges
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES

OPS = SPACES.get("darts-no-none").primitives


def test_zero_one_loss_equals_its_formula():
    a, b = torch.tensor([[0.1, 0.5], [0.9, 0.3]]), torch.tensor([[1.0, 0.0]])
    by_hand = -sum((v - 0.5) ** 2 for v in [0.1, 0.5, 0.9, 0.3, 1.0, 0.0]) / 6
    assert zero_one_loss([a, b]).item() == pytest.approx(by_hand)


def test_sigmoid_weights_zero_init_and_arch_loss():
    torch.manual_seed(0)
    net = SearchNetwork(4, 10, 3, 2, in_channels=1, primitives=OPS)
    cfg = SearchConfig(zero_one_weight=10.0)
    strategy = FairDARTS(net, cfg)
    w = strategy.op_weights()
    assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in w.values())
    with torch.no_grad():
        strategy.alphas["reduce"].normal_()
    logits, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    sig = [torch.sigmoid(a) for a in strategy.alphas.values()]
    expected = F.cross_entropy(logits, y) + 10.0 * -(
        (torch.cat([s.reshape(-1) for s in sig]) - 0.5) ** 2).mean()
    assert strategy.arch_loss(logits, y).item() == pytest.approx(expected.item())


def _strengths(values):
    edges = len(cell_edges(2))
    w = torch.zeros(edges, len(OPS))
    for (e, k), v in values.items():
        w[e, k] = v
    return w


def test_threshold_rule_keeps_only_strong_ops():
    # 2 nodes: edges 0,1 -> node 2; edges 2,3,4 -> node 3
    normal = _strengths({(0, 3): 0.95, (1, 2): 0.6, (2, 4): 0.9, (4, 1): 0.86, (3, 0): 0.2})
    reduce = _strengths({(0, 0): 0.99, (1, 5): 0.99, (2, 6): 0.1})
    g = derive("threshold", {"normal": normal, "reduce": reduce}, primitives=OPS, nodes=2)
    assert sorted(g.normal.ops) == sorted([(OPS[3], 0, 2), (OPS[4], 0, 3), (OPS[1], 2, 3)])
    assert g.reduce.ops == ((OPS[0], 0, 2), (OPS[5], 1, 2)) and g.reduce.concat == (2,)
    assert len(derive("threshold", {"normal": normal, "reduce": reduce}, primitives=OPS,
                      nodes=2, threshold=0.5).normal.ops) == 4
    with pytest.raises(NasforgeError, match="lower the threshold"):
        derive("threshold", {"normal": normal * 0.5, "reduce": reduce}, primitives=OPS, nodes=2)
