import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasforge import search as search_module
from nasforge.config import SearchConfig, load_config
from nasforge.errors import NasforgeError
from nasforge.runtime import autocast
from nasforge.search import STRATEGIES
from nasforge.search.base import CELL_TYPES, StepContext
from nasforge.search.gdas import GDAS, gumbel_hard, linear_tau
from nasforge.spaces.darts.search_network import MixedOp, SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _setup(seed: int = 0, **cfg):
    torch.manual_seed(seed)
    net = SearchNetwork(4, 3, 3, 2, in_channels=1)
    strategy = GDAS(net, SearchConfig(algo="gdas", **cfg))
    g = torch.Generator().manual_seed(123)  # the same batches whatever the seed
    x, xa = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.1, autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), (xa, y), ctx


def _count_op_calls(net: SearchNetwork):
    """Hooks on every op of every MixedOp: {(cell, edge): [op indices run]}."""
    calls: dict[tuple[int, int], list[int]] = {}
    handles = []
    for c, cell in enumerate(net.cells):
        for e, mixed in enumerate(cell.ops):
            assert isinstance(mixed, MixedOp)
            calls[(c, e)] = []
            for k, op in enumerate(mixed.ops):
                handles.append(op.register_forward_hook(
                    lambda *_, key=(c, e), k=k: calls[key].append(k)))
    return calls, handles


def test_registered_and_sparse():
    assert STRATEGIES.get("gdas") is GDAS and "gdas" in search_module.STRATEGIES.names()
    net, strategy, *_ = _setup()
    assert GDAS.sparse and net.sparse


def test_exactly_one_op_runs_per_edge_in_the_forward_pass():
    net, strategy, batch, *_ = _setup()
    calls, handles = _count_op_calls(net)
    weights = strategy.op_weights()
    net(batch[0], weights)
    for h in handles:
        h.remove()
    for (c, e), ran in calls.items():
        kind = "reduce" if net.cells[c].reduction else "normal"
        assert ran == [int(weights[kind][e].argmax())], (c, e, ran)


def _reference_probs(alpha: np.ndarray, gumbels: np.ndarray, tau: float) -> np.ndarray:
    """p = softmax((log_softmax(α) + g) / τ), in float64 numpy."""
    top = alpha.max(-1, keepdims=True)
    log_q = alpha - top - np.log(np.exp(alpha - top).sum(-1, keepdims=True))
    z = (log_q + gumbels) / tau
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_weights_are_one_hot_and_gradients_reach_alpha_only_through_the_chosen_p():
    net, strategy, batch, *_ = _setup()
    tau = 2.0
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for a in strategy.alphas.values():
            a.normal_(0.0, 1.0, generator=gen)
    gumbels = {c: -torch.empty(a.shape).exponential_(generator=gen).log()
               for c, a in strategy.alphas.items()}
    weights, probs = {}, {}
    for c in CELL_TYPES:
        h, p, idx = gumbel_hard(strategy.alphas[c], tau, gumbels[c])
        ref = _reference_probs(strategy.alphas[c].detach().double().numpy(),
                               gumbels[c].double().numpy(), tau)
        assert np.allclose(p.detach().double().numpy(), ref, atol=1e-6)
        assert torch.equal(idx, torch.from_numpy(ref.argmax(-1)))
        # exactly one-hot in value
        assert torch.equal(h.detach(), F.one_hot(idx, h.shape[-1]).float())
        h.retain_grad()
        weights[c], probs[c] = h, ref
    loss = F.cross_entropy(net(batch[0], weights), batch[1])
    loss.backward()
    for c in CELL_TYPES:
        dh = weights[c].grad
        idx = weights[c].detach().argmax(-1)
        chosen = dh.gather(1, idx[:, None])[:, 0]
        # the unchosen ops did not run: no gradient reaches their weights
        assert torch.count_nonzero(dh).item() <= len(idx)
        assert torch.equal(dh, F.one_hot(idx, dh.shape[-1]) * chosen[:, None])
        # dα_k = dL/dh_idx · dp_idx/dα_k with dp_i/dα_k = p_i (δ_ik − p_k) / τ
        p = probs[c]
        expected = np.zeros_like(p)
        for e, i in enumerate(idx.tolist()):
            for k in range(p.shape[1]):
                expected[e, k] = chosen[e].item() * p[e, i] * ((i == k) - p[e, k]) / tau
        got = strategy.alphas[c].grad.double().numpy()
        assert np.allclose(got, expected, rtol=1e-4, atol=1e-9), (got, expected)
        assert (np.abs(got) > 0).all()  # through p_idx the whole row of α moves


def test_temperature_schedule_is_linear_from_tau_max_to_tau_min():
    assert linear_tau(0, 250, 10.0, 0.1) == 10.0
    assert linear_tau(249, 250, 10.0, 0.1) == pytest.approx(0.1)
    assert linear_tau(2, 5, 10.0, 2.0) == pytest.approx(6.0)
    assert linear_tau(0, 1, 10.0, 0.1) == 10.0  # a single epoch stays at τ_max
    _, strategy, *_ = _setup(tau_max=5.0, tau_min=0.5)
    assert strategy.tau == 5.0
    strategy.start_epoch(9, 10)
    assert strategy.tau == pytest.approx(0.5)
    strategy.start_epoch(0, 10)
    assert strategy.tau == 5.0


