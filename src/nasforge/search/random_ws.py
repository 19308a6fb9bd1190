"""Random search with weight sharing (``--algo random-ws``; Li & Talwalkar, 2019).

The super-network trains in the ordinary search loop, but every weight step runs one cell
drawn uniformly from the cell space (:class:`~nasforge.search.random_search.CellSampler`:
the same distribution as ``--algo random``), so only that cell's ops carry signal and get
gradients. There are no architecture parameters and no architecture step. After the last
epoch's weight training, ``search.samples`` cells, drawn once at the start from the run's
seed, are ranked by the super-network's accuracy on the architecture half of the training
split with the shared weights (BN in eval mode, running statistics as trained); the best is
the result (ties: the first drawn). The scores stay in the checkpoint (``strategy.scores``,
in the order of :meth:`RandomWS.ranking`'s ``index``); the chosen cell's 0/1 weights are the
strengths, so every derivation rule reads the sampled cell back.

Deviations from Li & Talwalkar's DARTS-space code: no second stage that retrains the top
candidates from scratch before choosing (their ``--randomNAS`` stage 3), and one path per
minibatch rather than per GPU shard.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nasforge.config import RandomOptions, SearchConfig
from nasforge.errors import NasforgeError
from nasforge.search.base import STRATEGIES, EpochEnd, SearchStrategy, StepContext
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.search.random_search import CellSampler, draw_cells
from nasforge.search.sampling import DrawStream


@STRATEGIES.register("random-ws")
@ONESHOT_STRATEGIES.register("random-ws")
class RandomWS(DrawStream, SearchStrategy):
    """Uniform paths in the weight steps, a ranking of ``search.samples`` cells at the end."""

    options = (RandomOptions,)

    sparse = True

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        if cfg.rule not in ("argmax", "topk"):
            raise NasforgeError(f"random-ws draws cells for search.rule=argmax or topk; got "
                                f"search.rule={cfg.rule}")

    def __init__(self, network: nn.Module, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.sampler = CellSampler(cfg, getattr(network, "space", None))
        self.start_stream()
        self.epochs = cfg.epochs
        self.candidates = draw_cells(self.sampler, cfg.samples, self.seed)
        self.register_buffer("scores", torch.full((cfg.samples,), float("nan")))
        self.register_buffer("best", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # device marker

    def _device_weights(self, w: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self._anchor.device) for k, v in w.items()}

    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        # nothing to optimise; the loop still saves and restores an optimiser's state
        return torch.optim.SGD([nn.Parameter(torch.zeros(()))], lr=0.0)

    def arch_step(self, network: nn.Module, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """No architecture parameters: nothing to do."""

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epochs = epochs

    def weight_step_weights(self, network: nn.Module, batch_w: tuple,
                            ctx: StepContext) -> dict[str, Tensor]:
        """A fresh uniform cell per minibatch (the same on every data-parallel rank)."""
        return self._device_weights(self.sampler.sample(self.python_rng()))

    def chosen(self) -> dict[str, Tensor]:
        """The ranked best cell; before the ranking, the first candidate."""
        return self._device_weights(self.candidates[max(int(self.best), 0)])

    def op_weights(self) -> dict[str, Tensor]:
        return self.chosen()

    def strengths(self) -> dict[str, Tensor]:
        return {k: v.float().cpu() for k, v in self.chosen().items()}

    def end_epoch(self, end: EpochEnd) -> None:
        """After the last epoch's weight training: rank the candidates."""
        if end.epoch != self.epochs - 1:
            return
        network = end.network
        was_training = network.training
        network.eval()
        try:
            scores = [end.evaluate(self._device_weights(w)) for w in self.candidates]
        finally:
            network.train(was_training)
        self.scores.copy_(torch.tensor(scores, dtype=self.scores.dtype))
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        self.best.fill_(best)

    def ranking(self) -> list[dict]:
        """Every candidate's cell and super-network accuracy (%), best first."""
        rows = [{"index": i, "genotype": self.sampler.text(w), "val_acc": float(self.scores[i])}
                for i, w in enumerate(self.candidates)]
        return sorted(rows, key=lambda r: (-r["val_acc"], r["index"]))

    def set_extra_state(self, state: dict) -> None:
        self.load_stream(state)
        self.candidates = draw_cells(self.sampler, self.cfg.samples, self.seed)
