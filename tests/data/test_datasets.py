"""Data-set loading: the digits split, the official CIFAR/SVHN file formats, and their errors."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from sklearn.datasets import load_digits

from nasforge.data import DATASETS, data_root, dataset_info, load_dataset
from nasforge.data.datasets import DIGITS_SPLIT_SEED, stratified_split
from nasforge.errors import NasforgeError

N_DIGITS = 1797


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def raw_digits():
    bunch = load_digits()
    return bunch.images, bunch.target


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- digits ---------------------------------------------------------------------------------------


def test_digits_shapes_and_sizes(digits):
    assert digits.name == "digits"
    assert (digits.channels, digits.size, digits.num_classes) == (1, 8, 10)
    assert digits.classes == [str(c) for c in range(10)]
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == N_DIGITS
    assert sizes == (N_DIGITS - 359 - 180, 180, 359)  # round(20%), round(10%) of 1797
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape == (len(split), 1, 8, 8)


def test_digits_split_is_a_disjoint_stratified_partition(raw_digits):
    _, labels = raw_digits
    test, val, train = stratified_split(labels, (0.2, 0.1), DIGITS_SPLIT_SEED)
    together = np.concatenate([train, val, test])
    assert len(together) == N_DIGITS and len(np.unique(together)) == N_DIGITS
    for part, frac in ((test, 0.2), (val, 0.1), (train, 0.7)):
        for c in range(10):
            expected = frac * (labels == c).sum()
            assert abs((labels[part] == c).sum() - expected) <= 1


def test_digits_pixels_come_from_sklearn(digits, raw_digits):
    images, labels = raw_digits
    test, val, train = stratified_split(labels, (0.2, 0.1), DIGITS_SPLIT_SEED)
    pixels = np.rint(images * 255 / 16).astype(np.uint8)
    for split, part in ((digits.train, train), (digits.val, val), (digits.test, test)):
        assert np.array_equal(split.x[:, 0].numpy(), pixels[part])
        assert np.array_equal(split.y.numpy(), labels[part])
    assert int(digits.train.x.max()) == 255 and int(digits.train.x.min()) == 0


def test_digits_split_ignores_global_seeds(digits):
    torch.manual_seed(123)
    np.random.seed(456)
    again = load_dataset("digits")
    for a, b in ((digits.train, again.train), (digits.val, again.val), (digits.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_mean_and_std_come_from_the_train_split(digits):
    x = digits.train.x.double() / 255
    assert digits.mean == pytest.approx((x.mean().item(),), abs=1e-12)
    assert digits.std == pytest.approx((x.std(unbiased=False).item(),), abs=1e-12)


def test_upscale_resizes_every_split():
    big = load_dataset("digits", upscale=16)
    small = load_dataset("digits")
    assert big.size == 16
    for b, s in ((big.train, small.train), (big.val, small.val), (big.test, small.test)):
        assert b.x.shape == (len(s), 1, 16, 16) and b.x.dtype == torch.uint8
        assert torch.equal(b.y, s.y)
    # bilinear resizing keeps the overall brightness
    assert big.train.x.float().mean().item() == pytest.approx(
        small.train.x.float().mean().item(), abs=1.0
    )
    same = load_dataset("digits", upscale=8)
    assert torch.equal(same.train.x, small.train.x)


@pytest.mark.parametrize("bad", [4, 7, 0, -8, 12.0, True, "16"])
def test_bad_upscale_is_rejected(bad):
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("digits", upscale=bad)
    message = one_line_error(excinfo)
    assert repr(bad) in message and ">= 8" in message


def test_unknown_dataset_lists_choices():
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("imagenet-21k")
    message = one_line_error(excinfo)
    assert "imagenet" in message
    for name in ("cifar10", "cifar100", "digits", "svhn"):
        assert name in message
    assert set(DATASETS.names()) >= {"cifar10", "cifar100", "digits", "svhn"}


def test_dataset_info_digits():
    info = dataset_info("digits")
    assert info == {
        "name": "digits",
        "num_classes": 10,
        "classes": [str(c) for c in range(10)],
        "channels": 1,
        "size": 8,
        "train": 1258,
        "val": 180,
        "test": 359,
        "mean": info["mean"],
        "std": info["std"],
    }
    assert isinstance(info["mean"], list) and len(info["std"]) == 1
    json.dumps(info)  # the CLI's --json output must not fail


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("NASFORGE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("NASFORGE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".nasforge" / "data"


# --- CIFAR, written in the official "python version" format ---------------------------------------


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def cifar_batch(rng: np.random.Generator, n: int, num_classes: int, label_key: bytes) -> dict:
    return {
        b"batch_label": b"testing batch",
        label_key: [int(v) for v in rng.integers(0, num_classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


@pytest.fixture
def cifar10_root(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    batches = [cifar_batch(rng, 20, 10, b"labels") for _ in range(6)]
    for i, batch in enumerate(batches[:5], start=1):
        write_pickle(folder / f"data_batch_{i}", batch)
    write_pickle(folder / "test_batch", batches[5])
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return tmp_path, batches


def test_cifar10_reads_back_exact_pixels_in_chw(cifar10_root):
    root, batches = cifar10_root
    ds = load_dataset("cifar10", root)
    assert (ds.channels, ds.size, ds.num_classes, ds.val) == (3, 32, 10, None)
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert len(ds.train) == 100 and len(ds.test) == 20
    data = np.concatenate([b[b"data"] for b in batches[:5]])
    labels = np.concatenate([b[b"labels"] for b in batches[:5]])
    assert np.array_equal(ds.train.x.reshape(100, 3072).numpy(), data)
    assert np.array_equal(ds.train.y.numpy(), labels)
    assert np.array_equal(ds.test.x.reshape(20, 3072).numpy(), batches[5][b"data"])
    for n, c, r, k in ((0, 0, 0, 0), (7, 1, 5, 30), (42, 2, 31, 1), (99, 2, 31, 31)):
        assert int(ds.train.x[n, c, r, k]) == int(data[n, c * 1024 + r * 32 + k])
    x = ds.train.x.double() / 255
    assert ds.mean == pytest.approx(tuple(x.mean(dim=(0, 2, 3)).tolist()), abs=1e-12)
    assert ds.std == pytest.approx(tuple(x.std(dim=(0, 2, 3), unbiased=False).tolist()), abs=1e-12)
    assert dataset_info("cifar10", root)["val"] is None


def test_cifar10_missing_file_names_path_and_source(cifar10_root):
    root, _ = cifar10_root
    missing = root / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("cifar10", root)
    message = one_line_error(excinfo)
    assert str(missing) in message and "cs.toronto.edu/~kriz/cifar.html" in message


def test_cifar10_corrupt_file_names_path(cifar10_root):
    root, _ = cifar10_root
    broken = root / "cifar-10-batches-py" / "test_batch"
    broken.write_bytes(b"\x80\x02this is not a pickle at all")
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("cifar10", root)
    assert str(broken) in one_line_error(excinfo)


def test_cifar10_wrong_layout_names_path(cifar10_root):
    root, _ = cifar10_root
    odd = root / "cifar-10-batches-py" / "data_batch_1"
    write_pickle(odd, {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]})
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("cifar10", root)
    assert str(odd) in one_line_error(excinfo)


class _Hostile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_pickles_cannot_run_code(cifar10_root):
    root, _ = cifar10_root
    target = root / "pwned"
    write_pickle(root / "cifar-10-batches-py" / "batches.meta", {b"x": _Hostile(str(target))})
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("cifar10", root)
    assert "batches.meta" in one_line_error(excinfo)
    assert not target.exists()


def test_cifar100_reads_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train, test = (cifar_batch(rng, n, 100, b"fine_labels") for n in (30, 10))
    train[b"coarse_labels"] = [0] * 30
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    fine = [f"class{i}".encode() for i in range(100)]
    write_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"a"] * 20})
    ds = load_dataset("cifar100", tmp_path)
    assert (ds.num_classes, len(ds.classes), ds.classes[57]) == (100, 100, "class57")
    assert np.array_equal(ds.train.x.reshape(30, 3072).numpy(), train[b"data"])
    assert ds.train.y.tolist() == train[b"fine_labels"]
    assert ds.test.y.tolist() == test[b"fine_labels"]


def test_cifar100_missing_file(tmp_path):
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("cifar100", tmp_path)
    message = one_line_error(excinfo)
    assert str(tmp_path / "cifar-100-python" / "meta") in message and "CIFAR-100" in message


# --- SVHN, written as the official format-2 .mat files -------------------------------------------


def write_svhn(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def test_svhn_layout_and_label_ten_is_zero(tmp_path):
    rng = np.random.default_rng(2)
    x, y = write_svhn(tmp_path / "svhn" / "train_32x32.mat", 25, rng)
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", 5, rng)
    ds = load_dataset("svhn", tmp_path)
    assert ds.train.x.shape == (25, 3, 32, 32) and len(ds.test) == 5
    assert np.array_equal(ds.train.x.numpy(), x.transpose(3, 2, 0, 1))
    assert int(ds.train.x[3, 1, 4, 20]) == int(x[4, 20, 1, 3])
    expected = y.reshape(-1).astype(np.int64) % 10
    assert np.array_equal(ds.train.y.numpy(), expected) and int(ds.train.y[0]) == 0
    assert ds.classes == [str(c) for c in range(10)]


def test_svhn_missing_and_corrupt(tmp_path):
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("svhn", tmp_path)
    message = one_line_error(excinfo)
    assert str(tmp_path / "svhn" / "train_32x32.mat") in message and "ufldl" in message
    bad = tmp_path / "svhn" / "train_32x32.mat"
    bad.parent.mkdir()
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(NasforgeError) as excinfo:
        load_dataset("svhn", tmp_path)
    assert str(bad) in one_line_error(excinfo)