def test_sampling_is_seeded_fresh_and_leaves_the_global_rng_alone():
    _, a, *_ = _setup(3)
    _, b, *_ = _setup(3)
    rng = torch.get_rng_state()
    first = a.op_weights()
    assert torch.equal(torch.get_rng_state(), rng)
    twin = b.op_weights()
    assert all(torch.equal(first[c], twin[c]) for c in CELL_TYPES)
    draws = [a.op_weights()["normal"] for _ in range(4)]
    assert any(not torch.equal(d, first["normal"]) for d in draws)
    assert a.draws == 5
    # the state dict carries the stream: a restored strategy draws what the original draws
    _, c, *_ = _setup(11)
    c.load_state_dict(a.state_dict())
    got, expected = c.op_weights(), a.op_weights()
    assert all(torch.equal(got[k], expected[k]) for k in CELL_TYPES)


def test_non_finite_draws_are_redrawn(monkeypatch):
    import nasforge.search.gdas as gdas

    real, calls = gdas.gumbel_noise, []

    def flaky(like):
        calls.append(1)
        g = real(like)
        return g.fill_(math.inf) if len(calls) == 1 else g

    monkeypatch.setattr(gdas, "gumbel_noise", flaky)
    _, strategy, *_ = _setup()
    h = strategy.op_weights()
    assert len(calls) == 2 and strategy.draws == 1
    assert all(torch.isfinite(v).all() and torch.equal(v.sum(-1), torch.ones(len(v)))
               for v in h.values())


def test_eval_weights_are_the_argmax_one_hot_and_strengths_the_softmax():
    _, strategy, *_ = _setup()
    with torch.no_grad():
        strategy.alphas["normal"].normal_(0.0, 1.0)
    ev = strategy.eval_weights()
    assert torch.equal(ev["normal"], F.one_hot(strategy.alphas["normal"].argmax(-1), 8).float())
    assert torch.equal(strategy.eval_weights()["normal"], ev["normal"])  # deterministic
    assert strategy.draws == 0
    assert torch.allclose(strategy.strengths()["normal"],
                          F.softmax(strategy.alphas["normal"].detach(), -1))


def test_arch_step_moves_only_alpha_and_weight_step_draws_its_own_sample():
    net, strategy, bw, ba, ctx = _setup()
    before = {c: a.detach().clone() for c, a in strategy.alphas.items()}
    strategy.arch_step(net, bw, ba, strategy.make_arch_optimizer(), ctx)
    assert strategy.draws == 1
    assert all(not torch.equal(before[c], strategy.alphas[c]) for c in CELL_TYPES)
    assert all(p.grad is None for p in net.parameters())
    w = strategy.weight_step_weights(net, bw, ctx)
    assert strategy.draws == 2
    assert all(not v.requires_grad and torch.equal(v.sum(-1), torch.ones(len(v)))
               for v in w.values())


def test_second_order_is_rejected():
    with pytest.raises(NasforgeError, match="gdas is first-order only"):
        _setup(order="second")


@pytest.mark.parametrize("name", ["gdas-cifar10", "gdas-digits"])
def test_configs_load(name):
    cfg = load_config(name)
    assert cfg.search.algo == "gdas" and cfg.search.tau_max == 10.0
    assert cfg.search.tau_min == 0.1
    if name == "gdas-cifar10":
        s = cfg.search
        assert (s.epochs, s.batch_size, s.layers, s.channels) == (250, 256, 6, 16)
        assert (s.w_lr, s.w_lr_min, s.w_weight_decay) == (0.025, 0.001, 5e-4)
        assert (s.arch_lr, tuple(s.arch_betas), s.arch_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)


def test_per_edge_spaces_never_draw_an_op_the_edge_does_not_hold():
    if "s1" not in SPACES.names():
        pytest.skip("no per-edge space registered")
    space = SPACES.get("s1")
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, 4, in_channels=1, primitives=space.primitives,
                        op_mask=space.op_mask(4))
    strategy = GDAS(net, SearchConfig(algo="gdas", space="s1", arch_init_std=1.0))
    held = space.op_mask(4)
    for _ in range(20):
        for c, h in strategy.op_weights().items():
            assert (h.detach()[~held[c]] == 0).all()
    for c in CELL_TYPES:
        assert held[c].gather(1, strategy.eval_weights()[c].argmax(-1, keepdim=True)).all()
        assert (strategy.strengths()[c][~held[c]] == 0).all()
    x = torch.randn(2, 1, 8, 8)
    strategy.arch_step(net, (x, torch.tensor([0, 1])), (x, torch.tensor([0, 1])),
                       strategy.make_arch_optimizer(),
                       StepContext(w_optimizer=None, w_lr=0.1,
                                   autocast=lambda: autocast(x.device, None)))
    assert all(torch.isfinite(a).all() for a in strategy.alphas.values())
