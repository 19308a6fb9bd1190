"""DARTS (Liu et al., 2019): softmax over per-edge architecture parameters, first- or
second-order (unrolled) bi-level optimisation."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasforge.config import SearchConfig
from nasforge.distributed import current
from nasforge.search.base import STRATEGIES, SearchStrategy, StepContext
from nasforge.spaces.darts.search_network import SearchNetwork


def full_precision(*tensors: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off for the device of ``tensors``: the forwards inside run in float32.

    Under mixed precision (``run.amp``) a bf16 forward rounds every weight to 8 bits of
    mantissa, so a weight moved by ~1e-5 (DARTS's virtual step and finite-difference shift)
    is the same weight: such passes must run in full precision.
    """
    device = next((t.device for t in tensors), torch.device("cpu"))
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


@STRATEGIES.register("darts")
class DARTS(SearchStrategy):
    """α ∈ R^{E×K} per cell type, op weights softmax(α) along the op axis."""

    fd_scale = 0.01  # DARTS's finite-difference step: ε = fd_scale / ‖∇w′ L_val‖

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.alphas = self.random_alphas(cfg.arch_init_std)

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {c: F.softmax(self.mask_logits(a, c), dim=-1) for c, a in self.alphas.items()}

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        if self.cfg.order == "second":
            optimizer.zero_grad(set_to_none=True)
            self._unrolled_grads(network, batch_w, batch_a, ctx)
            optimizer.step()
            return
        x, y = batch_a
        with ctx.autocast():
            loss = F.cross_entropy(network(x, self.op_weights()), y)
        self.descend(loss, optimizer)

    def _unrolled_grads(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                        ctx: StepContext) -> None:
        """∇α L_val(w′) − ξ·∇²_{α,w} L_train(w) ∇_{w′} L_val(w′), by finite differences.

        w′ = w − ξ(μ·m + ∇w L_train + λw) is one virtual step of the weight optimiser (its
        momentum buffer m included), as in the DARTS paper's Eq. 7–8. Data-parallel, every
        gradient is averaged over the ranks' parts of its batch before it is used. All four
        passes run in float32 whatever ``run.amp`` says (:func:`full_precision`).
        """
        (xw, yw), (xa, ya) = batch_w, batch_a
        dist = current()
        names = [n for n, p in network.named_parameters() if p.requires_grad]
        params = [p for _, p in network.named_parameters() if p.requires_grad]
        group = ctx.w_optimizer.param_groups[0]
        mu, wd, xi = group.get("momentum", 0.0), group.get("weight_decay", 0.0), ctx.w_lr
        alphas = list(self.alphas.values())

        def loss_at(weights: dict[str, torch.Tensor] | None, x, y) -> torch.Tensor:
            # float32 even under run.amp: ξ·∇w and ε·∇w′ move each weight by ~1e-5, below
            # bf16's resolution, so in bf16 w′ = w and the finite difference is noise (the
            # hypergradient was ~20–50% off; tests/search/test_darts_precision.py).
            with ctx.autocast(), full_precision(x):
                if weights is None:
                    logits = network(x, self.op_weights())
                else:
                    logits = functional_call(network, weights, (x, self.op_weights()),
                                             strict=False)
            return F.cross_entropy(logits, y)

        train_grads = dist.average_(torch.autograd.grad(loss_at(None, xw, yw), params),
                                    len(yw))
        unrolled = {}
        for n, p, g in zip(names, params, train_grads, strict=True):
            buf = ctx.w_optimizer.state.get(p, {}).get("momentum_buffer")
            step = g + wd * p.detach()
            if buf is not None:
                step = step + mu * buf
            unrolled[n] = (p.detach() - xi * step).requires_grad_(True)
        val_loss = loss_at(unrolled, xa, ya)
        grads = dist.average_(torch.autograd.grad(val_loss, alphas + list(unrolled.values())),
                              len(ya))
        d_alpha, d_w = grads[: len(alphas)], grads[len(alphas):]
        eps = self.fd_scale / torch.cat([g.reshape(-1) for g in d_w]).norm()

        def alpha_grad_at(sign: float) -> tuple[torch.Tensor, ...]:
            shifted = {n: p.detach() + sign * eps * g
                       for n, p, g in zip(names, params, d_w, strict=True)}
            return tuple(dist.average_(torch.autograd.grad(loss_at(shifted, xw, yw), alphas),
                                       len(yw)))

        g_plus, g_minus = alpha_grad_at(1.0), alpha_grad_at(-1.0)
        for a, dv, gp, gm in zip(alphas, d_alpha, g_plus, g_minus, strict=True):
            a.grad = dv - xi * (gp - gm) / (2 * eps)
