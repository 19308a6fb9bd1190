"""Seeded random architectures of nasforge's cell spaces, and the networks to score them in.

Spaces (:func:`space_names`):

- ``darts``: a pair of DARTS cells in the form an argmax derivation produces (every
  intermediate node takes 2 distinct earlier inputs, each with one of the 7 ops other than
  ``none``), drawn by :func:`nasforge.quality.sample_space` (unique pairs).
- ``extcell-K``: K ops drawn uniformly over both cells' (edge, op) candidates, redrawn until
  both cells are valid ExtCells (:func:`nasforge.quality.sample_space`).
- ``1shot1-ss1`` .. ``1shot1-ss3``: every block's op and parents and the output's parents
  uniformly (:class:`nasforge.search.random_search.CellSampler`).
- ``tabular-digits``: distinct normal cells among the table's 243, uniformly; the genotype
  carries the table's fixed reduction cell.
- ``snn``: the AutoSNN two-level space: the fixed macro backbone (stem, 5 TBD positions,
  pools, voting head) with one of the 5 candidate blocks per position, uniformly.

A sample's architecture depends only on (space, seed, index): asking for more samples
appends to the list. Networks come from the existing builders: ``NetworkCIFAR`` (no
auxiliary head) for DARTS cells, the 1shot1 one-shot network with the cell's 0/1 weights,
and :class:`nasforge.snn.backbone.SNNBackbone`; every one is wrapped to map ``[N, C, H, W]``
to ``[N, classes]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from nasforge.errors import NasforgeError

__all__ = [
    "NetSettings",
    "SNNRates",
    "Sample",
    "build_network",
    "check_space",
    "default_settings",
    "is_snn",
    "sample_architectures",
    "space_names",
]

SNN_SPACE = "snn"
TABULAR = "tabular-digits"


@dataclass(frozen=True)
class Sample:
    """One architecture: its space, the object the builders take, and its one-line text."""

    space: str
    arch: Any
    text: str
    index: int


@dataclass(frozen=True)
class NetSettings:
    """Size of the scored networks: initial channels, cells (DARTS/1shot1), SNN time steps."""

    channels: int = 8
    layers: int = 5
    timesteps: int = 4


def default_settings(space: str) -> NetSettings:
    """The sizes nasforge trains at on digits: the tabular benchmark's protocol (C=8, 5
    cells) for DARTS cells, 3 cells for 1shot1, autosnn-digits (C=8, T=4) for the SNN."""
    kind = check_space(space)
    if kind == "1shot1":
        return NetSettings(channels=8, layers=3)
    return NetSettings()


def space_names() -> list[str]:
    """The spaces :func:`sample_architectures` draws from (``extcell-K`` stands for K)."""
    from nasforge.spaces.nb101.space import ONESHOT_SPACES

    return ["darts", "extcell-K", *ONESHOT_SPACES.names(), TABULAR, SNN_SPACE]


def check_space(space: str) -> str:
    """The kind of ``space`` (``darts``, ``extcell``, ``1shot1``, ``tabular``, ``snn``), or a
    one-line error listing the spaces."""
    from nasforge.quality import parse_space
    from nasforge.spaces.nb101.space import ONESHOT_SPACES

    name = str(space)
    if name == TABULAR:
        return "tabular"
    if name == SNN_SPACE:
        return "snn"
    if name in ONESHOT_SPACES:
        return "1shot1"
    if name == "darts" or name.startswith("extcell-"):
        return "darts" if parse_space(name).k is None else "extcell"
    raise NasforgeError(f"unknown space '{name}' for zero-cost scoring; choose from: "
                        f"{', '.join(space_names())}")


def _rng(space: str, seed: int) -> random.Random:
    return random.Random(f"nasforge.zc:{space}:{seed}")


def sample_architectures(space: str, n: int, seed: int) -> list[Sample]:
    """``n`` seeded random architectures of ``space`` (see the module docstring)."""
    kind = check_space(space)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NasforgeError(f"samples must be a positive whole number; got {n!r}")
    if kind in ("darts", "extcell"):
        from nasforge.quality import parse_space, sample_space
        from nasforge.spaces.darts.genotype import format_genotype

        genotypes = sample_space(parse_space(space), n, seed)
        return [Sample(space, g, format_genotype(g), i) for i, g in enumerate(genotypes)]
    if kind == "tabular":
        from nasforge.benchmarks.tabular import cell_key, enumerate_cells, genotype_of

        cells = enumerate_cells()
        if n > len(cells):
            raise NasforgeError(f"space {space} has {len(cells)} cells; asked for {n} samples")
        order = _rng(space, seed).sample(range(len(cells)), len(cells))[:n]
        return [Sample(space, genotype_of(cells[j]), cell_key(cells[j]), i)
                for i, j in enumerate(order)]
    rng = _rng(space, seed)
    if kind == "1shot1":
        from nasforge.config import SearchConfig
        from nasforge.search.random_search import CellSampler
        from nasforge.spaces.nb101.space import ONESHOT_SPACES

        oneshot = ONESHOT_SPACES.get(space)
        sampler = CellSampler(SearchConfig(space=space), oneshot)
        archs = [oneshot.validate(sampler.sample_arch(rng)) for _ in range(n)]
        return [Sample(space, a, oneshot.format(a), i) for i, a in enumerate(archs)]
    from nasforge.snn.backbone import num_tbd
    from nasforge.snn.blocks import SEARCH_BLOCKS
    from nasforge.snn.evolution import arch_to_text, random_architecture

    archs = [random_architecture(rng, SEARCH_BLOCKS, num_tbd()) for _ in range(n)]
    return [Sample(space, a, arch_to_text(a), i) for i, a in enumerate(archs)]


# --------------------------------------------------------------------------- networks


class _Logits(nn.Module):
    """An evaluation network without its auxiliary output: ``x -> logits``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)[0]


