"""BtNAS (thesis §4.3): every op strength is its own Beta random variable.

Each op o_k of each edge of each cell type has θ ~ Beta(α, β) with α, β > 1. The mixed op is
Σ_k θ_k o_k(x) with no normalisation, so ops compete globally (top-k survival, §4.2.3) rather
than per edge. α and β are learned by minimising Eq. 4.5,

    E_θ~q[L_val(θ, w)] + λ · Σ KL(Beta(α, β) ‖ Beta(1, 1)),

with one pathwise (implicit reparameterisation, Eq. 4.6) sample of θ per step:
``torch.distributions.Beta.rsample`` is the Jankowiak–Obermeyer estimator the thesis cites.
The derivation strength of an op is its mean α / (α + β).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Beta

from nasforge.config import BtNASOptions, SearchConfig
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy, StepContext
from nasforge.search.sampling import DrawStream
from nasforge.spaces.darts.search_network import SearchNetwork


def positive_above_one(raw: Tensor) -> Tensor:
    """1 + softplus(raw): keeps α, β > 1 (§4.3) with a smooth, non-vanishing slope."""
    return 1.0 + F.softplus(raw)


def kl_to_uniform(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise KL(Beta(a, b) ‖ Beta(1, 1)) in closed form (ln B(1, 1) = 0)."""
    log_beta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    return (-log_beta + (a - 1) * torch.digamma(a) + (b - 1) * torch.digamma(b)
            - (a + b - 2) * torch.digamma(a + b))


@STRATEGIES.register("btnas")
class BtNAS(DrawStream, SearchStrategy):
    """Raw parameters ρ_α, ρ_β ∈ R^{E×K} per cell type; α = 1 + softplus(ρ_α), same for β.

    ρ starts at ``arch_init_std``·N(0, 1) (the DARTS initialisation), i.e. α ≈ β ≈ 1 + ln 2:
    mean ½ for every op and a broad hump close to the Beta(1, 1) prior; the thesis gives no
    initialisation. ``op_weights()`` draws a fresh θ each call (weight steps and evaluation
    see sampled strengths, as Eq. 4.5's w*(θ) and §4.3's multi-model-forgetting argument
    require); ``strengths()`` is the mean used for derivation.
    """

    options = (BtNASOptions,)

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "btnas", " (thesis §4.3)")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.raw_alpha = self.random_alphas(cfg.arch_init_std)
        self.raw_beta = self.random_alphas(cfg.arch_init_std)
        self.start_stream()

    def concentrations(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Per cell type the (α, β) tensors, both [E, K] and > 1."""
        return {c: (positive_above_one(self.raw_alpha[c]), positive_above_one(self.raw_beta[c]))
                for c in CELL_TYPES}

    def distribution(self) -> Beta:
        """One Beta over both cell types, batch shape [2, E, K] (normal, reduce)."""
        conc = self.concentrations()
        # validate_args=False: the checks would sync a GPU every step, and α, β > 1 by design
        return Beta(torch.stack([conc[c][0] for c in CELL_TYPES]),
                    torch.stack([conc[c][1] for c in CELL_TYPES]), validate_args=False)

    def sample(self) -> dict[str, Tensor]:
        """θ ~ Beta(α, β) with the pathwise gradient to α and β; advances the draw counter."""
        dist = self.distribution()
        with self.private_rng(dist.concentration1.device):
            theta = dist.rsample()
        return dict(zip(CELL_TYPES, theta.unbind(0), strict=True))

    def op_weights(self) -> dict[str, Tensor]:
        return self.sample()

    def strengths(self) -> dict[str, Tensor]:
        """E[θ] = α / (α + β) (§4.3), the strength the top-k / argmax rules rank."""
        with torch.no_grad():
            return {c: (a / (a + b)).float().cpu() for c, (a, b) in self.concentrations().items()}

    def kl(self) -> Tensor:
        """Σ over both cells' ops of KL(Beta(α, β) ‖ Beta(1, 1)), the prior of Eq. 4.5."""
        return sum(kl_to_uniform(a, b).sum() for a, b in self.concentrations().values())

    def arch_loss(self, network: SearchNetwork, batch: tuple, theta: dict[str, Tensor],
                  ctx: StepContext | None = None) -> Tensor:
        """Eq. 4.5's upper-level loss for one θ: L_val(θ, w) + λ·Σ KL."""
        x, y = batch
        if ctx is None:
            logits = network(x, theta)
        else:
            with ctx.autocast():
                logits = network(x, theta)
        return F.cross_entropy(logits.float(), y) + self.cfg.kl_weight * self.kl()

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """One first-order step on ρ_α, ρ_β with a single pathwise sample of θ."""
        self.descend(self.arch_loss(network, batch_a, self.sample(), ctx), optimizer)
