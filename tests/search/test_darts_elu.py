import torch

from nasforge.config import SearchConfig
from nasforge.search.darts_elu import DARTSELU, elu_plus_one
from nasforge.spaces.darts.search_network import SearchNetwork


def test_strengths_are_elu_plus_one_and_independent_per_op():
    alpha = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0])
    expected = torch.tensor([torch.exp(torch.tensor(-2.0)), torch.exp(torch.tensor(-0.5)), 1.0,
                             1.7, 4.0])
    assert torch.allclose(elu_plus_one(alpha), expected)
    net = SearchNetwork(4, 10, 3, 2, in_channels=1)
    strategy = DARTSELU(net, SearchConfig())
    with torch.no_grad():
        strategy.alphas["normal"][0, 3] = 5.0
    w = strategy.op_weights()["normal"]
    assert (w > 0).all()
    assert w[0, 3] == 6.0 and torch.allclose(w[0, :3], torch.ones(3), atol=1e-2)
    assert not torch.allclose(w.sum(-1), torch.ones(w.shape[0]))  # not a softmax
