"""GDAS in the NAS-Bench-1shot1 spaces (as NAS-Bench-1shot1's GDAS network).

Per forward pass one Gumbel draw per choice, from a private stream (see
:class:`~nasforge.search.gdas.GDAS`): the op of every block is a hard straight-through
one-hot (only the drawn op runs), while the parents (α_in) and the output (α_out) get the
*soft* Gumbel-softmax sample softmax((log_softmax(α) + g)/τ) — NAS-Bench-1shot1 found that
hard samples there made gradients explode. τ falls linearly from ``tau_max`` to ``tau_min``.
The validation pass uses the argmax op of each block and softmax(α) for the rest;
strengths are softmax(α), which the NAS-Bench-1shot1 discretisation ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.config import SearchConfig
from nasforge.search.btnas import seeded_rng
from nasforge.search.gdas import GDAS, gumbel_hard, gumbel_noise, gumbel_soft
from nasforge.search.oneshot import ONESHOT_STRATEGIES, assemble, choice_alphas, softmax_weights
from nasforge.spaces.nb101.network import OneShotNetwork


@ONESHOT_STRATEGIES.register("gdas")
class OneShotGDAS(GDAS):
    def __init__(self, network: OneShotNetwork, cfg: SearchConfig) -> None:
        self.space = network.space  # read by random_alphas during GDAS's set-up
        super().__init__(network, cfg)

    def random_alphas(self, std: float) -> nn.ParameterDict:
        return choice_alphas(self.space, std)

    def sample(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One draw for every choice: (weights, probabilities); advances the stream."""
        a = self.alphas
        with seeded_rng(self.seed + self.draws, a["ops"].device):
            while True:
                noise = {k: gumbel_noise(v) for k, v in a.items()}
                h, p, _ = gumbel_hard(a["ops"], self.tau, noise["ops"])
                soft = {k: gumbel_soft(v, self.tau, noise[k]) for k, v in a.items() if k != "ops"}
                parts = [noise[k] for k in noise] + [p, *soft.values()]
                if bool(torch.stack([torch.isfinite(t).all() for t in parts]).all()):
                    break  # one host read per draw
        self.draws += 1
        inputs = {v: soft[f"in{v}"] for v in self.space.choice_vertices()}
        return (assemble(self.space, h, soft["output"], inputs),
                assemble(self.space, p, soft["output"], inputs))

    def eval_weights(self) -> dict[str, Tensor]:
        with torch.no_grad():
            w = softmax_weights(self.space, self.alphas)
            w["ops"] = F.one_hot(self.alphas["ops"].argmax(-1), w["ops"].shape[-1]).to(
                w["ops"].dtype)
            return w

    def strengths(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return {k: v.float().cpu() for k, v in softmax_weights(self.space, self.alphas).items()}
