"""Second-order DARTS under mixed precision (issue 13, item 3).

Under ``run.amp`` (bf16 autocast on CUDA) the unrolled step w′ = w − ξ∇w and the
finite-difference shift w′ ± ε∇w′ move each weight by ~1e-5, below bf16's resolution: in a
bf16 forward w′ is w and the Hessian term is noise. Measured here on CPU bf16 autocast
before the fix (the passes ran under the autocast; C=8 super-network of 3 cells, 8 images of
8×8, seeds 0–2): the hypergradient was 57%, 51% and 60% off the float32 one, while bf16's
own noise on a plain (first-order) architecture gradient of the same batch was 13–16%
(with 16 images of 16×16: 25–29% against 12–15%). The unrolled passes now run in float32,
so the hypergradient is the float32 one whatever the autocast.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig
from nasforge.runtime import autocast
from nasforge.search import darts
from nasforge.search.base import StepContext
from nasforge.search.darts import DARTS, full_precision
from nasforge.spaces.darts.search_network import SearchNetwork


def _grads(dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(second-order hypergradient, first-order validation gradient) under ``dtype``."""
    torch.manual_seed(seed)
    net = SearchNetwork(8, 10, 3, 2, in_channels=3)
    strategy = DARTS(net, SearchConfig(order="second"))
    x, xa = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)
    y, ya = torch.randint(0, 10, (8,)), torch.randint(0, 10, (8,))
    w_opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.025, autocast=lambda: autocast(x.device, dtype))
    alphas = list(strategy.alphas.values())
    strategy._unrolled_grads(net, (x, y), (xa, ya), ctx)
    hyper = torch.cat([a.grad.reshape(-1) for a in alphas])
    with autocast(x.device, dtype):
        loss = F.cross_entropy(net(xa, strategy.op_weights()), ya)
    first = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, alphas)])
    return hyper, first


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exact(one_thread) -> tuple[torch.Tensor, torch.Tensor]:
    return _grads(None)


def test_bf16_autocast_hypergradient_equals_float32(exact):
    hyper, _ = _grads(torch.bfloat16)
    assert _rel(hyper, exact[0]) < 1e-5


def test_old_bf16_path_was_far_off(exact, monkeypatch):
    """The same passes under the autocast (the old code) miss by several times bf16 noise."""
    monkeypatch.setattr(darts, "full_precision", lambda *t: contextlib.nullcontext())
    hyper, first = _grads(torch.bfloat16)
    old, noise = _rel(hyper, exact[0]), _rel(first, exact[1])
    assert noise < 0.3 and old > 0.4 and old > 2.5 * noise, (old, noise)


def test_full_precision_turns_autocast_off_only_inside():
    x = torch.randn(2, 3)
    w = torch.randn(3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ w).dtype == torch.bfloat16
        with full_precision(x):
            assert (x @ w).dtype == torch.float32
        assert (x @ w).dtype == torch.bfloat16
    with full_precision(x):  # no autocast: nothing to turn off
        assert (x @ w).dtype == torch.float32


# ------------------------------------------------- the other strategies, checked for the trap


def test_sdarts_adv_pgd_attacks_as_well_under_bf16():
    """PGD's steps (2ε/7 ≥ 0.0086 on weights ≤ 1) are far above bf16's resolution, so the
    attack needs no float32: the loss gain it finds, measured in float32, is the float32
    attack's (measured, seeds 0–2, ε = 0.3: 0.0174/0.0171, 0.0147/0.0145, 0.0114/0.0123;
    ε = 0.03: equal to 2 digits). Only the signs of near-zero gradient entries differ."""
    from nasforge.search.sdarts import SDARTSADV, pgd_linf

    gains = []
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(0)
        net = SearchNetwork(8, 10, 3, 2, in_channels=3)
        strategy = SDARTSADV(net, SearchConfig(algo="sdarts-adv"))
        x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
        ctx = StepContext(w_optimizer=None, w_lr=0.025,
                          autocast=lambda dtype=dtype: autocast(torch.device("cpu"), dtype))
        clean = {k: v.detach() for k, v in strategy.op_weights().items()}
        torch.manual_seed(100)
        attacked = pgd_linf(net, clean, (x, y), 0.3, 7, ctx)
        net.eval()
        with torch.no_grad():
            gains.append((F.cross_entropy(net(x, attacked), y)
                          - F.cross_entropy(net(x, clean), y)).item())
    assert gains[0] > 0.005 and gains[1] == pytest.approx(gains[0], rel=0.1), gains


@pytest.mark.parametrize("algo", ["btnas", "drnas"])
def test_sampled_weights_are_float32_draws_under_autocast(algo):
    """BtNAS's Beta and DrNAS's Dirichlet draws are not autocast ops: under bf16 autocast a
    draw is the same float32 tensor as without it."""
    from nasforge.search.base import STRATEGIES

    torch.manual_seed(0)
    strategy = STRATEGIES.get(algo)(SearchNetwork(4, 10, 3, 2, in_channels=3),
                                    SearchConfig(algo=algo))
    start = strategy.draws
    plain = strategy.op_weights()
    strategy.draws = start
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = strategy.op_weights()
    for kind in plain:
        assert mixed[kind].dtype == torch.float32
        assert torch.equal(mixed[kind], plain[kind])


def test_enas_controller_runs_float32_under_autocast():
    from nasforge.search.enas import ENAS

    torch.manual_seed(0)
    strategy = ENAS(SearchNetwork(4, 10, 3, 2, in_channels=3), SearchConfig(algo="enas"))
    start = strategy.draws
    plain = strategy.sample()
    strategy.draws = start
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = strategy.sample()
    assert mixed.arch == plain.arch
    assert mixed.log_prob.dtype == torch.float32
    assert torch.equal(mixed.log_prob, plain.log_prob)
