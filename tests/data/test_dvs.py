"""CIFAR10-DVS and DVS128-Gesture readers, frame integration and splits, on tiny raw files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.data.dvs import (
    CIFAR10_DVS_CLASSES,
    Events,
    integrate_frames,
    load_cifar10_dvs,
    load_dvs128_gesture,
    load_dvs_dataset,
    read_aedat2,
    read_aedat31,
    read_cifar10_dvs_file,
    read_gesture_labels,
    split_by_number,
)
from nasforge.errors import NasforgeError

# --- writers in the raw formats (independent of the reader) ----------------------------------


def write_aedat2(path: Path, raw_x, raw_y, bit0, t) -> None:
    """jAER AEDAT 2.0: '#' header lines, then big-endian (address, timestamp) uint32 pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b""
    for x, y, p, ts in zip(raw_x, raw_y, bit0, t, strict=True):
        addr = (int(y) << 8) | (int(x) << 1) | int(p)
        body += int(addr).to_bytes(4, "big") + int(ts).to_bytes(4, "big")
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file created by saveAEData\r\n"
    path.write_bytes(header + body)


def polarity_packet(xs, ys, ps, ts, overflow=0, valid=None, capacity=None) -> bytes:
    """One AEDAT 3.1 polarity packet: 28-byte little-endian header + 8-byte events."""
    n = len(xs)
    valid = [1] * n if valid is None else valid
    capacity = n if capacity is None else capacity
    head = (
        (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + (8).to_bytes(4, "little") + (4).to_bytes(4, "little")
        + int(overflow).to_bytes(4, "little") + int(capacity).to_bytes(4, "little")
        + int(n).to_bytes(4, "little") + int(sum(valid)).to_bytes(4, "little")
    )  # fmt: skip
    body = b""
    for x, y, p, t, v in zip(xs, ys, ps, ts, valid, strict=True):
        word = (int(x) << 17) | (int(y) << 2) | (int(p) << 1) | int(v)
        body += word.to_bytes(4, "little") + int(t).to_bytes(4, "little", signed=True)
    return head + body + b"\0" * 8 * (capacity - n)


def other_packet() -> bytes:
    """A special-event packet (type 0, 8-byte events) the reader must skip."""
    head = (
        (0).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8).to_bytes(4, "little")
        + (4).to_bytes(4, "little") + (0).to_bytes(4, "little") + (2).to_bytes(4, "little")
        + (2).to_bytes(4, "little") + (2).to_bytes(4, "little")
    )  # fmt: skip
    return head + bytes(range(16))


