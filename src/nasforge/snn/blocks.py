"""Candidate spiking blocks for the TBD positions (thesis Fig. 5.2b, 5.6; DESIGN §6).

Every block maps a multi-step tensor [T, N, C_in, H, W] to [T, N, C_out, H/s, W/s].
Convolutions and batch norms run once over the merged T·N axis (``SeqToANNContainer``);
convs carry no bias. ``BLOCKS`` maps the names users type (``SRB_k5``) to builders
``(c_in, c_out, stride) -> nn.Module``.
"""

from collections.abc import Callable

import torch
from spikingjelly.activation_based.layer import SeqToANNContainer
from torch import nn

from nasforge.registry import Registry
from nasforge.snn.neuron import plif

BlockBuilder = Callable[[int, int, int], nn.Module]
BLOCKS: Registry[BlockBuilder] = Registry("SNN block")

# The five candidates of the AutoSNN search space, in the thesis's order; SIB blocks are
# registered too but only for the design-choice study (Table 5.2).
SEARCH_BLOCKS = ("SCB_k3", "SCB_k5", "SRB_k3", "SRB_k5", "skip")


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
    """Bias-free k×k conv + BN applied to every time step at once."""
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
    return SeqToANNContainer(conv, nn.BatchNorm2d(c_out))


class SCB(nn.Module):
    """Spiking convolution block: conv–BN–PLIF–conv–BN–PLIF (stride on the first conv)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, k, stride), plif(), conv_bn(c_out, c_out, k), plif()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SRB(nn.Module):
    """Spiking residual block: conv–BN–PLIF–conv–BN, + shortcut, then PLIF.

    The shortcut is the identity, or 1×1 conv + BN when channels or resolution change.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, k, stride), plif(), conv_bn(c_out, c_out, k))
        same = c_in == c_out and stride == 1
        self.shortcut = nn.Identity() if same else conv_bn(c_in, c_out, 1, stride)
        self.out = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class Skip(nn.Module):
    """Identity when shapes match, else 1×1 conv–BN–PLIF (stride s when down-sampling)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        same = c_in == c_out and stride == 1
        project = nn.Sequential(conv_bn(c_in, c_out, 1, stride), plif())
        self.body = nn.Identity() if same else project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SIB(nn.Module):
    """Spiking inverted bottleneck (Fig. 5.6), our reading of the figure and its neuron count.

    1×1 expand (×e)–BN–PLIF → k×k depthwise (stride s)–BN–PLIF → 1×1 project–BN
    (+ identity when shapes match) → PLIF. This gives hw(2e·c_in + c_out) neurons, the
    count the thesis states for SIB_k3_e1 and SIB_k3_e3 (§5.2.2).
    """

    def __init__(self, c_in: int, c_out: int, k: int, e: int, stride: int = 1) -> None:
        super().__init__()
        mid = c_in * e
        self.body = nn.Sequential(
            conv_bn(c_in, mid, 1), plif(),
            conv_bn(mid, mid, k, stride, groups=mid), plif(),
            conv_bn(mid, c_out, 1),
        )
        self.residual = c_in == c_out and stride == 1
        self.out = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.out(y + x if self.residual else y)


def _register_conv_blocks() -> None:
    for k in (3, 5):
        BLOCKS.register(f"SCB_k{k}")(lambda ci, co, s, k=k: SCB(ci, co, k, s))
        BLOCKS.register(f"SRB_k{k}")(lambda ci, co, s, k=k: SRB(ci, co, k, s))
        for e in (1, 3):
            BLOCKS.register(f"SIB_k{k}_e{e}")(lambda ci, co, s, k=k, e=e: SIB(ci, co, k, e, s))


_register_conv_blocks()
BLOCKS.register("skip")(lambda ci, co, s: Skip(ci, co, s))


def build_block(name: str, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """Instantiate a registered block; unknown names raise a one-line NasforgeError."""
    return BLOCKS.get(name)(c_in, c_out, stride)
