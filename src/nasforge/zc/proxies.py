"""Zero-cost proxies: score an untrained network from one batch, higher = better.

Every proxy is a function ``(model, inputs, targets, loss_fn) -> float`` registered in
:data:`PROXIES` under the name users type (``synflow``), wrapped in a :class:`Proxy` that
records its paper, the batch size the paper used and whether nasforge's value is the
negation of the quantity the paper names. ``model`` maps a batch ``[N, C, H, W]`` to logits
``[N, classes]`` (an SNN: firing rates, its neurons reset before every forward; see
:mod:`nasforge.zc.score`). Each proxy works on a deep copy, so the model passed in is left as
it was (weights, gradients, batch-norm statistics).

The per-weight proxies (synflow, snip, grasp, grad_norm, fisher) read the weights of the
``nn.Conv2d`` and ``nn.Linear`` layers only, as Abdelfattah et al. (2021) do; biases, batch
norm and other parameters (an SNN's decay) are left out. Networks run in training mode
(batch statistics in batch norm), as in their code and in Mellor et al.'s. All sums are
taken in float64.

Signs: after normalisation every proxy ranks a better architecture higher. ``grasp`` is
``−Σ θ ⊙ Hg`` (Abdelfattah et al.'s sign: the GraSP paper's per-weight score, summed) and
``jacob_cov`` is ``−Σ_i [log(σ_i + k) + 1/(σ_i + k)]`` (Mellor et al.'s formula carries the
minus); both are marked ``negated``. Every other proxy is a non-negative size (magnitudes,
log-determinant, counts) taken as it is.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nasforge.registry import Registry

__all__ = [
    "JACOB_COV_K",
    "PROXIES",
    "Proxy",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "jacob_cov_score",
    "naswot",
    "naswot_kernel",
    "params",
    "register_proxy",
    "snip",
    "synflow",
    "weight_layers",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
ProxyFn = Callable[[nn.Module, Tensor, Tensor, LossFn], float]

JACOB_COV_K = 1e-5
"""Mellor et al. (2020, v1)'s small constant added to every eigenvalue."""


@dataclass(frozen=True)
class Proxy:
    """A registered proxy: its function and what the documentation says about it."""

    name: str
    fn: ProxyFn
    batch_size: int
    """Examples per batch in the proxy's published setting (synflow: 1 all-ones input)."""
    paper: str
    negated: bool = False
    """True when the value is the negation of the quantity the paper names."""
    uses_data: bool = True
    """False for the data-independent ones (synflow's all-ones input, params, flops)."""

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor,
                 loss_fn: LossFn) -> float:
        return float(self.fn(model, inputs, targets, loss_fn))


PROXIES: Registry[Proxy] = Registry("zero-cost proxy")


def register_proxy(name: str, batch_size: int, paper: str, *, negated: bool = False,
                   uses_data: bool = True) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: register ``fn(model, inputs, targets, loss_fn) -> float`` as proxy ``name``
    (higher must mean better; ``batch_size`` is the examples it reads by default)."""
    def add(fn: ProxyFn) -> ProxyFn:
        PROXIES.register(name)(Proxy(name, fn, batch_size, paper, negated, uses_data))
        return fn

    return add


# --------------------------------------------------------------------------- helpers


def weight_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The conv and linear layers whose weights the per-weight proxies score, module order."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy in training mode with no gradients, so the caller's model is untouched."""
    net = copy.deepcopy(model)
    net.train()
    for p in net.parameters():
        p.grad = None
        p.requires_grad_(True)
    return net


def _identity(x: Tensor) -> Tensor:
    return x


def _without_batch_norm(net: nn.Module) -> nn.Module:
    """Every batch-norm layer becomes the identity (its forward is replaced in place)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = _identity  # type: ignore[method-assign]
    return net


def _sum(values: list[Tensor]) -> float:
    """The float64 sum of every element of ``values``, on whichever device they are: the
    0-dim CPU start combines with tensors on any device, and the host reads it once."""
    total = torch.zeros((), dtype=torch.float64)
    for v in values:
        total = total + v.detach().double().sum()
    return float(total)


# --------------------------------------------------------------------------- the proxies


@register_proxy("synflow", 1,
                "Tanaka et al. 2020 (SynFlow); as a NAS proxy Abdelfattah et al. 2021",
                uses_data=False)
def synflow(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Synaptic flow: ``Σ_θ |θ ⊙ ∂R/∂θ|`` with ``R = 1ᵀ f_|θ|(1)``.

    Every weight and buffer is replaced by its absolute value, batch norm is removed (its
    forward becomes the identity: with one constant input its batch statistics would zero the
    signal), the network runs in float64 on a single all-ones input of the data's shape, and
    the sum of its outputs is back-propagated (Abdelfattah et al.'s ``synflow``, ``bn=False``).
    Data-independent: ``inputs`` only gives the shape, ``targets`` and the loss are unused.
    """
    net = _without_batch_norm(_copy(model))
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    net.double()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    net(ones).sum().backward()
    layers = weight_layers(net)
    return _sum([(m.weight * m.weight.grad).abs() for m in layers if m.weight.grad is not None])


