"""SDARTS (Chen & Hsieh, 2020): DARTS whose weight step sees a perturbed architecture.

The architecture step is the plain DARTS step. The weight step trains with a perturbed copy
of the op weights softmax(α) (the architecture itself is never changed by the
perturbation), within an L∞ ball of radius ε_e = ε_min + (ε_max − ε_min)·e/E
(``search.epsilon_min`` 0.03, ``search.epsilon_max`` 0.3), every row clipped back onto the
simplex (:func:`clip_to_simplex`):

* ``sdarts-rs``: add U(−ε, ε) to every entry, then clip;
* ``sdarts-adv``: PGD-L∞ on the train-batch loss with the network in eval mode — random
  start U(−ε, ε) and clip, then ``search.attack_steps`` (7) steps of size 2ε/steps along
  the sign of the gradient, each projected to ‖w − w₀‖∞ ≤ ε and clipped; if the attacked
  loss ends lower than the clean one, the clean weights are used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import SDARTSOptions, SearchConfig
from nasforge.distributed import current
from nasforge.search.base import CELL_TYPES, STRATEGIES, StepContext
from nasforge.search.darts import DARTS
from nasforge.spaces.darts.search_network import SearchNetwork

Weights = dict[str, Tensor]
Masks = dict[str, Tensor | None]


def epsilon_at(epoch: int, epochs: int, eps_min: float, eps_max: float) -> float:
    """ε_e = ε_min + (ε_max − ε_min)·e/E: ε_min at epoch 0, ε_max reached at e = E."""
    return eps_min + (eps_max - eps_min) * epoch / epochs


def clip_to_simplex(w: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per row: clamp to [0, 1]; an all-zero row becomes one-hot at its (pre-clamp) argmax;
    then divide by the row sum (SDARTS's ``clip``).

    ``mask`` (bool, like ``w``): the ops each edge holds (S1); the others are set to 0 and
    the row is clipped over the held ops only.
    """
    if mask is not None:
        w = w.masked_fill(~mask, float("-inf"))
    top = w.argmax(-1, keepdim=True)
    w = w.clamp(0.0, 1.0)
    empty = (w.sum(-1, keepdim=True) == 0)
    w = torch.where(empty, torch.zeros_like(w).scatter(-1, top, 1.0), w)
    return w / w.sum(-1, keepdim=True)


def uniform_noise(w: Tensor, eps: float) -> Tensor:
    """U(−ε, ε) of ``w``'s shape."""
    return (torch.rand_like(w) * 2 - 1) * eps


def random_perturbation(clean: Weights, eps: float, masks: Masks | None = None) -> Weights:
    """SDARTS-RS: clip(w + U(−ε, ε)) per cell type."""
    masks = masks or {}
    return {k: clip_to_simplex(w + uniform_noise(w, eps), masks.get(k))
            for k, w in clean.items()}


def pgd_linf(network: SearchNetwork, clean: Weights, batch: tuple, eps: float, steps: int,
             ctx: StepContext, masks: Masks | None = None) -> Weights:
    """SDARTS-ADV's L∞ PGD on the cross-entropy of ``batch``; returns detached weights.

    The network runs in eval mode during the attack (its mode is restored afterwards). The
    network's parameter gradients are not touched. Data-parallel, the attack's gradients and
    losses are averaged over the ranks' parts of ``batch``, so every rank finds the same w.
    """
    x, y = batch
    dist = current()
    masks = masks or {}
    step = 2 * eps / steps

    def loss_of(w: Weights) -> Tensor:
        with ctx.autocast():
            return F.cross_entropy(network(x, w).float(), y)

    def project(w: Weights) -> Weights:
        return {k: clip_to_simplex(clean[k] + (v - clean[k]).clamp(-eps, eps), masks.get(k))
                for k, v in w.items()}

    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            loss_clean = dist.average_([loss_of(clean)], len(y))[0]
        w = {k: clip_to_simplex(v + uniform_noise(v, eps), masks.get(k))
             for k, v in clean.items()}
        for _ in range(steps):
            w = {k: v.detach().requires_grad_(True) for k, v in w.items()}
            grads = dist.average_(torch.autograd.grad(loss_of(w), list(w.values())), len(y))
            w = project({k: v.detach() + step * g.sign()
                         for (k, v), g in zip(w.items(), grads, strict=True)})
        with torch.no_grad():
            loss_adv = dist.average_([loss_of(w)], len(y))[0]
    finally:
        network.train(was_training)
    return dict(clean) if loss_adv < loss_clean else w


class SDARTS(DARTS):
    """DARTS with a perturbed softmax(α) in the weight step; subclasses choose the attack."""

    options = (SDARTSOptions,)

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.epsilon = cfg.epsilon_min

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epsilon = epsilon_at(epoch, epochs, self.cfg.epsilon_min, self.cfg.epsilon_max)

    def weight_step_weights(self, network: SearchNetwork, batch_w: tuple,
                            ctx: StepContext) -> Weights:
        clean = {k: v.detach() for k, v in self.op_weights().items()}
        return self.perturb(network, clean, batch_w, ctx)

    def perturb(self, network: SearchNetwork, clean: Weights, batch_w: tuple,
                ctx: StepContext) -> Weights:
        raise NotImplementedError

    def op_masks(self) -> Masks:
        """Per cell type the bool [E, K] of the ops each edge holds (S1), else None."""
        return {c: getattr(self, f"op_mask_{c}", None) for c in CELL_TYPES}


@STRATEGIES.register("sdarts-rs")
class SDARTSRS(SDARTS):
    """Random smoothing: uniform noise in the ε-ball, clipped to the simplex."""

    def perturb(self, network: SearchNetwork, clean: Weights, batch_w: tuple,
                ctx: StepContext) -> Weights:
        return random_perturbation(clean, self.epsilon, self.op_masks())


@STRATEGIES.register("sdarts-adv")
class SDARTSADV(SDARTS):
    """Adversarial training: the PGD-L∞ worst case in the ε-ball of the train-batch loss."""

    def perturb(self, network: SearchNetwork, clean: Weights, batch_w: tuple,
                ctx: StepContext) -> Weights:
        return pgd_linf(network, clean, batch_w, self.epsilon, self.cfg.attack_steps, ctx,
                        self.op_masks())
