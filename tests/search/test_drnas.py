import math

import pytest
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


def test_dirichlet_mean_is_the_mean_of_the_draws():
    strategy = _strategy()
    beta = elu_plus_one(strategy.alphas["reduce"].detach())
    mean = strategy.dirichlet_mean()["reduce"]
    assert torch.allclose(mean, beta / beta.sum(-1, keepdim=True))
    many = torch.stack([strategy.op_weights()["reduce"].detach() for _ in range(4000)]).mean(0)
    assert torch.allclose(many, mean, atol=0.02)


def test_derivation_ranks_softmax_of_alpha_like_drnas():
    """DrNAS's genotype() parses softmax(α) (DARTS-space/model_search.py), not β / Σβ.

    Node 3 keeps two of its three edges (inputs 0, 1, 2). With α rows A = (1, −1, …),
    B = (4 at op 3, 1.5 elsewhere), C = (3.2 at op 6, 1 elsewhere), softmax's maxima are
    0.552, 0.670, 0.600 (they depend on the gaps 2, 2.5, 2.2 only) and keep B and C; the
    Dirichlet means' maxima are 0.475, 0.250, 0.259 (ELU+1 is linear above 0) and keep A
    and C. The derived cells differ; the old derivation (the mean) kept input 0.
    """
    from nasforge.derive import derive

    strategy = _strategy()
    k = len(strategy.primitives)
    rows = {2: (1.0, -1.0, 0), 3: (4.0, 1.5, 3), 4: (3.2, 1.0, 6)}  # edge: (top, rest, op)
    with torch.no_grad():
        for a in strategy.alphas.values():
            for edge, (top, rest, op) in rows.items():
                a[edge] = rest
                a[edge, op] = top
    soft = strategy.strengths()["normal"]
    assert torch.allclose(soft, torch.softmax(strategy.alphas["normal"].detach(), -1))
    for edge, (top, rest, _) in rows.items():
        assert soft[edge].max() == pytest.approx(1 / (1 + (k - 1) * math.exp(rest - top)),
                                                 rel=1e-5)
    ops = strategy.primitives

    def node3_inputs(strengths):
        g = derive("argmax", strengths, primitives=ops, nodes=2)
        return {(op, i) for op, i, node in g.normal.ops if node == 3}

    assert node3_inputs(strategy.strengths()) == {(ops[3], 1), (ops[6], 2)}
    assert node3_inputs(strategy.dirichlet_mean()) == {(ops[0], 0), (ops[6], 2)}
