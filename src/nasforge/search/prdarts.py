"""PR-DARTS (Zhou et al., 2020): stochastic hard-concrete gates, k active ops per edge, and a
regulariser on the activation probabilities of op groups and of a conv path (docs/zoo.md, PR-DARTS).

Per cell type α ∈ R^{E×K}. Each forward pass draws, per op of every edge (shared by all cells
of a type and the whole batch),

    u ~ U(0, 1),  s = clamp(σ((α + log u − log(1 − u))/τ)·(b − a) + a, 0, 1),  a = −0.1, b = 1.1,

drops each op with probability ``op_dropout`` (its score becomes s − 1), breaks ties with a
random permutation of the ops (one per cell type and draw, as in the official code), and keeps
the ``keep_ops`` best scores as the mask m. The op weights are h = m + (s − stopgrad(s)): the
published m − stopgrad(s) + s in value and gradient, but exactly m in value, so with
``sparse = True`` only the kept ops run. τ falls linearly from ``tau_max`` to ``tau_min``
(PR-DARTS: 1 → 0.1; its config files set them).

The architecture loss is CE + R on the architecture batch with its own draw. With the
activation probability π = σ(α − τ·log(−a/b)), counted only on the kept ops of that draw,

- group values (skip, pool, non-skip) = ½·(mean π over the group's kept ops of the normal
  cell) + ½·(the same for the reduce cell), a cell with no kept op of the group giving 0,
  each entering as the hinge max(0, g − ``reg_hinge``);
- path = ½·(normal + reduce) of Π_e (mean π of the kept convs of edge e) over the chain edges
  e that keep at least one conv, 0 when none does;
- R = λ₁·skip + λ₂·(non-skip + pool) − λ₃·path, (λ₁, λ₂, λ₃) = ``reg_weights``.

Groups are taken by op name, so any space works (a group the space lacks contributes 0):
skip = ``skip_connect``; pool = every ``*pool*`` op; non-skip = all the others, ``none``
included (the official indices {0, 2–5} of the DARTS op set). The path's "convs" are the ops
whose name contains ``conv`` (sep/dil convs: indices 2–5). Our reading of the chain
c_{k−1} → n0 → n1 → … : in :func:`~nasforge.spaces.darts.genotype.cell_edges` order, the edge
(i, j) with i = j − 1 into every intermediate node j, i.e. the last edge into each node (edges
1, 4, 8, 13 with 4 nodes: the official ``0<-1, 1<-2, 2<-3, 3<-4``).

Draws come from a private stream seeded by (seed, draw count), kept in the state dict, so a
resumed search draws what an uninterrupted one draws. In spaces where each edge holds its own
ops (S1), an op the edge does not hold is never kept, evaluated or ranked.

Deviations: our loop runs the architecture step before the weight step (PR-DARTS: weight
step first), on independent batches; SGD without Nesterov momentum. :meth:`eval_weights` is
deterministic (the ``keep_ops`` ops of largest α per edge, the noise-free gates' top-k).
:meth:`strengths` is softmax(α) as in PR-DARTS's genotype, but the ``argmax`` rule derives
the DARTS way (per node the two edges with the strongest non-none op) where PR-DARTS keeps
the two strongest (op, input) pairs over all incoming edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import PRDARTSOptions, SearchConfig, TemperatureOptions
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy, StepContext
from nasforge.search.gdas import held_logits, linear_tau
from nasforge.search.sampling import DrawStream
from nasforge.spaces.darts.genotype import cell_edges
from nasforge.spaces.darts.search_network import SearchNetwork

LIMIT_A, LIMIT_B = -0.1, 1.1
"""The hard-concrete stretch interval (a, b)."""


def hard_concrete_gates(alpha: Tensor, tau: float, u: Tensor) -> Tensor:
    """s = clamp(σ((α + log u − log(1 − u))/τ)·(b − a) + a, 0, 1) for uniforms ``u``."""
    logits = (alpha + torch.log(u) - torch.log1p(-u)) / tau
    return (torch.sigmoid(logits) * (LIMIT_B - LIMIT_A) + LIMIT_A).clamp(0.0, 1.0)


def activation_probability(alpha: Tensor, tau: float) -> Tensor:
    """π = σ(α − τ·log(−a/b))."""
    return torch.sigmoid(alpha - tau * math.log(-LIMIT_A / LIMIT_B))


def top_k_mask(scores: Tensor, k: int, perm: Tensor) -> Tensor:
    """0/1 mask of the k best scores per row; ties go to the op earlier in ``perm``.

    A score of −inf (an op the edge does not hold) is never kept.
    """
    order = torch.sort(scores[..., perm], dim=-1, descending=True, stable=True).indices
    top = perm[order[..., :k]]
    mask = torch.zeros_like(scores).scatter_(-1, top, 1.0)
    return mask.masked_fill_(scores == float("-inf"), 0.0)


@dataclass
class GateSample:
    """One draw for one cell type, all [E, K]: gates s, dropped ops, mask m, weights h."""

    gates: Tensor
    dropped: Tensor
    mask: Tensor
    weights: Tensor


@STRATEGIES.register("prdarts")
class PRDARTS(DrawStream, SearchStrategy):
    """α ∈ R^{E×K} per cell type (``arch_init_std``·N(0, 1)); gates select ``keep_ops`` ops."""

    options = (TemperatureOptions, PRDARTSOptions)

    sparse = True

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "prdarts")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.alphas = self.random_alphas(cfg.arch_init_std)
        self.k = min(cfg.keep_ops, len(self.primitives))
        self.tau = float(cfg.tau_max)
        names = list(self.primitives)
        self.groups = {
            "skip": [i for i, n in enumerate(names) if n == "skip_connect"],
            "pool": [i for i, n in enumerate(names) if "pool" in n],
        }
        self.groups["nonskip"] = [i for i in range(len(names))
                                  if i not in self.groups["skip"] + self.groups["pool"]]
        self.convs = [i for i, n in enumerate(names) if "conv" in n]
        self.chain = [e for e, (i, j) in enumerate(cell_edges(self.nodes)) if i == j - 1]
        self.start_stream()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.tau = linear_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)

    def sample(self) -> dict[str, GateSample]:
        """One draw for both cell types, differentiable in α; advances the stream."""
        alpha = torch.stack([self.alphas[c] for c in CELL_TYPES])
        with self.private_rng(alpha.device):
            u = torch.rand_like(alpha)
            dropped = torch.bernoulli(torch.full_like(alpha, self.cfg.op_dropout))
            perms = [torch.randperm(alpha.shape[-1], device=alpha.device) for _ in CELL_TYPES]
        gates = hard_concrete_gates(alpha, self.tau, u)
        out = {}
        for c, s, d, perm in zip(CELL_TYPES, gates.unbind(0), dropped.unbind(0), perms,
                                 strict=True):
            m = top_k_mask(held_logits(self, s.detach() - d, c), self.k, perm)
            out[c] = GateSample(gates=s, dropped=d, mask=m, weights=m + (s - s.detach()))
        return out

    def op_weights(self) -> dict[str, Tensor]:
        """A fresh draw's straight-through weights (``keep_ops`` ops per edge, value 1)."""
        return {c: g.weights for c, g in self.sample().items()}

    def weight_step_weights(self, network: SearchNetwork, batch_w: tuple,
                            ctx: StepContext) -> dict[str, Tensor]:
        """The weight step's own draw (detached: exactly the 0/1 mask)."""
        with torch.no_grad():
            return self.op_weights()

    def eval_weights(self) -> dict[str, Tensor]:
        """Deterministic: weight 1 on the ``keep_ops`` ops of largest α per edge."""
        with torch.no_grad():
            identity = torch.arange(len(self.primitives), device=self.alphas["normal"].device)
            return {c: top_k_mask(held_logits(self, a, c), self.k, identity)
                    for c, a in self.alphas.items()}

    def strengths(self) -> dict[str, Tensor]:
        """softmax(α), which PR-DARTS's genotype ranks."""
        with torch.no_grad():
            return {c: F.softmax(held_logits(self, a, c), dim=-1).float().cpu()
                    for c, a in self.alphas.items()}

    @staticmethod
    def _masked_mean(pi: Tensor, mask: Tensor) -> Tensor:
        """Mean of ``pi`` over the entries where ``mask`` is 1; 0 when there are none."""
        return (pi * mask).sum() / mask.sum().clamp(min=1.0)

    def regulariser(self, masks: dict[str, Tensor]) -> Tensor:
        """R = λ₁·skip + λ₂·(non-skip + pool) − λ₃·path for the kept-op ``masks``."""
        pis = {c: activation_probability(self.alphas[c], self.tau) for c in CELL_TYPES}
        zero = pis["normal"].new_zeros(())
        hinge = {}
        for name, cols in self.groups.items():
            g = zero
            if cols:
                g = sum(0.5 * self._masked_mean(pis[c][:, cols], masks[c][:, cols])
                        for c in CELL_TYPES)
            hinge[name] = torch.relu(g - self.cfg.reg_hinge)
        path = zero
        if self.convs:
            path = sum(0.5 * self._path(pis[c], masks[c]) for c in CELL_TYPES)
        l1, l2, l3 = self.cfg.reg_weights
        return l1 * hinge["skip"] + l2 * (hinge["nonskip"] + hinge["pool"]) - l3 * path

    def _path(self, pi: Tensor, mask: Tensor) -> Tensor:
        """Π over chain edges keeping a conv of their kept convs' mean π; 0 if none keeps one."""
        m = mask[self.chain][:, self.convs]
        p = pi[self.chain][:, self.convs]
        count = m.sum(-1)
        means = (p * m).sum(-1) / count.clamp(min=1.0)
        has = count > 0
        product = torch.where(has, means, torch.ones_like(means)).prod()
        return torch.where(has.any(), product, torch.zeros_like(product))

    def arch_loss(self, network: SearchNetwork, batch: tuple,
                  ctx: StepContext | None = None) -> Tensor:
        """CE of the architecture batch under a fresh draw + R of that draw's kept ops."""
        x, y = batch
        draw = self.sample()
        weights = {c: g.weights for c, g in draw.items()}
        if ctx is None:
            logits = network(x, weights)
        else:
            with ctx.autocast():
                logits = network(x, weights)
        reg = self.regulariser({c: g.mask for c, g in draw.items()})
        return F.cross_entropy(logits.float(), y) + reg

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """First-order: ∇α (CE + R) on the architecture batch."""
        self.descend(self.arch_loss(network, batch_a, ctx), optimizer)

    def get_extra_state(self) -> dict[str, float | int]:
        return {**self.stream_state(), "tau": self.tau}

    def set_extra_state(self, state: dict[str, float | int]) -> None:
        self.load_stream(state)
        self.tau = float(state["tau"])
