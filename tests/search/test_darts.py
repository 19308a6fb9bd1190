import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig
from nasforge.runtime import autocast
from nasforge.search.base import StepContext
from nasforge.search.darts import DARTS
from nasforge.spaces.darts.search_network import SearchNetwork


def _setup(order: str, dtype=torch.float32):
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, 2, in_channels=1).to(dtype)
    cfg = SearchConfig(order=order, arch_init_std=0.5)
    strategy = DARTS(net, cfg).to(dtype)
    x = torch.randn(6, 1, 8, 8, dtype=dtype)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    xa = torch.randn(6, 1, 8, 8, dtype=dtype)
    w_opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.3, autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), (xa, y), w_opt, ctx


def test_op_weights_are_softmax_rows():
    net, strategy, *_ = _setup("first")
    w = strategy.op_weights()
    assert set(w) == {"normal", "reduce"}
    assert w["normal"].shape == (net.num_edges, len(net.primitives)) == (5, 8)
    assert torch.allclose(w["normal"].sum(-1), torch.ones(5))


def test_first_order_step_moves_alphas_along_val_gradient():
    net, strategy, bw, ba, w_opt, ctx = _setup("first")
    before = {k: v.detach().clone() for k, v in strategy.alphas.items()}
    a_opt = strategy.make_arch_optimizer()
    strategy.arch_step(net, bw, ba, a_opt, ctx)
    # Adam's first step moves every coordinate with a non-zero gradient by ≈ lr
    for k in before:
        delta = (strategy.alphas[k].detach() - before[k]).abs()
        assert delta.max() > 0.5 * strategy.cfg.arch_lr
    # network weights are untouched by an architecture step
    assert all(p.grad is None for p in net.parameters())


def test_second_order_matches_exact_unrolled_hypergradient():
    """The finite-difference Hessian-vector product equals autograd through w′(α)."""
    net, strategy, bw, ba, w_opt, ctx = _setup("second", torch.float64)
    # one real weight step so the SGD momentum buffer exists and enters w′
    loss = F.cross_entropy(net(bw[0], {k: v.detach() for k, v in strategy.op_weights().items()}),
                           bw[1])
    loss.backward()
    w_opt.step()
    w_opt.zero_grad()
    net.eval()  # BN with running stats: forward passes are pure functions of (w, α)

    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    alphas = list(strategy.alphas.values())
    xi, mu, wd = 0.3, 0.9, 3e-4
    train_loss = F.cross_entropy(net(bw[0], strategy.op_weights()), bw[1])
    g = torch.autograd.grad(train_loss, params, create_graph=True)
    unrolled = {n: p - xi * (gi + wd * p + mu * w_opt.state[p]["momentum_buffer"])
                for n, p, gi in zip(names, params, g, strict=True)}
    val_loss = F.cross_entropy(
        torch.func.functional_call(net, unrolled, (ba[0], strategy.op_weights())), ba[1])
    exact = torch.autograd.grad(val_loss, alphas)

    strategy.fd_scale = 1e-5  # float64: a small step makes the finite difference ~exact
    strategy._unrolled_grads(net, bw, ba, ctx)
    approx = torch.cat([a.grad.reshape(-1) for a in alphas])
    exact = torch.cat([e.reshape(-1) for e in exact])
    fd_error = (approx - exact).norm() / exact.norm()
    assert fd_error < 1e-5, fd_error
    # ... while dropping the second-order term is off by far more, so the test would catch it
    first = torch.autograd.grad(
        F.cross_entropy(torch.func.functional_call(
            net, {n: v.detach() for n, v in unrolled.items()}, (ba[0], strategy.op_weights())),
            ba[1]), alphas)
    first = torch.cat([f.reshape(-1) for f in first])
    assert (first - exact).norm() / exact.norm() > 0.01