@register_proxy("grad_norm", 64, "Abdelfattah et al. 2021 (grad_norm)")
def grad_norm(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """``Σ_ℓ ‖∂L/∂W_ℓ‖₂``: the Euclidean norm of each conv/linear layer's weight gradient of
    the loss on one batch, summed over the layers (not the norm of the whole gradient)."""
    net = _copy(model)
    loss_fn(net(inputs), targets).backward()
    return _sum([m.weight.grad.double().norm() for m in weight_layers(net)
                 if m.weight.grad is not None])


@register_proxy("snip", 64, "Lee et al. 2019 (SNIP); as a NAS proxy Abdelfattah et al. 2021")
def snip(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Connection sensitivity ``Σ_θ |θ ⊙ ∂L/∂θ|`` over conv/linear weights on one batch (the
    gradient of the loss with respect to a multiplicative mask of ones, which is θ ⊙ ∂L/∂θ)."""
    net = _copy(model)
    loss_fn(net(inputs), targets).backward()
    return _sum([(m.weight * m.weight.grad).abs() for m in weight_layers(net)
                 if m.weight.grad is not None])


@register_proxy("grasp", 64, "Wang et al. 2020 (GraSP); as a NAS proxy Abdelfattah et al. 2021",
                negated=True)
def grasp(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Gradient signal preservation ``−Σ_θ θ ⊙ (H g)`` over conv/linear weights.

    ``g = ∂L/∂θ`` on the batch (held constant), ``H g = ∂(gᵀ ∂L/∂θ)/∂θ`` the Hessian-gradient
    product from a second pass through the same batch. Negated: the value is minus the summed
    ``θ ⊙ Hg`` (Abdelfattah et al. found accuracy correlates with it only this way round).
    """
    net = _copy(model)
    layers = weight_layers(net)
    weights = [m.weight for m in layers]
    first = torch.autograd.grad(loss_fn(net(inputs), targets), weights, allow_unused=True)
    second = torch.autograd.grad(loss_fn(net(inputs), targets), weights, create_graph=True,
                                 allow_unused=True)
    z = sum(((g.detach() * h).sum() for g, h in zip(first, second, strict=True)
             if g is not None and h is not None), torch.zeros((), device=inputs.device))
    if not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return -_sum([w.detach() * h for w, h in zip(weights, hg, strict=True) if h is not None])


@register_proxy("fisher", 64, "Theis et al. 2018 (Fisher pruning); as a NAS proxy Abdelfattah et "
                "al. 2021")
def fisher(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Fisher information of the conv/linear output channels, summed as Abdelfattah et al. do.

    For a layer's output ``a`` (before batch norm) and ``g = ∂L/∂a``, channel ``k`` scores
    ``F_k = ½ · mean_n (Σ_pos a_nk · g_nk)²`` (``pos``: spatial positions; in an SNN also the
    time steps of the same example, whose T·N merged axis is split back). Each channel's value
    is counted once per weight of that channel (``fan_in = C_in/groups · kh · kw``, or
    ``in_features``), so the proxy is ``Σ_ℓ fan_in_ℓ · Σ_k F_k`` — Abdelfattah et al.'s
    per-weight broadcast followed by their sum. A layer called several times adds up.
    """
    net = _copy(model)
    batch = inputs.shape[0]
    totals: list[Tensor] = []
    handles = []

    def hook(module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        fan_in = module.weight[0].numel()

        def on_grad(grad: Tensor) -> None:
            prod = (out.detach() * grad.detach()).double()
            if prod.shape[0] != batch and prod.shape[0] % batch == 0:
                prod = prod.reshape(prod.shape[0] // batch, batch, *prod.shape[1:]).sum(0)
            per_example = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            totals.append(fan_in * 0.5 * per_example.pow(2).mean(0).sum())

        if out.requires_grad:
            out.register_hook(on_grad)

    for m in weight_layers(net):
        handles.append(m.register_forward_hook(hook))
    try:
        loss_fn(net(inputs), targets).backward()
    finally:
        for h in handles:
            h.remove()
    return _sum(totals)


def jacob_cov_score(jacobians: Tensor, k: float = JACOB_COV_K) -> float:
    """Mellor et al. (2020, v1): ``−Σ_i [log(σ_i + k) + 1/(σ_i + k)]``, σ the eigenvalues of
    the correlation matrix of the rows (one flattened input Jacobian per example)."""
    j = jacobians.reshape(jacobians.shape[0], -1).double()
    corr = torch.corrcoef(j)
    if not bool(torch.isfinite(corr).all()):
        return math.nan  # an example whose Jacobian is constant has no correlation
    sigma = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(sigma + k) + 1.0 / (sigma + k)).sum())


@register_proxy("jacob_cov", 128, "Mellor et al. 2020 (NAS without training, arXiv v1)",
                negated=True)
def jacob_cov(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Jacobian covariance: the input gradient of the summed outputs, one row per example,
    scored by :func:`jacob_cov_score` (low correlation between examples scores high).
    Negated: the formula is minus a sum that grows with correlation. NaN when an example's
    Jacobian is constant (its correlation is undefined)."""
    net = _copy(model)
    x = inputs.detach().clone().requires_grad_(True)
    y = net(x)
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    return jacob_cov_score(x.grad)


def naswot_kernel(codes: Tensor) -> Tensor:
    """``K_H[i, j] = N_A − d_H(c_i, c_j)`` for binary codes ``[N, N_A]``: the number of units
    on which examples i and j agree (``c cᵀ + (1 − c)(1 − c)ᵀ``), in float64."""
    c = codes.double()
    return c @ c.T + (1 - c) @ (1 - c).T


@register_proxy("naswot", 128, "Mellor et al. 2021 (NASWOT, ICML)")
def naswot(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """``log |K_H|`` over the batch, ``K_H`` from :func:`naswot_kernel` on the binary codes of
    every rectified unit: each ``nn.ReLU`` output > 0, and in an SNN each spiking neuron's
    spikes at every time step (Kim et al. 2022's SNN form: the spike pattern is the code).
    Every call of an activation adds its units (Mellor et al.'s code also skips units off
    the output's backward path; nasforge's scored networks build none). ``−inf`` when
    ``K_H`` is singular: two examples with the same code, or fewer units than examples
    less one (rank ≤ N_A + 1). No gradients; the loss is unused."""
    from nasforge.snn.neuron import is_neuron

    net = _copy(model)
    batch = inputs.shape[0]
    kernel = torch.zeros((batch, batch), dtype=torch.float64)
    handles = []

    def hook(module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal kernel
        code = out.detach() > 0
        time_major = is_neuron(module) or (code.shape[0] != batch and code.dim() > 1
                                           and code.shape[1] == batch)
        if time_major:  # multi-step layers emit [T, N, ...]: example n's code spans all T
            code = code.transpose(0, 1)
        kernel = kernel + naswot_kernel(code.reshape(batch, -1)).cpu()

    for m in net.modules():
        if isinstance(m, nn.ReLU) or is_neuron(m):
            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


@register_proxy("params", 0, "baseline: number of parameters", uses_data=False)
def params(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Parameters of the modules a forward pass runs (each counted once): a one-shot network
    with fixed 0/1 op weights counts only the ops its cell uses. Data-independent."""
    seen: dict[int, int] = {}
    handles = []

    def hook(module: nn.Module, _inp: tuple[Tensor, ...], _out: object) -> None:
        for p in module.parameters(recurse=False):
            seen[id(p)] = p.numel()

    net = copy.deepcopy(model)
    for m in net.modules():
        handles.append(m.register_forward_hook(hook))
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros((1, *inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device))
    finally:
        for h in handles:
            h.remove()
    return float(sum(seen.values()))


@register_proxy("flops", 0, "baseline: multiply-adds of one forward pass", uses_data=False)
def flops(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> float:
    """Multiply-adds of the conv and linear layers for one example
    (:func:`nasforge.describe.count_flops`; an SNN counts its layers at every time step).
    Data-independent."""
    from nasforge.describe import count_flops

    return float(count_flops(copy.deepcopy(model), tuple(int(d) for d in inputs.shape[1:])))
