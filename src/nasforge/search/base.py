"""The interface every differentiable search strategy implements.

A strategy owns the architecture parameters and decides how they become per-edge op
weights; the super-network (:class:`~nasforge.spaces.darts.search_network.SearchNetwork`)
only mixes ops with the weights it is given. The search loop owns the network weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nasforge.config import SearchConfig
from nasforge.errors import NasforgeError
from nasforge.registry import Registry
from nasforge.spaces.darts.search_network import SearchNetwork

STRATEGIES: Registry[type[SearchStrategy]] = Registry("search algorithm")

CELL_TYPES = ("normal", "reduce")


@dataclass
class StepContext:
    """What an architecture step may need besides the batches."""

    w_optimizer: torch.optim.Optimizer
    w_lr: float
    autocast: object  # a context-manager factory: ``with ctx.autocast(): ...``


@dataclass
class EpochEnd:
    """What :meth:`SearchStrategy.end_epoch` may use once an epoch's weight training is done
    (BN running statistics already averaged over ranks)."""

    epoch: int
    network: nn.Module
    optimizer: torch.optim.Optimizer  # the architecture optimiser
    ctx: StepContext
    arch_batches: Iterator[tuple]
    """Endless: augmented, shuffled batches of the architecture half (this epoch's order
    first, then further passes), each rank's part when data-parallel."""
    score_batches: Callable[[], Iterator[tuple]]
    """A fresh endless stream of un-augmented architecture-half batches of
    ``search.batch_size``, in order (built on the first call)."""
    evaluate: Callable[[dict[str, torch.Tensor]], float]
    """Accuracy (%) of the network with these op weights over the whole architecture half."""


class SearchStrategy(nn.Module):
    """Architecture parameters + the rule that turns them into op weights."""

    sparse: bool = False
    """True when op weights are mostly exact zeros: the network then skips those ops."""

    options: tuple[type, ...] = ()
    """The option groups of :mod:`nasforge.config` this algorithm reads besides
    :class:`~nasforge.config.SearchCore` (GDAS: ``TemperatureOptions``); what
    ``nasforge config show --algo`` lists and tests/search/test_options.py holds it to."""

    @classmethod
    def prepare(cls, cfg: SearchConfig, image_size: int) -> SearchConfig:
        """Adjust the search settings before the network is built (EcoDARTS's c4r2, ...)."""
        return cfg

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        """Refuse settings this algorithm cannot run with (a :class:`NasforgeError`).

        The search calls it before the run directory exists, and the constructor calls it
        again, so a bad setting fails in one line and leaves nothing behind.
        """

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__()
        self.validate(cfg)
        network.sparse = self.sparse
        mask = network.op_mask
        self.has_op_mask = mask is not None
        for kind in CELL_TYPES:
            self.register_buffer(f"op_mask_{kind}", None if mask is None else mask[kind],
                                 persistent=False)
        self.cfg = cfg
        self.num_edges = network.num_edges
        self.primitives = network.primitives
        self.nodes = network.nodes

    @staticmethod
    def require_first_order(cfg: SearchConfig, algo: str, why: str = "") -> None:
        """Refuse ``search.order=second`` for algorithms defined only to first order."""
        if cfg.order != "first":
            raise NasforgeError(f"{algo} is first-order only{why}; got search.order={cfg.order}")

    def random_alphas(self, std: float) -> nn.ParameterDict:
        """One [E, K] parameter per cell type drawn from std·N(0, 1) (the DARTS init)."""
        shape = (self.num_edges, len(self.primitives))
        return nn.ParameterDict(
            {c: nn.Parameter(std * torch.randn(shape)) for c in CELL_TYPES})

    def descend(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step on ∇loss w.r.t. the architecture parameters only; the network
        weights' gradients are left alone."""
        params = self.arch_parameters()
        optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            p.grad = g
        optimizer.step()

    def op_weights(self) -> dict[str, torch.Tensor]:
        """Per-cell-type [E, K] weights fed to the super-network's mixed ops."""
        raise NotImplementedError

    def mask_logits(self, logits: torch.Tensor, kind: str) -> torch.Tensor:
        """Logits with the ops an edge does not hold (S1) at −inf: a softmax gives them 0."""
        if not self.has_op_mask:
            return logits
        return logits.masked_fill(~getattr(self, f"op_mask_{kind}"), float("-inf"))

    def strengths(self) -> dict[str, torch.Tensor]:
        """Detached per-op strengths used by the derivation rules."""
        return {k: v.detach().float().cpu() for k, v in self.op_weights().items()}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.arch_parameters(), lr=self.cfg.arch_lr, betas=tuple(self.cfg.arch_betas),
            weight_decay=self.cfg.arch_weight_decay,
        )

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Hook for schedules (temperatures, warm-up); nothing by default."""

    def end_epoch(self, end: EpochEnd) -> None:
        """Hook after an epoch's weight training, before its evaluation (ENAS's controller
        phase in the NAS-Bench-1shot1 spaces); nothing by default."""

    def weight_step_weights(self, network: SearchNetwork, batch_w: tuple,
                            ctx: StepContext) -> dict[str, torch.Tensor]:
        """The op weights the weight step trains with (detached): ``op_weights()`` by default.

        Strategies that perturb (SDARTS) or sample (GDAS) the architecture override it.
        """
        return {k: v.detach() for k, v in self.op_weights().items()}

    def eval_weights(self) -> dict[str, torch.Tensor]:
        """The op weights used to measure the super-network's validation accuracy."""
        return self.op_weights()

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        raise NotImplementedError