def write_aedat31(path: Path, packets: list[bytes]) -> None:
    header = (
        b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017\r\n"
        b"#!END-HEADER\r\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"".join(packets))


def rand_events(rng, n, t0=0):
    return (
        rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
        t0 + np.cumsum(rng.integers(1, 50, n)),
    )  # fmt: skip


def numpy_frames(x, y, p, T):
    """Independent integration: loop over events, chunk i = events [i*(N//T), ...)."""
    n = len(x)
    out = np.zeros((T, 2, 128, 128), dtype=np.int64)
    per = n // T
    for k in range(n):
        frame = min(k // per, T - 1) if per else T - 1
        out[frame, p[k], y[k], x[k]] += 1
    return np.minimum(out, 255).astype(np.uint8)


# --- readers -------------------------------------------------------------------------------------


def test_aedat2_round_trip_and_cifar10_dvs_orientation(tmp_path):
    rng = np.random.default_rng(0)
    rx, ry, bit, t = rand_events(rng, 37)
    path = tmp_path / "a.aedat"
    write_aedat2(path, rx, ry, bit, t)
    addr, ts = read_aedat2(path)
    assert np.array_equal(addr & 1, bit)
    assert np.array_equal((addr >> 1) & 0x7F, rx)
    assert np.array_equal((addr >> 8) & 0x7F, ry)
    assert np.array_equal(ts, t)
    ev = read_cifar10_dvs_file(path)
    assert np.array_equal(ev.x, 127 - ry) and np.array_equal(ev.y, 127 - rx)
    assert np.array_equal(ev.p, 1 - bit) and np.array_equal(ev.t, t)


def test_aedat31_round_trip_skips_other_packets_and_invalid_events(tmp_path):
    rng = np.random.default_rng(1)
    a = rand_events(rng, 10)
    b = rand_events(rng, 6, t0=5000)
    valid_b = [1, 0, 1, 1, 0, 1]
    path = tmp_path / "user01_fluorescent.aedat"
    write_aedat31(path, [polarity_packet(*a), other_packet(),
                         polarity_packet(*b, overflow=1, valid=valid_b, capacity=8)])  # fmt: skip
    ev = read_aedat31(path)
    keep = np.array(valid_b, dtype=bool)
    assert np.array_equal(ev.x, np.concatenate([a[0], b[0][keep]]))
    assert np.array_equal(ev.y, np.concatenate([a[1], b[1][keep]]))
    assert np.array_equal(ev.p, np.concatenate([a[2], b[2][keep]]))
    assert np.array_equal(ev.t, np.concatenate([a[3], b[3][keep] + (1 << 31)]))


def test_gesture_labels_csv(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("class,startTime_usec,endTime_usec\n1,100,200\n11,300,400\n\n")
    assert read_gesture_labels(path) == [(0, 100, 200), (10, 300, 400)]


# --- frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,T", [(50, 4), (53, 4), (3, 4), (0, 2), (16, 16)])
def test_split_by_number(n, T):
    b = split_by_number(n, T)
    assert b[0] == 0 and b[-1] == n and len(b) == T + 1
    sizes = np.diff(b)
    assert (sizes[:-1] == n // T).all() and sizes[-1] == n - (T - 1) * (n // T)


def test_integrate_frames_matches_numpy_and_splits_by_number():
    rng = np.random.default_rng(2)
    x, y, p, t = rand_events(rng, 203)
    x[:40], y[:40], p[:40] = 5, 7, 1  # a hot pixel in the first chunks
    ev = Events(x, y, p, t)
    frames = integrate_frames(ev, 4)
    assert frames.dtype == np.uint8 and frames.shape == (4, 2, 128, 128)
    assert np.array_equal(frames, numpy_frames(x, y, p, 4))
    assert frames.reshape(4, -1).sum(1).tolist() == [50, 50, 50, 53]
    hot = Events(np.zeros(300, np.int64), np.zeros(300, np.int64), np.zeros(300, np.int64),
                 np.arange(300))  # fmt: skip
    assert integrate_frames(hot, 1)[0, 0, 0, 0] == 255  # saturates


# --- data sets -----------------------------------------------------------------------------------


def cifar_tree(root: Path, per_class: dict[str, int]) -> dict[str, list]:
    rng = np.random.default_rng(3)
    written = {}
    for name, count in per_class.items():
        for i in range(count):
            ev = rand_events(rng, 9 + i)
            write_aedat2(root / "cifar10-dvs" / name / f"cifar10_{name}_{i}.aedat", *ev)
            written[f"{name}/{i}"] = ev
    return written


def test_cifar10_dvs_split_frames_and_cache(tmp_path):
    counts = {name: (12 if k < 2 else 1) for k, name in enumerate(CIFAR10_DVS_CLASSES)}
    written = cifar_tree(tmp_path, counts)
    ds = load_cifar10_dvs(tmp_path, T=3)
    # 12 files → 10 train (first 90% by sorted name: _0, _1, _10, _11, _2.._7), 2 test (_8, _9)
    order = sorted(f"cifar10_airplane_{i}.aedat" for i in range(12))
    assert order[10:] == ["cifar10_airplane_8.aedat", "cifar10_airplane_9.aedat"]
    assert len(ds.train) == 10 + 10 + 0 * 8 and len(ds.test) == 2 + 2 + 8
    assert ds.train.y.tolist() == [0] * 10 + [1] * 10
    assert ds.test.y.tolist() == [0, 0, 1, 1] + list(range(2, 10))
    assert ds.train.x.shape == (20, 3, 2, 128, 128) and ds.train.x.dtype == torch.uint8
    rx, ry, bit, _ = written["airplane/8"]
    assert np.array_equal(ds.test.x[0].numpy(), numpy_frames(127 - ry, 127 - rx, 1 - bit, 3))
    rx, ry, bit, _ = written["automobile/10"]  # 3rd in sorted order
    assert np.array_equal(ds.train.x[12].numpy(), numpy_frames(127 - ry, 127 - rx, 1 - bit, 3))
    cache = tmp_path / "cifar10-dvs" / "frames_T3.pt"
    assert cache.is_file()
    for f in (tmp_path / "cifar10-dvs").rglob("*.aedat"):
        f.unlink()  # a second load must come from the cache
    again = load_dvs_dataset("cifar10-dvs", tmp_path, T=3)
    assert torch.equal(again.train.x, ds.train.x) and torch.equal(again.test.y, ds.test.y)


def gesture_tree(root: Path):
    rng = np.random.default_rng(4)
    base = root / "DvsGesture"
    trials = {}
    for name in ("user01_fluorescent", "user02_led", "user03_natural"):
        x, y, p, t = rand_events(rng, 60)
        write_aedat31(
            base / f"{name}.aedat",
            [
                polarity_packet(x[:25], y[:25], p[:25], t[:25]),
                polarity_packet(x[25:], y[25:], p[25:], t[25:]),
            ],
        )
        cut1, cut2 = int(t[10]), int(t[40])
        rows = [(3, cut1, cut2), (11, cut2, int(t[-1]) + 1)]
        (base / f"{name}_labels.csv").write_text(
            "class,startTime_usec,endTime_usec\n" + "".join(f"{c},{s},{e}\n" for c, s, e in rows)
        )
        trials[name] = ((x, y, p, t), rows)
    (base / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser02_led.aedat\n")
    (base / "trials_to_test.txt").write_text("user03_natural.aedat\n")
    return trials


def test_dvs128_gesture_official_split(tmp_path):
    trials = gesture_tree(tmp_path)
    ds = load_dvs128_gesture(tmp_path, T=2)
    assert ds.num_classes == 11
    assert ds.train.y.tolist() == [2, 10, 2, 10] and ds.test.y.tolist() == [2, 10]
    (x, y, p, t), rows = trials["user03_natural"]
    for k, (_, start, end) in enumerate(rows):
        m = (t >= start) & (t < end)
        assert np.array_equal(ds.test.x[k].numpy(), numpy_frames(x[m], y[m], p[m], 2))
    assert ds.test.x[0].sum() == 30 and ds.test.x[1].sum() == 20
    assert (tmp_path / "dvs128-gesture" / "frames_T2.pt").is_file()


@pytest.mark.parametrize(
    "setup,name,expect",
    [
        (lambda r: None, "cifar10-dvs", "cifar10-dvs"),
        (lambda r: cifar_tree(r, {"airplane": 2}), "cifar10-dvs", "automobile"),
        (lambda r: None, "dvs128-gesture", "DvsGesture"),
        (lambda r: (r / "DvsGesture").mkdir(), "dvs128-gesture", "trials_to_train.txt"),
    ],
)
def test_missing_files_give_one_line_error(tmp_path, setup, name, expect):
    setup(tmp_path)
    with pytest.raises(NasforgeError) as info:
        load_dvs_dataset(name, tmp_path, T=2)
    msg = str(info.value)
    assert "\n" not in msg and expect in msg and str(tmp_path) in msg and "get the" in msg


def test_missing_trial_file_is_named(tmp_path):
    gesture_tree(tmp_path)
    (tmp_path / "DvsGesture" / "user02_led.aedat").unlink()
    with pytest.raises(NasforgeError, match="user02_led.aedat"):
        load_dvs128_gesture(tmp_path, T=2)


def test_bad_T_and_unknown_name(tmp_path):
    with pytest.raises(NasforgeError, match="T must be"):
        load_cifar10_dvs(tmp_path, T=0)
    with pytest.raises(NasforgeError, match="unknown DVS data set"):
        load_dvs_dataset("nmnist", tmp_path)


def test_damaged_file_is_named_and_cache_optional(tmp_path):
    cifar_tree(tmp_path, {name: 1 for name in CIFAR10_DVS_CLASSES})
    ds = load_cifar10_dvs(tmp_path, T=2, cache=False)
    assert len(ds.train) == 0 and len(ds.test) == 10
    assert not (tmp_path / "cifar10-dvs" / "frames_T2.pt").exists()
    bad = tmp_path / "cifar10-dvs" / "cat" / "cifar10_cat_0.aedat"
    bad.write_bytes(bad.read_bytes() + b"\x01\x02\x03")
    with pytest.raises(NasforgeError, match="cannot read data file .*cifar10_cat_0.aedat"):
        load_cifar10_dvs(tmp_path, T=2)


def test_out_of_range_coordinates_are_a_one_line_error(tmp_path):
    gesture_tree(tmp_path)
    path = tmp_path / "DvsGesture" / "user03_natural.aedat"
    write_aedat31(path, [polarity_packet([200], [3], [1], [5])])
    (path.parent / "user03_natural_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n1,0,9\n"
    )
    with pytest.raises(NasforgeError, match="user03_natural.aedat.*outside 0..127"):
        load_dvs128_gesture(tmp_path, T=2)
    with pytest.raises(NasforgeError, match="T must be"):
        load_dvs128_gesture(tmp_path, T=2.0)
