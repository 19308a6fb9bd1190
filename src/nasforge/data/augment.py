"""Batched data augmentation that runs where the batch lives (CPU or GPU).

Per-image random choices are drawn as whole tensors from one generator, so there is no Python loop
over images and a batch's augmentation is fixed by the generator's state alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nasforge.errors import NasforgeError

__all__ = ["Augment", "cutout", "random_crop", "random_flip"]


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NasforgeError(f"augmentation {name} {value!r} is not allowed: use an integer >= 0")


@dataclass(frozen=True)
class Augment:
    """Which augmentations to apply; the defaults switch everything off."""

    crop_pad: int = 0  # pad-and-random-crop with zero padding, 0 = off
    flip: bool = False  # random horizontal flip with p = 0.5
    cutout: int = 0  # side of the cutout square, 0 = off

    def __post_init__(self) -> None:
        _check_size("crop_pad", self.crop_pad)
        _check_size("cutout", self.cutout)
        if not isinstance(self.flip, bool):
            raise NasforgeError(f"augmentation flip {self.flip!r} is not allowed: use true/false")

    @property
    def active(self) -> bool:
        return self.crop_pad > 0 or self.flip or self.cutout > 0

    def raw(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The steps that act on raw pixels, before normalisation: crop, then flip."""
        if self.crop_pad > 0:
            x = random_crop(x, self.crop_pad, generator)
        if self.flip:
            x = random_flip(x, generator)
        return x

    def normalised(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The steps that act after normalisation, where 0 is the mean: cutout."""
        if self.cutout > 0:
            x = cutout(x, self.cutout, generator)
        return x


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``pad`` and cut a window of the original size at a random offset."""
    _check_size("crop_pad", pad)
    if pad == 0 or x.shape[0] == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    left = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = top[:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = left[:, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5."""
    if x.shape[0] == 0:
        return x
    chosen = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(chosen[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``length``-sided square per image (DARTS cutout), clipped at the borders.

    The centre is uniform over all pixels; the square spans rows ``cy - length // 2`` up to
    ``cy - length // 2 + length`` (exclusive) and likewise for columns.
    """
    _check_size("cutout", length)
    if length == 0 or x.shape[0] == 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator, device=x.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=x.device)
    top, left = cy - length // 2, cx - length // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + length)  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + length)  # [B, W]
    hole = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W]
    return x.masked_fill(hole[:, None], 0)