class _FixedCell(nn.Module):
    """A 1shot1 one-shot network running one cell: its 0/1 weights as buffers."""

    def __init__(self, network: nn.Module, weights: dict[str, Tensor]) -> None:
        super().__init__()
        self.network = network
        self.keys = tuple(weights)
        for key, value in weights.items():
            self.register_buffer(f"w_{key}", value.clone())

    def forward(self, x: Tensor) -> Tensor:
        weights = {k: getattr(self, f"w_{k}").to(x.dtype) for k in self.keys}
        return self.network(x, weights)


class SNNRates(nn.Module):
    """An SNN backbone whose neurons are reset before every forward: ``x -> firing rates``
    over ``timesteps`` steps (the surrogate gradient carries every backward pass)."""

    is_snn = True

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        from nasforge.snn.neuron import reset_net

        reset_net(self.network)
        return self.network(x)


def build_network(sample: Sample, *, in_channels: int, in_size: int, num_classes: int,
                  settings: NetSettings | None = None) -> nn.Module:
    """The network of ``sample`` (default PyTorch initialisation from the current torch RNG
    state: seed it first), wrapped to map ``[N, C, H, W]`` to ``[N, classes]``."""
    s = settings or default_settings(sample.space)
    kind = check_space(sample.space)
    if kind in ("darts", "extcell", "tabular"):
        from nasforge.spaces.darts.eval_network import NetworkCIFAR

        return _Logits(NetworkCIFAR(sample.arch, s.channels, num_classes, s.layers,
                                    auxiliary=False, in_channels=in_channels))
    if kind == "1shot1":
        from nasforge.config import SearchConfig
        from nasforge.search.random_search import CellSampler
        from nasforge.spaces.nb101.network import OneShotNetwork
        from nasforge.spaces.nb101.space import ONESHOT_SPACES

        oneshot = ONESHOT_SPACES.get(sample.space)
        net = OneShotNetwork(oneshot, s.channels, num_classes, s.layers,
                             in_channels=in_channels)
        net.sparse = True  # only the cell's ops and edges run
        weights = CellSampler(SearchConfig(space=sample.space), oneshot).weights_of(sample.arch)
        return _FixedCell(net, weights)
    from nasforge.snn.backbone import SNNBackbone

    return SNNRates(SNNBackbone(list(sample.arch), s.channels, s.timesteps, num_classes,
                                in_size, in_channels))


def is_snn(model: nn.Module) -> bool:
    """True for a network built from the ``snn`` space (scored with the SNN loss)."""
    return bool(getattr(model, "is_snn", False))

