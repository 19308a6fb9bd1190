"""Per-image transforms: crop geometry, eval resizing, flips, colour jitter and decoding errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from nasforge.data.image_transforms import (
    ImageTransform,
    center_crop,
    color_jitter,
    decode_image,
    eval_resize_size,
    hflip,
    pad_crop,
    random_resized_crop,
    random_resized_crop_box,
    resize_shorter,
    to_chw_tensor,
)
from nasforge.errors import NasforgeError


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("width,height", [(37, 91), (300, 20), (5, 5), (1, 1), (640, 480)])
def test_random_resized_crop_boxes_lie_inside_the_image(width, height):
    rng = np.random.default_rng(1)
    for _ in range(200):
        left, top, w, h = random_resized_crop_box(width, height, rng)
        assert 0 < w <= width and 0 < h <= height
        assert 0 <= left <= width - w and 0 <= top <= height - h


def test_random_resized_crop_keeps_scale_and_ratio_when_a_try_fits():
    rng = np.random.default_rng(2)
    for _ in range(200):
        _, _, w, h = random_resized_crop_box(500, 400, rng)
        # rounding w and h to integers moves area and ratio a little past the bounds
        assert 0.08 * 0.9 <= w * h / (500 * 400) <= 1.0
        assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05


@pytest.mark.parametrize(
    "width,height,expected",
    [(400, 100, (133, 0, 133, 100)), (100, 400, (0, 133, 100, 133)), (120, 100, (0, 0, 120, 100))],
)
def test_random_resized_crop_falls_back_to_a_centre_crop(width, height, expected):
    # an area fraction above 1 never fits, so all 10 tries fail
    box = random_resized_crop_box(width, height, np.random.default_rng(0), scale=(2.0, 3.0))
    assert box == expected


def test_random_resized_crop_output_size_and_determinism():
    img = noise_image(73, 41)
    a = random_resized_crop(img, 32, np.random.default_rng(5))
    b = random_resized_crop(img, 32, np.random.default_rng(5))
    assert a.size == (32, 32)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_eval_resize_sizes_scale_256_over_224():
    assert eval_resize_size(224) == 256
    assert eval_resize_size(112) == 128
    assert eval_resize_size(64) == 73


def test_resize_shorter_and_centre_crop_geometry():
    assert resize_shorter(noise_image(410, 300), 256).size == (349, 256)  # int(256 * 410 / 300)
    assert resize_shorter(noise_image(300, 410), 256).size == (256, 349)
    same = noise_image(64, 80)
    assert resize_shorter(same, 64) is same
    arr = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    crop = np.asarray(center_crop(Image.fromarray(arr, "RGB"), 4))
    assert np.array_equal(crop, arr[2:6, 2:6])  # round(1.5) = 2, round(2.5) = 2
    with pytest.raises(ValueError):
        center_crop(Image.fromarray(arr, "RGB"), 8)


def test_hflip_and_pad_crop():
    arr = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(hflip(arr)[:, 0], arr[:, -1])
    assert pad_crop(arr, 0, np.random.default_rng(0)) is arr
    padded = np.pad(arr, ((2, 2), (2, 2), (0, 0)))
    for seed in range(20):
        out = pad_crop(arr, 2, np.random.default_rng(seed))
        assert out.shape == arr.shape
        windows = [padded[t : t + 6, s : s + 5] for t in range(5) for s in range(5)]
        assert any(np.array_equal(out, w) for w in windows)


def test_colour_jitter_strength_zero_is_identity_and_gray_stays_gray():
    arr = np.asarray(noise_image(9, 7))
    assert np.array_equal(color_jitter(arr, np.random.default_rng(0), 0, 0, 0, 0), arr)
    gray = np.repeat(np.arange(0, 250, 5, dtype=np.uint8).reshape(5, 10, 1), 3, axis=2)
    for seed in range(5):
        out = color_jitter(gray, np.random.default_rng(seed), 0, 0, 0.4, 0.3)
        assert np.abs(out.astype(int) - gray).max() <= 1  # saturation and hue leave gray alone


def test_colour_jitter_brightness_scales_every_pixel_by_one_factor():
    arr = np.random.default_rng(3).integers(20, 120, (8, 8, 3), dtype=np.uint8)
    for seed in range(5):
        out = color_jitter(arr, np.random.default_rng(seed), 0.4, 0, 0, 0).astype(float)
        ratio = out / arr
        assert 0.6 - 0.03 <= ratio.mean() <= 1.4 + 0.03
        assert np.abs(out - ratio.mean() * arr).max() <= 1.5


def test_colour_jitter_is_seeded_and_hue_changes_colours():
    arr = np.asarray(noise_image(16, 16, seed=4))
    a = color_jitter(arr, np.random.default_rng(9), hue=0.3)
    b = color_jitter(arr, np.random.default_rng(9), hue=0.3)
    assert a.dtype == np.uint8 and a.shape == arr.shape and np.array_equal(a, b)
    shifted = color_jitter(arr, np.random.default_rng(9), 0, 0, 0, 0.5)
    assert not np.array_equal(shifted, arr)


@pytest.mark.parametrize("policy", ["inception", "fixed"])
def test_image_transform_shapes_and_determinism(policy):
    img = noise_image(45, 30)
    train = ImageTransform(24, policy, train=True, crop_pad=3)
    out = train(img, np.random.default_rng(7))
    assert out.dtype == torch.uint8 and out.shape == (3, 24, 24)
    assert torch.equal(out, train(img, np.random.default_rng(7)))
    assert not torch.equal(out, train(img, np.random.default_rng(8)))
    evaluate = ImageTransform(24, policy)
    assert torch.equal(evaluate(img), evaluate(img, np.random.default_rng(1)))
    with pytest.raises(ValueError):
        train(img)


def test_fixed_policy_leaves_native_size_images_untouched():
    img = noise_image(64, 64)
    assert torch.equal(ImageTransform(64, "fixed")(img), to_chw_tensor(img))
    flip_only = ImageTransform(64, "fixed", train=True, flip=True)
    outs = {flip_only(img, np.random.default_rng(s))[0, 0, 0].item() for s in range(20)}
    assert outs == {np.asarray(img)[0, 0, 0], np.asarray(img)[0, -1, 0]}


def test_image_transform_rejects_bad_settings():
    with pytest.raises(NasforgeError, match="policy"):
        ImageTransform(32, "bogus")
    with pytest.raises(NasforgeError, match="image size"):
        ImageTransform(0)


def test_decode_image_converts_to_rgb_and_names_bad_files(tmp_path):
    gray = tmp_path / "gray.JPEG"
    Image.fromarray(np.full((5, 6), 80, dtype=np.uint8), "L").save(gray)
    img = decode_image(gray)
    assert img.mode == "RGB" and img.size == (6, 5)
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(NasforgeError) as excinfo:
        decode_image(bad)
    assert str(bad) in str(excinfo.value) and "\n" not in str(excinfo.value)
