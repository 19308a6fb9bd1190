"""DARTS in the NAS-Bench-1shot1 spaces: softmax over α_mixed, every α_in and α_out.

As in NAS-Bench-1shot1's one-shot model, every choice is relaxed by a softmax; first- and
second-order architecture gradients come from :class:`~nasforge.search.darts.DARTS`, which
only needs ``alphas`` and ``op_weights()``.
"""

from __future__ import annotations

from torch import Tensor, nn

from nasforge.config import SearchConfig
from nasforge.search.darts import DARTS
from nasforge.search.oneshot import ONESHOT_STRATEGIES, choice_alphas, softmax_weights
from nasforge.spaces.nb101.network import OneShotNetwork


@ONESHOT_STRATEGIES.register("darts")
class OneShotDARTS(DARTS):
    def __init__(self, network: OneShotNetwork, cfg: SearchConfig) -> None:
        self.space = network.space  # read by random_alphas during DARTS's set-up
        super().__init__(network, cfg)

    def random_alphas(self, std: float) -> nn.ParameterDict:
        return choice_alphas(self.space, std)

    def op_weights(self) -> dict[str, Tensor]:
        return softmax_weights(self.space, self.alphas)
