"""SimCLR pretraining of an auxiliary backbone without labels (thesis §3.5.4; Chen et al. 2020).

The thesis checks that entropy-based selection does not depend on how the auxiliary model
was trained: a ResNet-20 is pretrained with SimCLR, frozen, and only a linear classifier on its
features is fitted with labels; entropy comes from that classifier. Views are made on the
device from a batch of uint8 images with one generator, so an epoch is fixed by (seed, epoch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.data.augment import random_flip

__all__ = [
    "ProjectionHead",
    "color_jitter",
    "make_view",
    "nt_xent",
    "random_resized_crop",
    "simclr_epoch",
]

_LUMA = (0.299, 0.587, 0.114)


class ProjectionHead(nn.Module):
    """SimCLR's 2-layer MLP g(h); the loss acts on its output, the features h are kept."""

    def __init__(self, in_dim: int, hidden: int | None = None, out_dim: int = 128) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy over the 2B views; positives are (i, i + B).

    Each view is classified among the other 2B − 1 by cosine similarity / temperature, so the
    loss is a plain cross entropy with the diagonal masked out. Computed in float32.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    arange = torch.arange(n, device=z.device)
    targets = torch.cat([arange + n, arange])
    return F.cross_entropy(sim, targets)


def random_resized_crop(x: torch.Tensor, generator: torch.Generator,
                        scale: tuple[float, float] = (0.2, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random box (area fraction in ``scale``, aspect in ``ratio``) and resize it back.

    SimCLR's key augmentation, done for the whole batch at once with ``grid_sample``.
    """
    b = x.shape[0]
    if b == 0:
        return x
    opts = dict(generator=generator, device=x.device)
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(b, **opts)
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        b, **opts)
    aspect = log_ratio.exp()
    sx = (area * aspect).sqrt().clamp(max=1.0)  # box width / image width
    sy = (area / aspect).sqrt().clamp(max=1.0)
    tx = (1 - sx) * (2 * torch.rand(b, **opts) - 1)  # box centre in [-1, 1] coordinates
    ty = (1 - sy) * (2 * torch.rand(b, **opts) - 1)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 0, 2] = sx, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def color_jitter(x: torch.Tensor, generator: torch.Generator, strength: float = 0.4,
                 p: float = 0.8, gray_p: float = 0.2) -> torch.Tensor:
    """Random brightness and contrast (and saturation + grayscale for RGB) on [0, 1] images.

    With probability ``p`` per image, brightness, contrast and saturation are scaled by factors
    in [1 − strength, 1 + strength]; RGB images then turn gray with probability ``gray_p``.
    All random numbers are drawn every time, so the stream does not depend on the outcomes.
    """
    b, c = x.shape[:2]
    opts = dict(generator=generator, device=x.device)

    def factor() -> torch.Tensor:
        return 1 + strength * (2 * torch.rand(b, 1, 1, 1, **opts) - 1)

    apply = torch.rand(b, 1, 1, 1, **opts) < p
    brightness, contrast, saturation = factor(), factor(), factor()
    to_gray = torch.rand(b, 1, 1, 1, **opts) < gray_p
    y = x * brightness
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * contrast + mean
    if c == 3:
        luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        gray = (y * luma).sum(dim=1, keepdim=True)
        y = (y - gray) * saturation + gray
    y = torch.where(apply, y.clamp(0, 1), x)
    if c == 3:
        luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        gray = (y * luma).sum(dim=1, keepdim=True).expand_as(y)
        y = torch.where(to_gray, gray, y)
    return y


def make_view(x: torch.Tensor, generator: torch.Generator, *, flip: bool,
              normalise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One SimCLR view of uint8 images: resized crop, flip, colour jitter, then normalise."""
    view = random_resized_crop(x.float() / 255.0, generator)
    if flip:
        view = random_flip(view, generator)
    return normalise(color_jitter(view, generator))


def simclr_epoch(backbone: Callable[[torch.Tensor], torch.Tensor], head: nn.Module,
                 optimizer: torch.optim.Optimizer,
                 batches: Iterable[tuple[torch.Tensor, torch.Generator]], *, flip: bool,
                 temperature: float, normalise: Callable[[torch.Tensor], torch.Tensor],
                 autocast: Callable[[], object], scaler: torch.amp.GradScaler,
                 on_step: Callable[[], None] = lambda: None) -> tuple[torch.Tensor, int]:
    """One pass of contrastive training; returns the summed loss (a device tensor) and count.

    ``batches`` yields uint8 images with the generator that drives their augmentation.
    """
    loss_sum, n = None, 0
    for x, generator in batches:
        v1 = make_view(x, generator, flip=flip, normalise=normalise)
        v2 = make_view(x, generator, flip=flip, normalise=normalise)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            z = head(backbone(torch.cat([v1, v2])))
            z1, z2 = z.chunk(2)
            loss = nt_xent(z1, z2, temperature)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        part = loss.detach() * x.shape[0]
        loss_sum = part if loss_sum is None else loss_sum + part
        n += x.shape[0]
        on_step()
    if loss_sum is None:
        raise ValueError("simclr_epoch got no batches")
    return loss_sum, n
