import numpy as np
import pytest
import torch

from nasforge.data.dvs import DVSSplit
from nasforge.errors import NasforgeError
from nasforge.snn.data import FrameBatches, holdout, load_snn_data, snn_batches, static_augment


def test_digits_geometry() -> None:
    data = load_snn_data("digits")
    assert (data.in_channels, data.in_size, data.num_classes, data.frames) == (1, 8, 10, False)
    assert len(data.mean) == 1 and data.val is not None


def test_unknown_dataset_lists_dvs_sets() -> None:
    with pytest.raises(NasforgeError, match="cifar10-dvs"):
        load_snn_data("mnist")


def test_holdout_is_a_stratified_disjoint_partition() -> None:
    labels = np.repeat(np.arange(5), 20)
    train, val = holdout(labels, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted([*train.tolist(), *val.tolist()]) == list(range(100))
    assert np.bincount(labels[val.numpy()]).tolist() == [4] * 5
    again = holdout(labels, 0.2, seed=3)
    assert torch.equal(again[1], val)
    with pytest.raises(NasforgeError, match="0 < f < 1"):
        holdout(labels, 1.0, 0)


def _frames(n: int = 7, t: int = 3) -> DVSSplit:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (n, t, 2, 8, 8), generator=gen, dtype=torch.uint8)
    return DVSSplit(x, torch.arange(n, dtype=torch.int64) % 2)


def test_frame_batches_are_time_first_and_replayable() -> None:
    split = _frames()
    batches = FrameBatches(split, 3, seed=1)
    assert len(batches) == 3
    first = list(batches.epoch(0))
    x, y = first[0]
    assert x.shape == (3, 3, 2, 8, 8) and x.dtype == torch.float32
    seen = torch.cat([b[1] for b in first])
    assert len(seen) == 7
    # each yielded example equals its stored frames, transposed to [T, N, ...]
    order = [int(v) for v in torch.cat([b[0] for b in first], dim=1).flatten(2).sum(2).sum(0)]
    assert sorted(order) == sorted(int(v) for v in split.x.flatten(1).sum(1))
    again = list(batches.epoch(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    ordered = list(FrameBatches(split, 4, shuffle=False).epoch(5))
    assert torch.equal(ordered[0][0], split.x[:4].transpose(0, 1).float())
    with pytest.raises(NasforgeError, match="batch size"):
        FrameBatches(split, 0)


def test_static_batches_augment_only_when_shuffling() -> None:
    data = load_snn_data("digits")
    aug = static_augment(data, 1, True, 16)
    assert aug is not None and aug.cutout == 8  # cutout clipped to the image side
    evaluation = snn_batches(data, data.test, 16, device=torch.device("cpu"), shuffle=False,
                             augment=aug)
    x, _ = next(iter(evaluation.epoch(0)))
    plain = snn_batches(data, data.test, 16, device=torch.device("cpu"), shuffle=False)
    assert torch.equal(x, next(iter(plain.epoch(0)))[0])


def test_cli_data_info_and_list_include_dvs_sets(tmp_path) -> None:
    import json

    from conftest import run_cli
    from data.test_dvs import cifar_tree
    from nasforge.data.dvs import CIFAR10_DVS_CLASSES

    cifar_tree(tmp_path, {name: 2 for name in CIFAR10_DVS_CLASSES})
    res = run_cli("data", "info", "cifar10-dvs", "--data-root", str(tmp_path), "--timesteps",
                  "3", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["train"], info["test"], info["size"], info["timesteps"]) == (10, 10, 128, 3)
    listed = run_cli("data", "list").stdout.split()
    assert {"cifar10-dvs", "dvs128-gesture", "digits"} <= set(listed)
