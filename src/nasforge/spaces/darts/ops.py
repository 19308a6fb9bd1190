"""Candidate operations of the DARTS cell space and the blocks they are built from.

Every op keeps the channel count ``C`` and divides the spatial size by ``stride`` (rounding
up, so odd sizes work), which is what lets a cell sum the outputs of different ops. Nothing
here reads a tensor value on the host, so the ops run under CUDA graphs, AMP and
channels_last without synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError


class ReLUConvBN(nn.Sequential):
    """ReLU → conv → BN: the DARTS pre-activation unit, also used to preprocess cell inputs."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise k×k, pointwise 1×1, BN) units; only the first strides."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: Tensor, activated: bool = False) -> Tensor:
        """``activated``: ``x`` is already ReLU-ed (a mixed op shares one ReLU)."""
        return _sequential_after_relu(self, x) if activated else super().forward(x)


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated k×k conv, pointwise 1×1, BN: a wide receptive field cheaply."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation, C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: Tensor, activated: bool = False) -> Tensor:
        """``activated``: ``x`` is already ReLU-ed (a mixed op shares one ReLU)."""
        return _sequential_after_relu(self, x) if activated else super().forward(x)


def _sequential_after_relu(seq: nn.Sequential, x: Tensor) -> Tensor:
    """A ReLU-first sequence applied to an input that is already ReLU-ed: skip the ReLU."""
    modules = iter(seq)
    next(modules)
    for module in modules:
        x = module(x)
    return x


class FactorizedReduce(nn.Module):
    """Halve the resolution without discarding every other pixel.

    Two 1×1 stride-2 convs see the even and the odd pixel grids (the second on the input
    shifted by one pixel); their outputs are concatenated. The shifted input is zero-padded at
    the far edge so odd sizes give ``ceil(H/2)``, the same size as the other stride-2 ops.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out < 2:
            raise NasforgeError(f"FactorizedReduce needs C_out >= 2, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: Tensor, activated: bool = False) -> Tensor:
        """``activated``: ``x`` is already ReLU-ed (a mixed op shares one ReLU)."""
        if not activated:
            x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        if x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last):
            # A 1×1 stride-2 conv is a 1×1 conv of every other pixel. Written so because
            # torch 2.13's CPU backward of a 1×1 stride-2 conv in channels_last corrupts
            # memory (bench/channels_last_crash.py); same values, same parameters.
            return self.bn(torch.cat([F.conv2d(x[:, :, ::2, ::2], self.conv_1.weight),
                                      F.conv2d(shifted[:, :, ::2, ::2], self.conv_2.weight)],
                                     dim=1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Zero(nn.Module):
    """The 'none' op: zeros of the output shape, kept in the graph so gradients stay defined."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[..., :: self.stride, :: self.stride] * 0.0


class Noise(nn.Module):
    """Standard normal noise of the output shape (space S4, RobustDARTS); ignores its input."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return torch.randn_like(x[..., :: self.stride, :: self.stride])


def starts_with_relu(op: nn.Module) -> bool:
    """True for the ops whose first step is a ReLU of their input (convs, factorized skip):
    ``op(relu(x), activated=True)`` then equals ``op(x)``, so a mixed op can share one ReLU."""
    return isinstance(op, (SepConv, DilConv, FactorizedReduce))


def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)


OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(
        3, stride=stride, padding=1, count_include_pad=False
    ),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
    "noise": lambda C, stride, affine: Noise(stride),
}
"""Op name → ``(C, stride, affine) -> module``; ``noise`` is extra (not in PRIMITIVES)."""


def build_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build the op called ``name``; unknown names are a user mistake, reported as such."""
    if name not in OPS:
        raise NasforgeError(f"unknown op '{name}'; choose from: {', '.join(OPS)}")
    return OPS[name](C, stride, affine)


def drop_path(x: Tensor, drop_prob: float, training: bool) -> Tensor:
    """Zero whole samples with probability ``drop_prob``; scale survivors by 1/keep.

    The mask is drawn on the device, so this never waits for the GPU. It is the identity in
    eval mode or when ``drop_prob`` is 0.
    """
    if not 0.0 <= drop_prob < 1.0:
        raise NasforgeError(f"drop_prob must be in [0, 1), got {drop_prob}")
    if not training or drop_prob == 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * (mask / keep)
