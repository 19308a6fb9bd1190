"""AutoSNN macro backbone, its variants and the weight-sharing super-network (docs/snn.md).

Layout (C = initial channels, CIFAR 32×32): stem conv3×3–BN–PLIF; TBD1 (C→C); maxpool;
TBD2 (C→2C), TBD3; maxpool; TBD4 (2C→4C), TBD5; maxpool; flatten 4C×4×4; bias-free
linear to 10·classes; PLIF; voting avg-pool(10, 10); output = firing rate over T.
Variant 2 (and the "V2 with 8 TBDs" space of Table 5.9) is the authors' ``SNN_3``: every
max-pool becomes a stride-2 TBD that doubles the channels, so TBD1 (C→C); DS1 (C→2C, /2);
TBD2, TBD3 (2C); DS2 (2C→4C, /2); TBD4, TBD5 (4C); DS3 (4C→8C, /2); flatten 8C×4×4.

The body is a list of slots. A TBD slot holds one block (:class:`SNNBackbone`) or a
``ModuleDict`` of all candidates (:class:`SNNSuperNet`), so the same layout code serves both
and a path's weights copy across by name.
"""

from dataclasses import dataclass

import torch
from spikingjelly.activation_based.layer import SeqToANNContainer
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.snn.blocks import BLOCKS, SEARCH_BLOCKS, StepBN, build_block, conv_bn
from nasforge.snn.neuron import plif

VARIANTS = (None, "v1", "v2", "v3")
SPACES = ("default", "v2-8tbd", "tbd-before-pool")
VOTE = 10  # voting-layer pool size: 10 output neurons per class


@dataclass(frozen=True)
class Slot:
    """One body position: a searchable TBD block or a fixed down-sampling layer."""

    kind: str  # "tbd" or "down"
    c_in: int
    c_out: int
    stride: int = 1


def layout(channels: int, variant: str | None = None, space: str = "default") -> list[Slot]:
    """The body's slots in forward order; V2 turns each max-pool into a stride-2 TBD that
    doubles the channels (C→2C→4C→8C; the normal TBDs after it keep the width)."""
    if variant not in VARIANTS:
        raise NasforgeError(f"unknown variant '{variant}'; choose from: v1, v2, v3")
    if space not in SPACES:
        raise NasforgeError(f"unknown SNN space '{space}'; choose from: {', '.join(SPACES)}")
    if space != "default" and variant is not None and (space, variant) != ("v2-8tbd", "v2"):
        raise NasforgeError(f"space '{space}' takes no variant (got '{variant}')")
    c = channels
    slots: list[Slot] = []
    if variant == "v2" or space == "v2-8tbd":  # the authors' SNN_3
        for width, blocks in ((c, 1), (2 * c, 2), (4 * c, 2)):
            slots += [Slot("tbd", width, width) for _ in range(blocks)]
            slots.append(Slot("tbd", width, 2 * width, stride=2))
        return slots
    stages = [[(c, c)], [(c, 2 * c), (2 * c, 2 * c)], [(2 * c, 4 * c), (4 * c, 4 * c)]]
    for stage in stages:
        slots += [Slot("tbd", ci, co) for ci, co in stage]
        width = stage[-1][1]
        if space == "tbd-before-pool":
            slots.append(Slot("tbd", width, width))
        slots.append(Slot("down", width, width, stride=2))
    return slots


def num_tbd(variant: str | None = None, space: str = "default") -> int:
    """How many blocks an architecture string needs for this backbone."""
    return sum(s.kind == "tbd" for s in layout(1, variant, space))


def parse_arch(text: str | list[str], n: int = 5, allowed: tuple[str, ...] = SEARCH_BLOCKS
               ) -> list[str]:
    """``"SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5"`` → list of block names, checked."""
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    for name in names:
        if name not in allowed:
            raise NasforgeError(f"unknown SNN block '{name}'; choose from: {', '.join(allowed)}")
    if len(names) != n:
        raise NasforgeError(f"architecture needs {n} blocks, got {len(names)}: {','.join(names)}")
    return names


