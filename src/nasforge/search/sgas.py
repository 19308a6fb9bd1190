"""SGAS (Li et al., 2020), criterion 1: greedy, sequential edge decisions on first-order DARTS.

The architecture is trained as in first-order DARTS (softmax over α ∈ R^{E×K} per cell type).
After each epoch e ≥ ``decision_start`` with (e − ``decision_start``) mod ``decision_every``
= 0, every cell type fixes one still undecided edge (docs/zoo.md, SGAS):

- P = softmax(α_edge), edge importance EI = Σ_{o≠none} P_o, p̃ = P_{o≠none} / EI,
- selection certainty SC = 1 − H(p̃) / log(#non-none ops),
- score = N(EI) · N(SC), N the min-max normalisation over **all** edges of the cell type
  (decided ones included); the best undecided edge wins,
- the edge is fixed to its argmax non-none op: its weights become a constant one-hot and its
  α is frozen (restored after every optimiser step, so neither Adam's momentum nor its weight
  decay moves it, as ``requires_grad=False`` does in the original),
- ``check_edges``: a node with 2 fixed edges has its other edges pruned (weight 0, α frozen).

``sparse = True``, so the super-network skips every op whose weight is exactly 0: pruned edges
and the other ops of fixed edges are neither computed nor trained. Undecided edges keep their
softmax weights (never exactly 0), so they still run every op.

The decision after epoch e is taken in :meth:`SGAS.start_epoch` of epoch e + 1, before any
step of that epoch, which is the same point of the schedule; the decisions (and the last
epoch decided) are buffers, so a resumed run continues with them. The decision after the
final epoch would change nothing that is trained, so it is not taken; with the published
schedule (start 9, every 5, 50 epochs) the last decision is after epoch 44, and all 8 edges
of a 4-node cell are fixed. ``strengths()`` are the op weights: one-hot on fixed edges, zeros
on pruned edges, softmax(α) elsewhere, so the ``argmax`` derivation returns the SGAS cell.

Deviation: SGAS grows the batch size by 8 after every decision (64 → 128) and rebuilds its
loaders; our loop keeps ``search.batch_size`` constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import SearchConfig, SGASOptions
from nasforge.errors import NasforgeError
from nasforge.search.base import CELL_TYPES, STRATEGIES, StepContext
from nasforge.search.darts import DARTS
from nasforge.spaces.darts.genotype import cell_edges
from nasforge.spaces.darts.search_network import SearchNetwork

UNDECIDED = -1
"""Choice code of an edge still mixed by softmax(α)."""
PRUNED = -2
"""Choice code of an edge removed by ``check_edges`` (weight 0). Codes ≥ 0 are fixed ops."""


def min_max(v: Tensor) -> Tensor:
    """SGAS's ``normalize``: (v − min) / (max − min), all zeros when v is constant."""
    low, span = v.min(), v.max() - v.min()
    return (v - low) / span if span > 0 else torch.zeros_like(v)


def sgas_scores(alpha: Tensor, primitives: Sequence[str]) -> Tensor:
    """Criterion 1 of every edge of one cell type: N(EI) · N(SC), shape [E]."""
    ops = [k for k, p in enumerate(primitives) if p != "none"]
    P = F.softmax(alpha.detach().double(), dim=-1)
    importance = P[:, ops].sum(-1)
    p = P[:, ops] / importance[:, None]
    entropy = -torch.special.xlogy(p, p).sum(-1)
    norm = math.log(len(ops)) if len(ops) > 1 else 1.0
    certainty = 1.0 - entropy / norm
    return min_max(importance) * min_max(certainty)


def is_decision_epoch(epoch: int, start: int, every: int) -> bool:
    """True after the 0-based epochs start, start + every, ..."""
    return epoch >= start and (epoch - start) % every == 0


@STRATEGIES.register("sgas")
class SGAS(DARTS):
    """First-order DARTS whose edges are fixed one per decision epoch and cell type."""

    options = (SGASOptions,)

    sparse = True

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "sgas")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        if not any(p != "none" for p in self.primitives):
            raise NasforgeError("sgas needs an op other than 'none'")
        self.candidate_ops = [k for k, p in enumerate(self.primitives) if p != "none"]
        self.edges = cell_edges(self.nodes)
        for c in CELL_TYPES:
            self.register_buffer(f"choice_{c}",
                                 torch.full((self.num_edges,), UNDECIDED, dtype=torch.long))
        # the last epoch whose decision has been applied (-1: none yet)
        self.register_buffer("decided_after", torch.tensor(-1, dtype=torch.long))

    def choices(self, cell: str) -> Tensor:
        """Per edge: ``UNDECIDED``, ``PRUNED`` or the index of the fixed op."""
        return getattr(self, f"choice_{cell}")

    def op_weights(self) -> dict[str, Tensor]:
        out = {}
        for c, a in self.alphas.items():
            choice = self.choices(c)
            fixed = F.one_hot(choice.clamp(min=0), a.shape[-1]) * (choice >= 0)[:, None]
            decided = (choice != UNDECIDED)[:, None]
            out[c] = torch.where(decided, fixed.to(a.dtype), F.softmax(a, dim=-1))
        return out

    def scores(self) -> dict[str, Tensor]:
        """Criterion 1 of every edge (decided ones too), per cell type."""
        return {c: sgas_scores(a, self.primitives) for c, a in self.alphas.items()}

    @torch.no_grad()
    def decide(self) -> dict[str, tuple[int, int] | None]:
        """Fix the best undecided edge of each cell type, then prune; returns (edge, op)."""
        made: dict[str, tuple[int, int] | None] = {}
        for c, score in self.scores().items():
            choice = self.choices(c)
            candidates = (choice == UNDECIDED).to(score.device)
            if not candidates.any():
                made[c] = None
                continue
            edge = int(score.masked_fill(~candidates, -math.inf).argmax())
            probs = F.softmax(self.alphas[c][edge].double(), dim=-1)[self.candidate_ops]
            op = self.candidate_ops[int(probs.argmax())]
            choice[edge] = op
            self._check_edges(choice)
            made[c] = (edge, op)
        return made

    def _check_edges(self, choice: Tensor) -> None:
        """SGAS ``check_edges``: prune the undecided edges of nodes with 2 decided edges."""
        for node in range(2, 2 + self.nodes):
            incoming = [e for e, (_, j) in enumerate(self.edges) if j == node]
            if sum(int(choice[e]) != UNDECIDED for e in incoming) >= 2:
                for e in incoming:
                    if int(choice[e]) == UNDECIDED:
                        choice[e] = PRUNED

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Apply the decision due after epoch ``epoch − 1`` (once, even if called again)."""
        previous = epoch - 1
        if previous > int(self.decided_after) and is_decision_epoch(
                previous, self.cfg.decision_start, self.cfg.decision_every):
            self.decide()
            self.decided_after.fill_(previous)

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """First-order DARTS step; fixed and pruned rows of α get no gradient and stay put."""
        optimizer.zero_grad(set_to_none=True)
        x, y = batch_a
        with ctx.autocast():
            loss = F.cross_entropy(network(x, self.op_weights()).float(), y)
        alphas = list(self.alphas.values())
        grads = torch.autograd.grad(loss, alphas)
        frozen = [(self.choices(c) != UNDECIDED)[:, None] for c in self.alphas]
        saved = [a.detach().clone() for a in alphas]
        for a, g, f in zip(alphas, grads, frozen, strict=True):
            a.grad = g.masked_fill(f, 0.0)
        optimizer.step()
        with torch.no_grad():
            for a, s, f in zip(alphas, saved, frozen, strict=True):
                a.copy_(torch.where(f, s, a))
