"""The PLIF neuron equals a hand-written Eqs. 2.6–2.9 recurrence with the ATan surrogate."""

import math

import torch

from nasforge.snn.neuron import plif, reset_net

ALPHA = 2.0


class _Heaviside(torch.autograd.Function):
    """Θ(x) forward, ATan surrogate α/2 / (1 + (π/2·α·x)²) backward."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * (ALPHA / 2) / (1 + (math.pi / 2 * ALPHA * x) ** 2)


def reference(x: torch.Tensor, w: torch.Tensor, v_th: float = 1.0, v_reset: float = 0.0):
    """H_t = V_{t-1} + (X_t − (V_{t-1} − V_reset))·σ(w); S_t = Θ(H_t − V_th); hard reset."""
    v = torch.full_like(x[0], v_reset)
    spikes, hs, vs = [], [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - v_reset)) * torch.sigmoid(w)
        s = _Heaviside.apply(h - v_th)
        sd = s.detach()  # detach_reset=True
        v = h * (1 - sd) + v_reset * sd
        spikes.append(s)
        hs.append(h)
        vs.append(v)
    return torch.stack(spikes), torch.stack(hs), torch.stack(vs)


def test_plif_matches_hand_written_recurrence() -> None:
    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5) * 1.5 + 0.8).requires_grad_(True)
    node = plif()
    node.store_v_seq = True
    out = node(x)
    assert torch.equal(node.w.detach(), torch.tensor(0.0))  # init τ = 2 → w = 0
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = node.w.detach().clone().requires_grad_(True)
    ref_s, _ref_h, ref_v = reference(x_ref, w_ref)
    assert 0 < out.sum() < out.numel()  # some neurons fire, some don't
    assert torch.equal(out, ref_s)
    torch.testing.assert_close(node.v_seq, ref_v)
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    (ref_s * grad).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(node.w.grad, w_ref.grad)


def test_reset_net_clears_membrane() -> None:
    node = plif()
    first = node(torch.full((2, 1, 3), 0.9))
    reset_net(node)
    again = node(torch.full((2, 1, 3), 0.9))
    assert torch.equal(first, again)
    assert node.v_threshold == 1.0 and node.v_reset == 0.0 and node.detach_reset
