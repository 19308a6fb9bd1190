"""GDAS in the NAS-Bench-1shot1 spaces (as NAS-Bench-1shot1's GDAS network).

NAS-Bench-1shot1's ``GDASNetwork.forward`` (optimizers/gdas/model_search.py, lines 89–107)
calls ``F.gumbel_softmax`` inside its loop over the cells, so every cell of every forward
pass gets its own Gumbel draw of the shared α. Here likewise: per forward pass one draw per
choice *and per cell* (weights of shape [layers, ...], from a private stream, see
:class:`~nasforge.search.gdas.GDAS`): the op of every block is a hard straight-through
one-hot (only the drawn op runs), while the parents (α_in) and the output (α_out) get the
*soft* Gumbel-softmax sample softmax((log_softmax(α) + g)/τ) — NAS-Bench-1shot1 found that
hard samples there made gradients explode (model_search.py, line 98).

τ follows the reference's schedule (train_search.py, lines 106–107 and 166–168): it starts
at ``tau_max`` and drops by (``tau_max`` − ``tau_min``)/E after every epoch, so epoch e
trains with τ_e = τ_max − (τ_max − τ_min)·e/E (10 → 1.09 over 100 epochs; τ_min = 1 would be
the next epoch's). The architecture gradient is clipped to norm ``grad_clip`` (the weights'
clip, 5, as ArchitectGDAS does: architect.py, line 26). The validation pass uses the argmax
op of each block and softmax(α) for the rest; strengths are softmax(α), which the
NAS-Bench-1shot1 discretisation ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.config import SearchConfig
from nasforge.distributed import current
from nasforge.search.base import StepContext
from nasforge.search.gdas import GDAS, gumbel_hard, gumbel_soft
from nasforge.search.oneshot import ONESHOT_STRATEGIES, assemble, choice_alphas, softmax_weights
from nasforge.spaces.nb101.network import OneShotNetwork


def reference_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """NAS-Bench-1shot1's GDAS temperature of epoch ``epoch`` (0-based): τ_max − Δ·e/E."""
    return float(tau_max - (tau_max - tau_min) * epoch / max(epochs, 1))


@ONESHOT_STRATEGIES.register("gdas")
class OneShotGDAS(GDAS):
    def __init__(self, network: OneShotNetwork, cfg: SearchConfig) -> None:
        self.space = network.space  # read by random_alphas during GDAS's set-up
        self.layers = len(network.cells)
        super().__init__(network, cfg)

    def random_alphas(self, std: float) -> nn.ParameterDict:
        return choice_alphas(self.space, std)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.tau = reference_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)

    def sample(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One draw for every choice of every cell: (weights, probabilities), each entry with
        a leading axis of ``layers``; advances the stream."""
        a = self.alphas
        with self.private_rng(a["ops"].device):
            while True:
                noise = {k: -torch.empty((self.layers, *v.shape), device=v.device,
                                         dtype=v.dtype).exponential_().log()
                         for k, v in a.items()}
                h, p, _ = gumbel_hard(a["ops"], self.tau, noise["ops"])
                soft = {k: gumbel_soft(v, self.tau, noise[k]) for k, v in a.items() if k != "ops"}
                parts = [noise[k] for k in noise] + [p, *soft.values()]
                if bool(torch.stack([torch.isfinite(t).all() for t in parts]).all()):
                    break  # one host read per draw
        inputs = {v: soft[f"in{v}"] for v in self.space.choice_vertices()}
        return (assemble(self.space, h, soft["output"], inputs),
                assemble(self.space, p, soft["output"], inputs))

    def arch_step(self, network: OneShotNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """First order under a fresh per-cell draw, the gradient clipped to ``grad_clip``."""
        x, y = batch_a
        with ctx.autocast():
            logits = network(x, self.op_weights())
        loss = F.cross_entropy(logits.float(), y)
        params = self.arch_parameters()
        optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            p.grad = g
        if self.cfg.grad_clip > 0:
            dist = current()
            if dist.enabled:  # clip the averaged gradient (the pre-step hook's average of
                dist.average_grads(params, len(y))  # equal gradients changes nothing)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        optimizer.step()

    def eval_weights(self) -> dict[str, Tensor]:
        with torch.no_grad():
            w = softmax_weights(self.space, self.alphas)
            w["ops"] = F.one_hot(self.alphas["ops"].argmax(-1), w["ops"].shape[-1]).to(
                w["ops"].dtype)
            return w

    def strengths(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return {k: v.float().cpu() for k, v in softmax_weights(self.space, self.alphas).items()}
