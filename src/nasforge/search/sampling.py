"""One private, resumable random stream for the strategies that sample.

GDAS, PR-DARTS, BtNAS, DrNAS, ENAS and random-ws draw something every step. Each draw uses
its own seed, ``seed + draws``: the base seed comes once from the run-seeded global RNG and
the draw counter is saved with the strategy, so a resumed search draws exactly what an
uninterrupted one draws, and sampling never disturbs (or depends on) the global RNG that
data order and dropout use.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block on a private torch RNG stream so its draws depend only on ``seed``.

    The global RNG (CPU and, for a CUDA device, that device) is restored afterwards; a
    resumed run (which restores only the CPU RNG) therefore draws what an uninterrupted
    run draws.
    """
    devices: list[int] = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


class DrawStream:
    """Mixin for a strategy (an ``nn.Module``) that samples: ``seed``, ``draws`` and the
    three ways to spend one draw. Put it before the strategy base class so its
    ``get_extra_state`` saves the stream with the module's state dict.
    """

    seed: int
    draws: int

    def start_stream(self) -> None:
        """A base seed from the (run-seeded) global RNG and a fresh draw counter."""
        self.seed = int(torch.randint(0, 2**62, (1,)).item())
        self.draws = 0

    def next_seed(self) -> int:
        """The seed of the next draw; advances the counter."""
        seed = self.seed + self.draws
        self.draws += 1
        return seed

    @contextmanager
    def private_rng(self, device: torch.device) -> Iterator[None]:
        """One draw: the block runs on the torch RNG seeded for it (see :func:`seeded_rng`)."""
        with seeded_rng(self.seed + self.draws, device):
            yield
        self.draws += 1

    def generator(self) -> torch.Generator:
        """One draw as a CPU ``torch.Generator``."""
        return torch.Generator().manual_seed(self.next_seed())

    def python_rng(self) -> random.Random:
        """One draw as a ``random.Random``."""
        return random.Random(self.next_seed())

    def stream_state(self) -> dict[str, int]:
        return {"seed": self.seed, "draws": self.draws}

    def load_stream(self, state: dict) -> None:
        self.seed, self.draws = int(state["seed"]), int(state["draws"])

    def get_extra_state(self) -> dict:
        return self.stream_state()

    def set_extra_state(self, state: dict) -> None:
        self.load_stream(state)
