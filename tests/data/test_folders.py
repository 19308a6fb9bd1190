"""ImageNet / Tiny-ImageNet folder layouts and FolderBatches, on tiny JPEG trees in tmp_path."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasforge.data import (
    Augment,
    Batches,
    FolderBatches,
    FolderSplit,
    Split,
    dataset_info,
    load_dataset,
    make_batches,
)
from nasforge.data.folders import IMAGENET_MEAN, IMAGENET_STD
from nasforge.errors import NasforgeError

WNIDS = ["n02000002", "n01000001", "n03000003"]  # written unsorted; classes come out sorted
CLASSES = sorted(WNIDS)
SIZES = [(23, 17), (40, 31), (19, 44), (33, 33)]  # odd (width, height) pairs


def write_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, quality=95)


def imagenet_tree(root: Path, flat_val: bool) -> dict[str, str]:
    """train: 4 images per class (3 for the last); val: 2 per class. Returns val id → wnid."""
    base = root / "imagenet"
    for k, wnid in enumerate(WNIDS):
        for i, (w, h) in enumerate(SIZES[: 4 - (k == 2)]):
            write_jpeg(base / "train" / wnid / f"{wnid}_{i}.JPEG", w, h, seed=10 * k + i)
    truth, rows = {}, ["ImageId,PredictionString"]
    for i in range(6):
        wnid = WNIDS[(i * 2) % 3]
        image_id = f"ILSVRC2012_val_{i + 1:08d}"
        truth[image_id] = wnid
        folder = base / "val" if flat_val else base / "val" / wnid
        write_jpeg(folder / f"{image_id}.JPEG", *SIZES[i % 4], seed=100 + i)
        rows.append(f"{image_id},{wnid} 1 2 30 40 {wnid} 3 4 10 12")
    if flat_val:
        (base / "LOC_val_solution.csv").write_text("\n".join(rows[:1] + rows[1:][::-1]) + "\n")
    return truth


def tiny_tree(root: Path) -> dict[str, str]:
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for k, wnid in enumerate(WNIDS):
        for i in range(3):
            w, h = (64, 64) if i < 2 else (50, 70)
            write_jpeg(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", w, h, seed=k * 3 + i)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    truth, lines = {}, []
    for i in range(5):
        wnid = WNIDS[i % 3]
        truth[f"val_{i}.JPEG"] = wnid
        write_jpeg(base / "val" / "images" / f"val_{i}.JPEG", 64, 64, seed=50 + i)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t1\t60\t62")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return truth


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def indexed(split: FolderSplit) -> FolderSplit:
    """The same images labelled by their own index, so batches reveal which images they hold."""
    return FolderSplit(
        split.paths, torch.arange(len(split)), split.classes, split.size, split.policy,
        split.mean, split.std,
    )


def collect(batches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in batches.epoch(epoch)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


# --- layouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flat_val", [False, True])
def test_imagenet_layouts(tmp_path, flat_val):
    truth = imagenet_tree(tmp_path, flat_val)
    ds = load_dataset("imagenet", tmp_path)
    assert ds.classes == CLASSES and ds.num_classes == 3 and ds.val is None
    assert (ds.channels, ds.size) == (3, 224)
    assert (ds.mean, ds.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert len(ds.train) == 11 and len(ds.test) == 6
    for path, label in zip(ds.train.paths, ds.train.y.tolist(), strict=True):
        assert Path(path).parent.name == CLASSES[label]
    for path, label in zip(ds.test.paths, ds.test.y.tolist(), strict=True):
        assert CLASSES[label] == truth[Path(path).stem]
    assert ds.train.y.dtype == torch.int64 and ds.train.y.tolist() == sorted(ds.train.y.tolist())


def test_dataset_info_counts_without_decoding(tmp_path, monkeypatch):
    imagenet_tree(tmp_path, flat_val=True)

    def no_decoding(*args, **kwargs):
        raise AssertionError("dataset_info must not open images")

    monkeypatch.setattr(Image, "open", no_decoding)
    info = dataset_info("imagenet", tmp_path)
    assert info["train"] == 11 and info["val"] is None and info["test"] == 6
    assert info["classes"] == CLASSES and info["size"] == 224 and info["channels"] == 3
    assert info["mean"] == list(IMAGENET_MEAN) and info["std"] == list(IMAGENET_STD)


def test_tiny_imagenet_layout(tmp_path):
    truth = tiny_tree(tmp_path)
    ds = load_dataset("tiny-imagenet", tmp_path)
    assert ds.classes == CLASSES and ds.val is None and (ds.channels, ds.size) == (3, 64)
    assert len(ds.train) == 9 and len(ds.test) == 5
    for path, label in zip(ds.train.paths, ds.train.y.tolist(), strict=True):
        assert Path(path).parent.parent.name == CLASSES[label]
    for path, label in zip(ds.test.paths, ds.test.y.tolist(), strict=True):
        assert CLASSES[label] == truth[Path(path).name]
    bigger = load_dataset("tiny-imagenet", tmp_path, upscale=96)
    assert bigger.size == 96 and bigger.test.size == 96
    with pytest.raises(NasforgeError, match=">= 64"):
        load_dataset("tiny-imagenet", tmp_path, upscale=32)


def test_missing_data_names_the_path_and_the_source(tmp_path):
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("imagenet", tmp_path)
    message = one_line(excinfo)
    assert str(tmp_path / "imagenet") in message and "image-net.org" in message
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("tiny-imagenet", tmp_path)
    message = one_line(excinfo)
    assert str(tmp_path / "tiny-imagenet-200") in message and "tiny-imagenet-200.zip" in message
    assert "CS231n" in message


def test_missing_pieces_of_the_layouts(tmp_path):
    imagenet_tree(tmp_path, flat_val=True)
    csv = tmp_path / "imagenet" / "LOC_val_solution.csv"
    rows = csv.read_text().splitlines()
    csv.write_text("\n".join(rows[:-1]) + "\n")  # one val image loses its label
    with pytest.raises(NasforgeError, match="has no label for"):
        load_dataset("imagenet", tmp_path)
    csv.unlink()
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("imagenet", tmp_path)
    assert str(csv) in one_line(excinfo)
    tiny_tree(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(NasforgeError, match="val_annotations.txt"):
        load_dataset("tiny-imagenet", tmp_path)


def test_val_folder_of_an_unknown_class_is_rejected(tmp_path):
    imagenet_tree(tmp_path, flat_val=False)
    write_jpeg(tmp_path / "imagenet" / "val" / "n09999999" / "x.JPEG", 8, 8, seed=0)
    with pytest.raises(NasforgeError, match="n09999999"):
        load_dataset("imagenet", tmp_path)


# --- batches --------------------------------------------------------------------------------------


def pil_bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's bilinear (triangle) filter, widened when shrinking: an independent reference."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        taps = np.arange(lo, hi)
        w = np.clip(1 - np.abs((taps + 0.5 - centre) / support), 0, None)
        weights[i, lo:hi] = w / w.sum()
    return weights


def test_eval_image_matches_numpy_resize_256_and_centre_crop_224(tmp_path):
    path = tmp_path / "big.JPEG"
    write_jpeg(path, 300, 410, seed=7)
    split = FolderSplit([str(path)], torch.tensor([0]), ["a"], 224, "inception",
                        IMAGENET_MEAN, IMAGENET_STD)
    batches = FolderBatches(split, 4, mean=IMAGENET_MEAN, std=IMAGENET_STD, shuffle=False,
                            num_workers=0)
    (x, y), = list(batches.epoch(0))
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [0]

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)  # [410, 300, 3]
    new_h = int(256 * 410 / 300)  # shorter side (width) to 256, the other truncated: 349
    rows, cols = pil_bilinear_weights(410, new_h), pil_bilinear_weights(300, 256)
    resized = np.stack([rows @ pixels[..., c] @ cols.T for c in range(3)], axis=-1)
    top, left = int(round((new_h - 224) / 2)), int(round((256 - 224) / 2))
    expected = resized[top : top + 224, left : left + 224]
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    got = (x[0].permute(1, 2, 0).numpy() * std + mean) * 255
    assert np.abs(got - expected).max() <= 1.01  # Pillow rounds to uint8 between its passes
    assert np.abs(got - expected).mean() < 0.5


def test_eval_batches_are_in_order_and_normalised(tmp_path):
    imagenet_tree(tmp_path, flat_val=False)
    ds = load_dataset("imagenet", tmp_path)
    batches = FolderBatches(ds.test, 4, mean=ds.mean, std=ds.std, shuffle=False,
                            image_size=32, num_workers=0, channels_last=True)
    assert len(batches) == 2 and batches.num_examples == 6 and batches.device.type == "cpu"
    out = list(batches.epoch(3))
    assert [tuple(x.shape) for x, _ in out] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    assert out[0][0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(torch.cat([y for _, y in out]), ds.test.y)
    assert same(out, collect(batches, 4))  # evaluation never depends on the epoch
    raw = (out[0][0] * torch.tensor(ds.std).view(1, 3, 1, 1)
           + torch.tensor(ds.mean).view(1, 3, 1, 1)) * 255
    assert torch.allclose(raw, raw.round(), atol=1e-3) and raw.min() >= -1e-3


@pytest.mark.parametrize("data", ["imagenet", "tiny-imagenet"])
def test_training_batches_are_deterministic_across_worker_counts(tmp_path, data):
    imagenet_tree(tmp_path, flat_val=False) if data == "imagenet" else tiny_tree(tmp_path)
    ds = load_dataset(data, tmp_path)
    split = indexed(ds.train)
    augment = Augment(crop_pad=4, flip=True, cutout=6)

    def make(workers: int, batch_size: int = 4, **kwargs) -> FolderBatches:
        return FolderBatches(split, batch_size, mean=ds.mean, std=ds.std, augment=augment,
                             seed=3, image_size=32, num_workers=workers, **kwargs)

    serial = make(0)
    assert serial.train and serial.image_size == 32
    first = collect(serial, 0)
    assert same(first, collect(make(2), 0))
    assert same(first, collect(serial, 0))
    assert not same(first, collect(serial, 1))
    assert torch.equal(torch.cat([y for _, y in first]).sort().values, torch.arange(len(split)))
    # per-image randomness depends on (seed, epoch, index) only, not on how images are batched
    order = torch.cat([y for _, y in first])
    by_index = torch.cat([x for x, _ in first])[order.argsort()]
    regrouped = collect(make(0, batch_size=5), 0)
    assert torch.equal(torch.cat([x for x, _ in regrouped])[order.argsort()], by_index)


def test_subsets_drop_last_and_the_global_rng(tmp_path):
    tiny_tree(tmp_path)
    ds = load_dataset("tiny-imagenet", tmp_path)
    split = indexed(ds.train)
    idx = torch.tensor([8, 1, 4, 6, 2])
    batches = FolderBatches(split, 2, mean=ds.mean, std=ds.std, indices=idx, drop_last=True,
                            augment=Augment(flip=True), num_workers=0)
    assert len(batches) == 2 and batches.num_examples == 5
    state = torch.get_rng_state()
    seen = torch.cat([y for _, y in batches.epoch(0)])
    assert torch.equal(torch.get_rng_state(), state)
    assert len(seen) == 4 and set(seen.tolist()) <= set(idx.tolist())
    with pytest.raises(NasforgeError, match="out of range"):
        FolderBatches(split, 2, mean=ds.mean, std=ds.std, indices=torch.tensor([9]))
    with pytest.raises(NasforgeError, match="num_workers"):
        FolderBatches(split, 2, mean=ds.mean, std=ds.std, num_workers=-1)
    with pytest.raises(NasforgeError, match="one value per channel"):
        FolderBatches(split, 2, mean=(0.5,), std=(0.5,))


def test_eval_on_tiny_imagenet_is_the_raw_image(tmp_path):
    tiny_tree(tmp_path)
    ds = load_dataset("tiny-imagenet", tmp_path)
    batches = FolderBatches(ds.test, 8, mean=(0, 0, 0), std=(1, 1, 1), shuffle=False,
                            augment=Augment(crop_pad=4, flip=True), num_workers=0)
    assert not batches.train
    (x, _), = list(batches.epoch(0))
    pixels = torch.from_numpy(np.array(Image.open(ds.test.paths[0]).convert("RGB")))
    assert torch.equal((x[0] * 255).round().to(torch.uint8), pixels.permute(2, 0, 1))


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_jpeg_names_the_file(tmp_path, workers):
    imagenet_tree(tmp_path, flat_val=False)
    bad = tmp_path / "imagenet" / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated mid-scan
    ds = load_dataset("imagenet", tmp_path)
    batches = FolderBatches(ds.train, 4, mean=ds.mean, std=ds.std, image_size=16,
                            augment=Augment(flip=True), num_workers=workers)
    with pytest.raises(NasforgeError) as excinfo:
        list(batches.epoch(0))
    message = one_line(excinfo)
    assert str(bad) in message and message.startswith("cannot read image")


def test_make_batches_picks_the_right_kind(tmp_path):
    tensor_split = Split(torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.arange(5))
    plain = make_batches(tensor_split, 2, mean=(0.5,) * 3, std=(0.5,) * 3, num_workers=4,
                         image_size=8, train=True, jitter=0.1)
    assert isinstance(plain, Batches) and len(plain) == 3
    tiny_tree(tmp_path)
    ds = load_dataset("tiny-imagenet", tmp_path)
    folder = make_batches(ds.train, 2, mean=ds.mean, std=ds.std, num_workers=0)
    assert isinstance(folder, FolderBatches) and len(folder) == 5
