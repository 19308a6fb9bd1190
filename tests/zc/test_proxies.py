"""Every zero-cost proxy against a hand computation on a 2-layer ReLU network.

The network is ``y = W2 · relu(W1 · x)`` (no biases); its forward pass, gradients,
Hessian-gradient product (a central difference of the hand gradient) and input Jacobians
are written out with numpy below, independently of autograd.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.zc.proxies import PROXIES, jacob_cov_score, naswot_kernel

D, H, C, N = 6, 8, 3, 4


def _mlp(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(D, H, bias=False)]
    if bn:
        layers.append(nn.BatchNorm1d(H))
    layers += [nn.ReLU(), nn.Linear(H, C, bias=False)]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():  # weights far from zero so no ReLU sits at a kink
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0)
    return net


def _batch(seed: int = 1, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=g)
    return x, y


def _weights(net: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    lin = [m for m in net if isinstance(m, nn.Linear)]
    return lin[0].weight.detach().numpy().copy(), lin[1].weight.detach().numpy().copy()


def _hand_forward(w1, w2, x):
    z = x @ w1.T
    a = np.maximum(z, 0.0)
    return z, a, a @ w2.T


def _hand_grads(w1, w2, x, t):
    """Mean cross-entropy: dL/dW1, dL/dW2, dL/dz, dL/dy (explicit backprop)."""
    z, a, y = _hand_forward(w1, w2, x)
    p = np.exp(y - y.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gy = (p - np.eye(C)[t]) / len(t)
    gw2 = gy.T @ a
    gz = (gy @ w2) * (z > 0)
    gw1 = gz.T @ x
    return gw1, gw2, gz, gy


def _score(name: str, net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> float:
    return PROXIES.get(name)(net, x, t, F.cross_entropy)


# --------------------------------------------------------------------------- the registry


def test_registry_names_and_signs():
    assert PROXIES.names() == ["fisher", "flops", "grad_norm", "grasp", "jacob_cov", "naswot",
                               "params", "snip", "synflow"]
    assert {n for n in PROXIES.names() if PROXIES.get(n).negated} == {"grasp", "jacob_cov"}
    sizes = {n: PROXIES.get(n).batch_size for n in PROXIES.names()}
    assert sizes == {"fisher": 64, "flops": 0, "grad_norm": 64, "grasp": 64, "jacob_cov": 128,
                     "naswot": 128, "params": 0, "snip": 64, "synflow": 1}
    for name in PROXIES.names():
        assert PROXIES.get(name).fn.__doc__
    with pytest.raises(NasforgeError, match="unknown zero-cost proxy 'nope'"):
        PROXIES.get("nope")


# --------------------------------------------------------------------------- gradient proxies


def test_grad_norm_snip_fisher_by_hand():
    net, (x, t) = _mlp(), _batch()
    w1, w2 = _weights(net)
    gw1, gw2, gz, gy = _hand_grads(w1, w2, x.numpy(), t.numpy())
    assert _score("grad_norm", net, x, t) == pytest.approx(
        np.linalg.norm(gw1) + np.linalg.norm(gw2), rel=1e-10)
    assert _score("snip", net, x, t) == pytest.approx(
        np.abs(w1 * gw1).sum() + np.abs(w2 * gw2).sum(), rel=1e-10)
    z, _, y = _hand_forward(w1, w2, x.numpy())
    # per channel ½·mean_n (a·g)², each counted fan_in times (Abdelfattah et al.'s sum)
    f1 = 0.5 * ((z * gz) ** 2).mean(0)
    f2 = 0.5 * ((y * gy) ** 2).mean(0)
    assert _score("fisher", net, x, t) == pytest.approx(D * f1.sum() + H * f2.sum(), rel=1e-10)


def test_grasp_by_hand():
    net, (x, t) = _mlp(), _batch()
    w1, w2 = _weights(net)
    xn, tn = x.numpy(), t.numpy()
    g1, g2, _, _ = _hand_grads(w1, w2, xn, tn)
    eps = 1e-6  # Hg as a central difference of the hand gradient along g (ReLU pattern fixed)
    p1, p2, _, _ = _hand_grads(w1 + eps * g1, w2 + eps * g2, xn, tn)
    m1, m2, _, _ = _hand_grads(w1 - eps * g1, w2 - eps * g2, xn, tn)
    hg1, hg2 = (p1 - m1) / (2 * eps), (p2 - m2) / (2 * eps)
    expected = -((w1 * hg1).sum() + (w2 * hg2).sum())
    assert _score("grasp", net, x, t) == pytest.approx(expected, rel=1e-6)


def test_synflow_by_hand_and_without_batch_norm():
    net, (x, t) = _mlp(), _batch()
    w1, w2 = _weights(net)
    # all-ones input, |W|: R = 1ᵀ|W2||W1|1, and for a linear chain each layer's Σ|θ ⊙ ∂R/∂θ|
    # is R itself, so synflow = 2R
    r = np.ones(C) @ np.abs(w2) @ np.abs(w1) @ np.ones(D)
    assert _score("synflow", net, x, t) == pytest.approx(2 * r, rel=1e-12)
    bn_net = _mlp(bn=True)  # same weights, batch norm in between: removed by synflow
    with torch.no_grad():
        bn_net[1].weight.fill_(-5.0)
        bn_net[1].running_var.fill_(100.0)
    assert _score("synflow", bn_net, x, t) == pytest.approx(2 * r, rel=1e-12)
    # data-independent: other inputs of the same shape give the same score
    assert _score("synflow", net, 7 * x, t) == _score("synflow", net, x, t)


def test_synflow_runs_in_float64():
    seen = []
    net = _mlp().float()
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, t = _batch()
    _score("synflow", net, x.float(), t)
    assert seen == [torch.float64]


# --------------------------------------------------------------------------- data-only proxies


def test_jacob_cov_by_hand():
    net, (x, t) = _mlp(), _batch()
    w1, w2 = _weights(net)
    z, _, _ = _hand_forward(w1, w2, x.numpy())
    # d(Σ_c y_c)/dx for example n: 1ᵀ W2 diag(z_n > 0) W1
    jac = np.stack([np.ones(C) @ w2 @ np.diag(z[n] > 0) @ w1 for n in range(N)])
    sigma = np.linalg.eigvalsh(np.corrcoef(jac))
    k = 1e-5
    expected = -np.sum(np.log(sigma + k) + 1.0 / (sigma + k))
    assert _score("jacob_cov", net, x, t) == pytest.approx(expected, rel=1e-9)
    assert jacob_cov_score(torch.tensor(jac)) == pytest.approx(expected, rel=1e-9)


def test_jacob_cov_is_nan_for_a_constant_jacobian():
    assert math.isnan(jacob_cov_score(torch.ones(3, 5)))


def test_naswot_by_hand():
    net, (x, t) = _mlp(), _batch(n=3)
    w1, w2 = _weights(net)
    z, _, _ = _hand_forward(w1, w2, x.numpy())
    codes = (z > 0).astype(float)
    hamming = np.array([[np.sum(codes[i] != codes[j]) for j in range(3)] for i in range(3)])
    kernel = H - hamming
    assert np.linalg.det(kernel) > 0
    assert _score("naswot", net, x, t) == pytest.approx(np.log(np.linalg.det(kernel)),
                                                        rel=1e-12)
    expected_kernel = torch.tensor(kernel, dtype=torch.float64)
    assert torch.equal(naswot_kernel(torch.tensor(codes)), expected_kernel)


def test_naswot_identical_codes_give_minus_infinity():
    net, (x, t) = _mlp(), _batch(n=3)
    x = torch.cat([x[:1], x[:1], x[1:2]])  # two examples with the same code: K singular
    assert _score("naswot", net, x, t) == -math.inf


def test_naswot_reads_spikes_over_time_in_snns():
    """An SNN's code is every neuron's spike at every step: [T, N, ...] per example."""
    from nasforge.snn.neuron import plif, reset_net

    torch.manual_seed(3)
    lin = nn.Linear(D, H)
    with torch.no_grad():
        lin.weight.mul_(4.0)
    neuron = plif()

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.neuron, self.out = lin, neuron, nn.Linear(H, C)

        def forward(self, x):
            reset_net(self)
            cur = self.lin(x).unsqueeze(0).expand(3, *x.shape[:1], H)  # T = 3
            return self.out(self.neuron(cur).mean(0))

    net = Tiny().double()
    x, t = _batch(n=4)
    with torch.no_grad():
        reset_net(net)
        spikes = net.neuron(net.lin(x).unsqueeze(0).expand(3, 4, H)).numpy()  # [T, N, H]
    assert 0.1 < spikes.mean() < 0.9  # a real mix of spikes and silences
    codes = spikes.transpose(1, 0, 2).reshape(4, -1)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = np.linalg.slogdet(kernel)
    expected = logdet if sign > 0 else -math.inf
    assert _score("naswot", net, x, t) == pytest.approx(expected, rel=1e-12)


def test_params_and_flops_by_hand():
    net, (x, t) = _mlp(), _batch()
    assert _score("params", net, x, t) == D * H + H * C
    assert _score("flops", net, x, t) == D * H + H * C  # multiply-adds per example

    class Branchy(nn.Module):  # an unused layer is not counted
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(D, C), nn.Linear(D, 100)

        def forward(self, x):
            return self.used(x)

    assert _score("params", Branchy().double(), x, t) == D * C + C


# --------------------------------------------------------------------------- hygiene


def test_proxies_leave_the_model_untouched():
    net, (x, t) = _mlp(bn=True), _batch()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for name in PROXIES.names():
        _score(name, net, x, t)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert not net.training


def test_proxies_are_deterministic():
    net, (x, t) = _mlp(), _batch()
    first = {n: _score(n, net, x, t) for n in PROXIES.names()}
    again = {n: _score(n, _mlp(), x, t) for n in PROXIES.names()}
    assert first == again
    other = {n: _score(n, _mlp(seed=5), x, t) for n in PROXIES.names()}
    assert other["synflow"] != first["synflow"] and other["snip"] != first["snip"]