class SpikePool(nn.Module):
    """Pooling over every time step; max-pool outputs count as spikes in the thesis's tally."""

    def __init__(self, kind: str = "max", size: int = 2) -> None:
        super().__init__()
        self.kind = kind
        pool = nn.MaxPool2d(size, size) if kind == "max" else nn.AvgPool2d(size, size)
        self.pool = SeqToANNContainer(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


def _down(variant: str | None, width: int) -> nn.Module:
    """The fixed down-sampling layer: max-pool, or 2×2 avg-pool + PLIF for V3."""
    if variant == "v3":
        return nn.Sequential(SpikePool("avg"), plif())
    return SpikePool("max")


class Stem(nn.Module):
    """Direct encoding: conv+BN once on a static image, the same current at every step.

    Frames [T, N, C, H, W] (DVS) go through the conv step by step. Tiny-ImageNet (64) adds
    maxpool + conv–BN–PLIF; DVS (128) adds maxpool, conv–BN–PLIF, maxpool: both reach 32.
    """

    def __init__(self, in_channels: int, channels: int, timesteps: int, in_size: int) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.conv = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn = StepBN(channels)  # static images: once (as the authors); frames: per step
        self.neuron = plif()
        extra: list[nn.Module] = []
        if in_size == 64:
            extra = [SpikePool("max"), conv_bn(channels, channels, 3), plif()]
        elif in_size == 128:
            extra = [SpikePool("max"), conv_bn(channels, channels, 3), plif(), SpikePool("max")]
        self.extra = nn.Sequential(*extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            self.bn.steps = 1
            y = self.bn(self.conv(x))
            y = y.unsqueeze(0).expand(self.timesteps, *y.shape)
        else:
            t, n = x.shape[:2]
            self.bn.steps = t
            y = self.bn(self.conv(x.flatten(0, 1))).unflatten(0, (t, n))
        return self.extra(self.neuron(y))


class Head(nn.Module):
    """Flatten → bias-free linear to 10·classes → PLIF → voting; returns [T, N, classes]."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = SeqToANNContainer(nn.Linear(features, VOTE * num_classes, bias=False))
        self.neuron = plif()
        self.vote = nn.AvgPool1d(VOTE, VOTE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.neuron(self.fc(x.flatten(2)))
        return self.vote(s.flatten(0, 1).unsqueeze(1)).squeeze(1).unflatten(0, s.shape[:2])


class GlobalPool(nn.Module):
    """V1's global average pooling + PLIF before the linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = SeqToANNContainer(nn.AdaptiveAvgPool2d(1))
        self.neuron = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.pool(x))


def _check_size(in_size: int, in_channels: int) -> int:
    """Resolution after the stem; the body needs a multiple of 8."""
    after = {64: 32, 128: 32}.get(in_size, in_size)
    if after % 8 or in_channels < 1:
        raise NasforgeError(f"input size {in_size} unsupported; use 32, 64, 128 or a multiple of 8")
    return after


class _MacroNet(nn.Module):
    """Stem, body slots, head; subclasses decide what a TBD slot holds."""

    def __init__(self, channels: int, timesteps: int, num_classes: int, in_size: int,
                 in_channels: int, variant: str | None, space: str) -> None:
        super().__init__()
        self.channels, self.timesteps, self.num_classes = channels, timesteps, num_classes
        self.in_size, self.in_channels = in_size, in_channels
        self.variant, self.space = variant, space
        self.slots = layout(channels, variant, space)
        size = _check_size(in_size, in_channels)
        self.stem = Stem(in_channels, channels, timesteps, in_size)
        self.body = nn.ModuleList(
            self._tbd(s) if s.kind == "tbd" else _down(variant, s.c_out) for s in self.slots
        )
        self.tbd_index = [i for i, s in enumerate(self.slots) if s.kind == "tbd"]
        width = self.slots[-1].c_out
        self.gap = GlobalPool() if variant == "v1" else nn.Identity()
        features = width if variant == "v1" else width * (size // 8) ** 2
        self.head = Head(features, num_classes)

    def _tbd(self, slot: Slot) -> nn.Module:
        raise NotImplementedError

    def _run(self, x: torch.Tensor, path: list[str] | None) -> torch.Tensor:
        y = self.stem(x)
        pos = 0
        for i, layer in enumerate(self.body):
            if isinstance(layer, nn.ModuleDict):
                layer = layer[path[pos]]  # type: ignore[index]
            y = layer(y)
            pos += i in self.tbd_index
        return self.head(self.gap(y)).mean(0)


class SNNBackbone(_MacroNet):
    """One architecture: ``arch`` names the block of every TBD position in forward order.

    Input: static images [N, C, H, W] (repeated over ``T``) or frames [T, N, C, H, W].
    Output: [N, classes] firing rates of the voting layer.
    """

    def __init__(self, arch: str | list[str], channels: int = 16, timesteps: int = 8,
                 num_classes: int = 10, in_size: int = 32, in_channels: int = 3,
                 variant: str | None = None, space: str = "default") -> None:
        n = num_tbd(variant, space)
        self.arch = parse_arch(arch, n, tuple(BLOCKS.names()))
        self._pending = iter(self.arch)
        super().__init__(channels, timesteps, num_classes, in_size, in_channels, variant, space)

    def _tbd(self, slot: Slot) -> nn.Module:
        return build_block(next(self._pending), slot.c_in, slot.c_out, slot.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, None)


class SNNSuperNet(_MacroNet):
    """Weight-sharing super-network: every TBD slot holds all ``candidates``.

    ``forward(x, path)`` runs one architecture (a list of block names, one per TBD).
    """

    def __init__(self, channels: int = 16, timesteps: int = 8, num_classes: int = 10,
                 in_size: int = 32, in_channels: int = 3, variant: str | None = None,
                 space: str = "default", candidates: tuple[str, ...] = SEARCH_BLOCKS) -> None:
        self.candidates = tuple(candidates)
        super().__init__(channels, timesteps, num_classes, in_size, in_channels, variant, space)

    @property
    def num_tbd(self) -> int:
        return len(self.tbd_index)

    def _tbd(self, slot: Slot) -> nn.Module:
        return nn.ModuleDict(
            {name: build_block(name, slot.c_in, slot.c_out, slot.stride)
             for name in self.candidates}
        )

    def forward(self, x: torch.Tensor, path: str | list[str]) -> torch.Tensor:
        return self._run(x, parse_arch(path, self.num_tbd, self.candidates))

    def extract(self, path: str | list[str]) -> SNNBackbone:
        """A standalone network for ``path`` carrying the super-network's weights."""
        path = parse_arch(path, self.num_tbd, self.candidates)
        net = SNNBackbone(path, self.channels, self.timesteps, self.num_classes, self.in_size,
                          self.in_channels, self.variant, self.space)
        chosen = dict(zip(self.tbd_index, path, strict=True))
        state = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "body" and int(parts[1]) in chosen:
                if parts[2] != chosen[int(parts[1])]:
                    continue  # another candidate's weights
                key = ".".join(parts[:2] + parts[3:])
            state[key] = value
        net.load_state_dict(state)
        return net.to(next(self.parameters()).device)
