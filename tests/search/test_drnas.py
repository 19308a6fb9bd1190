import torch

from nasforge.config import SearchConfig
from nasforge.search.darts_elu import elu_plus_one
from nasforge.search.drnas import DrNAS
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _strategy(seed=0):
    torch.manual_seed(seed)
    ops = SPACES.get("darts-no-none").primitives
    net = SearchNetwork(4, 10, 3, 2, in_channels=1, primitives=ops)
    return DrNAS(net, SearchConfig(arch_init_std=0.5))


def test_samples_lie_on_the_simplex_and_carry_gradients():
    strategy = _strategy()
    w = strategy.op_weights()
    for v in w.values():
        assert (v > 0).all() and torch.allclose(v.sum(-1), torch.ones(v.shape[0]))
    loss = (w["normal"] * torch.arange(w["normal"].shape[1]).float()).sum() + w["reduce"][0, 0]
    loss.backward()
    for a in strategy.alphas.values():
        assert a.grad is not None and a.grad.abs().sum() > 0


def test_draws_are_fresh_reproducible_and_resumable():
    a, b = _strategy(3), _strategy(3)
    first = a.op_weights()["normal"]
    assert torch.equal(first, b.op_weights()["normal"])
    second = a.op_weights()["normal"]
    assert not torch.equal(first, second)
    c = _strategy(4)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.op_weights()["normal"], a.op_weights()["normal"])


def test_strengths_are_the_dirichlet_mean():
    strategy = _strategy()
    beta = elu_plus_one(strategy.alphas["reduce"].detach())
    assert torch.allclose(strategy.strengths()["reduce"], beta / beta.sum(-1, keepdim=True))
    many = torch.stack([strategy.op_weights()["reduce"].detach() for _ in range(4000)]).mean(0)
    assert torch.allclose(many, strategy.strengths()["reduce"], atol=0.02)
