"""Auxiliary models that score examples: the CIFAR ResNets of He et al. (2016, §4.2).

The thesis scores CIFAR-10 and SVHN with ResNet-20 and CIFAR-100 with ResNet-56. The CIFAR
variant has a 3×3 stem conv with 16 channels, then three stages of ``n`` basic blocks with 16,
32 and 64 channels (stride 2 at the start of stages 2 and 3), global average pooling and a
linear classifier: 6n + 2 weighted layers.

Shortcuts use the paper's option A, as its CIFAR experiments do: an identity, subsampled by
taking every second pixel and zero-padded in the channel dimension where the shape changes.
It has no parameters, so ResNet-20 for CIFAR-10 has 269,722 of them, the paper's "0.27M"
(option B's 1×1 projection convs with BN would add 2,752, giving 272,474).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.registry import Registry

__all__ = ["AUX_MODELS", "BasicBlock", "CifarResNet", "cifar_resnet"]

WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an option-A shortcut around them."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity; subsample and zero-pad channels when the block changes the shape."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad > 0:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2); ``features`` is the penultimate layer (k-center and SimCLR use it)."""

    def __init__(self, blocks: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.blocks = blocks
        self.conv1 = nn.Conv2d(in_channels, WIDTHS[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        stages, in_planes = [], WIDTHS[0]
        for i, planes in enumerate(WIDTHS):
            layers = []
            for b in range(blocks):
                stride = 2 if i > 0 and b == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        self.feature_dim = WIDTHS[-1]
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal convs (the paper's init), unit BN, PyTorch's default for the classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled output of the last stage, ``[B, 64]``; any input size works."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def cifar_resnet(depth: int, num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet of ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110, ...)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
    return CifarResNet((depth - 2) // 6, num_classes, in_channels)


AuxFactory = Callable[[int, int], CifarResNet]
AUX_MODELS: Registry[AuxFactory] = Registry("auxiliary model")


def _register(depth: int) -> None:
    def build(num_classes: int, in_channels: int = 3) -> CifarResNet:
        return cifar_resnet(depth, num_classes, in_channels)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"CIFAR ResNet-{depth} (n = {(depth - 2) // 6})."
    AUX_MODELS.register(f"resnet{depth}")(build)


for _depth in (20, 32, 44, 56):
    _register(_depth)
