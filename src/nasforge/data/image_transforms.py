"""Per-image transforms for data sets read from image files (no torchvision).

Geometry (crops, resizes) uses Pillow, whose bilinear resize antialiases when shrinking; colour
and flips act on uint8 ``[H, W, 3]`` numpy arrays. Every random choice comes from the
``numpy.random.Generator`` passed in, so a caller that seeds it from (seed, epoch, image index)
gets the same pixels whichever worker process decodes the image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from nasforge.errors import NasforgeError

__all__ = [
    "POLICIES",
    "ImageTransform",
    "center_crop",
    "color_jitter",
    "decode_image",
    "eval_resize_size",
    "hflip",
    "pad_crop",
    "random_resized_crop",
    "random_resized_crop_box",
    "resize_shorter",
    "to_chw_tensor",
]

# "inception": random-resized-crop training, resize + centre-crop evaluation (ImageNet).
# "fixed": images already have the target size; pad-crop/flip training (Tiny-ImageNet, CIFAR style).
POLICIES = ("inception", "fixed")
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2 luma, as Pillow's "L"


def decode_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image file as RGB; grayscale and CMYK JPEGs (ImageNet has both) are converted."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() forces the full decode inside the try
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise NasforgeError(f"cannot read image {path} ({reason})") from exc


def eval_resize_size(size: int) -> int:
    """Shorter side before the evaluation centre crop: 256 for 224, scaled in proportion."""
    return int(round(size * 256 / 224))


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Bilinear resize to shorter side ``side``; the longer side is truncated, as torchvision."""
    width, height = img.size
    if min(width, height) == side:
        return img
    if width <= height:
        new = (side, int(side * height / width))
    else:
        new = (int(side * width / height), side)
    return img.resize(new, Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central ``size`` × ``size`` window (offsets rounded like torchvision's CenterCrop)."""
    width, height = img.size
    if width < size or height < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from a {width}x{height} image")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def random_resized_crop_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """``(left, top, crop_width, crop_height)`` of an Inception-style random crop.

    Up to 10 tries draw an area fraction in ``scale`` and a log-uniform aspect ratio in
    ``ratio``; the first crop that fits is placed uniformly. If none fits, fall back to the
    largest centred crop whose aspect ratio is clamped into ``ratio``.
    """
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(
    img: Image.Image,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """A random crop (see :func:`random_resized_crop_box`) resized to ``size`` × ``size``."""
    left, top, w, h = random_resized_crop_box(img.width, img.height, rng, scale, ratio)
    box = (left, top, left + w, top + h)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box)


def hflip(arr: np.ndarray) -> np.ndarray:
    """Mirror an ``[H, W, C]`` array left-right."""
    return arr[:, ::-1]


def pad_crop(arr: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad ``[H, W, C]`` by ``pad`` and cut the original size at a random offset."""
    if pad <= 0:
        return arr
    h, w = arr.shape[:2]
    padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)))
    top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    return padded[top : top + h, left : left + w]


def _blend(arr: np.ndarray, other: np.ndarray | float, factor: float) -> np.ndarray:
    return np.clip(factor * arr + (1.0 - factor) * other, 0.0, 255.0)


def _shift_hue(arr: np.ndarray, shift: float) -> np.ndarray:
    """Rotate hue by ``shift`` turns via Pillow's HSV mode (as torchvision does for PIL)."""
    img = Image.fromarray(np.rint(arr).astype(np.uint8), "RGB").convert("HSV")
    hsv = np.array(img)
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(round(shift * 255))) % 256
    rgb = Image.fromarray(hsv, "HSV").convert("RGB")
    return np.asarray(rgb, dtype=np.float32)


def color_jitter(
    arr: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.0,
) -> np.ndarray:
    """Random brightness, contrast, saturation (factors in ``[1 - v, 1 + v]``) and hue shift.

    The four steps run in a random order, each clipped to 0..255, as torchvision's ColorJitter;
    contrast blends towards the mean grey level, saturation towards each pixel's grey value.
    """
    order = rng.permutation(4)
    factors = [rng.uniform(max(0.0, 1 - v), 1 + v) for v in (brightness, contrast, saturation)]
    shift = rng.uniform(-hue, hue) if hue > 0 else 0.0
    out = arr.astype(np.float32)
    for step in order:
        if step == 0 and brightness > 0:
            out = np.clip(out * factors[0], 0.0, 255.0)
        elif step == 1 and contrast > 0:
            out = _blend(out, float((out @ _GRAY).mean()), factors[1])
        elif step == 2 and saturation > 0:
            out = _blend(out, (out @ _GRAY)[..., None], factors[2])
        elif step == 3 and hue > 0:
            out = _shift_hue(out, shift)
    return np.rint(out).astype(np.uint8)


def to_chw_tensor(arr: np.ndarray | Image.Image) -> torch.Tensor:
    """uint8 ``[3, H, W]`` tensor from an RGB image or ``[H, W, 3]`` array."""
    arr = np.ascontiguousarray(np.asarray(arr, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(arr)


@dataclass(frozen=True)
class ImageTransform:
    """The per-image pipeline for one split: training (random) or evaluation (deterministic).

    ``inception``: train = random-resized-crop to ``size``, flip, colour jitter; evaluation =
    resize the shorter side to ``eval_resize_size(size)`` and centre-crop ``size``.
    ``fixed``: the shorter side is resized to ``size`` and centre-cropped (a no-op for images
    already ``size`` × ``size``); training adds pad-crop by ``crop_pad`` and flip.
    """

    size: int
    policy: str = "inception"
    train: bool = False
    flip: bool = True
    crop_pad: int = 0
    jitter: float = 0.4
    hue: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise NasforgeError(f"unknown transform policy {self.policy!r}; use one of {POLICIES}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise NasforgeError(f"image size {self.size!r} is not allowed: use an integer >= 1")

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Transform one RGB image into a uint8 ``[3, size, size]`` tensor."""
        if self.train and rng is None:
            raise ValueError("training transforms need a random generator")
        if self.policy == "inception":
            return to_chw_tensor(self._inception(img, rng))
        return to_chw_tensor(self._fixed(img, rng))

    def _inception(self, img: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
        if not self.train or rng is None:
            return np.asarray(center_crop(resize_shorter(img, eval_resize_size(self.size)),
                                          self.size))
        arr = np.asarray(random_resized_crop(img, self.size, rng))
        if self.flip and rng.random() < 0.5:
            arr = hflip(arr)
        if self.jitter > 0 or self.hue > 0:
            arr = color_jitter(arr, rng, self.jitter, self.jitter, self.jitter, self.hue)
        return arr

    def _fixed(self, img: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
        arr = np.asarray(center_crop(resize_shorter(img, self.size), self.size))
        if not self.train or rng is None:
            return arr
        arr = pad_crop(arr, self.crop_pad, rng)
        if self.flip and rng.random() < 0.5:
            arr = hflip(arr)
        return arr
