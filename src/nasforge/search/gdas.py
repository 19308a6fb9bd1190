"""GDAS (Dong & Yang, 2019): one Gumbel-softmax sample per edge, only the sampled op runs.

Per cell type α ∈ R^{E×K}. Every forward pass draws, for each edge (shared by all cells of
that type and by the whole batch; docs/zoo.md, GDAS),

    g = −log(Exp(1)),  p = softmax((log_softmax(α) + g) / τ),  idx = argmax p,

and feeds the straight-through weights h = onehot(idx) + (p − stopgrad(p)). That equals the
published onehot − stopgrad(p) + p in value and in gradient, but its value is exactly the
one-hot (1 − p + p need not round to 1), so with ``sparse = True`` the super-network runs only
op ``idx`` of each edge and the loss reaches α only through p_idx (and from there, through the
softmax, every entry of the edge's α). A draw with an infinite or NaN noise or probability is
redrawn. τ falls linearly from ``tau_max`` to ``tau_min``: τ_e = τ_max − (τ_max − τ_min)·e/(E−1).

The architecture step is first-order on the architecture batch with its own sample; the
weight step draws another one. Draws come from a private stream seeded by (seed, draw count),
both kept in the state dict, so a resumed search draws what an uninterrupted one draws.

Deviations from the published search (AutoDL's GDAS code):

- our loop runs the architecture step before the weight step (GDAS: weight step first), on
  two independent batches (GDAS pairs them); SGD without Nesterov momentum;
- :meth:`GDAS.eval_weights` is the deterministic argmax one-hot of α (AutoDL evaluates the
  super-network with a random sample);
- :meth:`GDAS.strengths` is softmax(α), as in GDAS, but the ``argmax`` rule derives the
  genotype the DARTS way (per node the two edges with the strongest non-none op); GDAS keeps
  the two strongest (op, input) pairs over all incoming edges, which can put two ops on one
  edge;
- the super-network has no BN + ReLU before global pooling.

In spaces where each edge holds its own ops (S1), the ops an edge does not hold get α = −inf
(p = 0): they are never drawn, chosen by :meth:`GDAS.eval_weights` or ranked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import SearchConfig, TemperatureOptions
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy, StepContext
from nasforge.search.sampling import DrawStream
from nasforge.spaces.darts.search_network import SearchNetwork


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """τ_e = τ_max − (τ_max − τ_min)·e/(E−1): τ_max at the first epoch, τ_min at the last."""
    if epochs <= 1:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * epoch / (epochs - 1))


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel noise −log(E), E ~ Exp(1), of ``like``'s shape (global RNG)."""
    return -torch.empty_like(like).exponential_().log()


def held_logits(strategy: SearchStrategy, logits: Tensor, kind: str) -> Tensor:
    """``logits`` with the ops an edge does not hold (per-edge spaces such as S1) at −inf."""
    mask_logits = getattr(strategy, "mask_logits", None)  # the base's per-edge op mask
    return logits if mask_logits is None else mask_logits(logits, kind)


def gumbel_soft(alpha: Tensor, tau: float, gumbels: Tensor) -> Tensor:
    """p = softmax((log_softmax(α) + g)/τ) along the last axis, for noise ``gumbels``."""
    return F.softmax((F.log_softmax(alpha, dim=-1) + gumbels) / tau, dim=-1)


def gumbel_hard(alpha: Tensor, tau: float, gumbels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(h, p, idx) for noise ``gumbels``: p = :func:`gumbel_soft`, idx = argmax p,
    h = onehot(idx) + (p − stopgrad(p)) (exactly one-hot in value)."""
    p = gumbel_soft(alpha, tau, gumbels)
    idx = p.argmax(dim=-1)
    onehot = F.one_hot(idx, alpha.shape[-1]).to(p.dtype)
    return onehot + (p - p.detach()), p, idx


@STRATEGIES.register("gdas")
class GDAS(DrawStream, SearchStrategy):
    """α ∈ R^{E×K} per cell type (``arch_init_std``·N(0, 1)); op weights are Gumbel one-hots."""

    options = (TemperatureOptions,)

    sparse = True

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "gdas")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.alphas = self.random_alphas(cfg.arch_init_std)
        self.tau = float(cfg.tau_max)
        self.start_stream()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.tau = linear_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)

    def sample(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One draw for both cell types: (h, p) dicts, differentiable in α; advances the stream."""
        alpha = torch.stack([held_logits(self, self.alphas[c], c) for c in CELL_TYPES])
        with self.private_rng(alpha.device):
            while True:
                gumbels = gumbel_noise(alpha)
                h, p, _ = gumbel_hard(alpha, self.tau, gumbels)
                if bool(torch.isfinite(gumbels).all() & torch.isfinite(p).all()):
                    break
        return (dict(zip(CELL_TYPES, h.unbind(0), strict=True)),
                dict(zip(CELL_TYPES, p.unbind(0), strict=True)))

    def op_weights(self) -> dict[str, Tensor]:
        """A fresh straight-through one-hot per edge (one op runs per edge)."""
        return self.sample()[0]

    def weight_step_weights(self, network: SearchNetwork, batch_w: tuple,
                            ctx: StepContext) -> dict[str, Tensor]:
        """The weight step's own sample (detached: exactly one-hot)."""
        with torch.no_grad():
            return self.sample()[0]

    def eval_weights(self) -> dict[str, Tensor]:
        """Deterministic: the one-hot of argmax α per edge (no noise), the most likely op."""
        with torch.no_grad():
            return {c: F.one_hot(held_logits(self, a, c).argmax(-1), a.shape[-1]).to(a.dtype)
                    for c, a in self.alphas.items()}

    def strengths(self) -> dict[str, Tensor]:
        """softmax(α), which GDAS's genotype ranks."""
        with torch.no_grad():
            return {c: F.softmax(held_logits(self, a, c), dim=-1).float().cpu()
                    for c, a in self.alphas.items()}

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """First-order: ∇α of the architecture batch's cross-entropy under a fresh sample."""
        x, y = batch_a
        weights = self.op_weights()
        with ctx.autocast():
            logits = network(x, weights)
        self.descend(F.cross_entropy(logits.float(), y), optimizer)

    def get_extra_state(self) -> dict[str, float | int]:
        return {**self.stream_state(), "tau": self.tau}

    def set_extra_state(self, state: dict[str, float | int]) -> None:
        self.load_stream(state)
        self.tau = float(state["tau"])
