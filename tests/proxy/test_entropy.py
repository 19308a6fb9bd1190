import math

import numpy as np
import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.proxy.entropy import (
    ForgettingCounter,
    count_forgetting,
    entropy_from_logits,
    load_features,
    read_entropy_list,
    read_forgetting,
    save_features,
    write_entropy_list,
    write_forgetting,
)


def numpy_entropy(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)


def test_entropy_of_known_logits():
    for k in (2, 10, 100):
        h = entropy_from_logits(torch.full((4, k), 3.0))
        assert torch.allclose(h, torch.full((4,), math.log(k)), atol=1e-5)
    confident = torch.tensor([[60.0, 0.0, 0.0], [0.0, -1e4, 1e4]])
    assert entropy_from_logits(confident).max() < 1e-20
    masked = torch.tensor([[0.0, 0.0, float("-inf")]])
    assert entropy_from_logits(masked).item() == pytest.approx(math.log(2))


def test_entropy_matches_numpy_and_keeps_float64():
    logits = np.random.RandomState(0).randn(50, 10) * 3
    h = entropy_from_logits(torch.from_numpy(logits))
    assert h.dtype == torch.float64
    np.testing.assert_allclose(h.numpy(), numpy_entropy(logits), rtol=1e-12)
    h16 = entropy_from_logits(torch.from_numpy(logits).bfloat16())
    assert h16.dtype == torch.float32 and ((h16 >= 0) & (h16 <= math.log(10) + 1e-5)).all()


def test_entropy_list_round_trip_keeps_full_precision(tmp_path):
    entropy = torch.tensor([0.1 + 0.2, 1e-300, 2.302585092994046, 0.0], dtype=torch.float64)
    labels = torch.tensor([3, 0, 9, 1])
    path = write_entropy_list(tmp_path / "e.tsv", entropy, labels)
    assert path.read_text().splitlines()[0] == "0\t0.30000000000000004\t3"
    listing = read_entropy_list(path, 4)
    assert torch.equal(listing.index, torch.arange(4))
    assert torch.equal(listing.entropy, entropy) and listing.entropy.dtype == torch.float64
    assert torch.equal(listing.label, labels) and len(listing) == 4


def test_reads_a_hand_written_list_with_header_and_spaces(tmp_path):
    path = tmp_path / "authors.txt"
    path.write_text("index entropy label\n2\t0.5\t1\n0   1.25e-3  7\n\n1 2 0\n")
    listing = read_entropy_list(path, num_examples=3)
    assert listing.index.tolist() == [0, 1, 2]
    assert listing.entropy.tolist() == [1.25e-3, 2.0, 0.5]
    assert listing.label.tolist() == [7, 0, 1]
    assert len(read_entropy_list(path)) == 3


@pytest.mark.parametrize(("text", "num", "message"), [
    ("0\t0.5\n", None, r"e\.tsv:1: expected 3 columns \(index entropy label\), got 2"),
    ("0\t0.5\t1\n1\tabc\t2\n", None, r"e\.tsv:2: entropy 'abc' is not a number"),
    ("0\t0.5\t1\n1.5\t0.1\t2\n", None, r"e\.tsv:2: index '1\.5' is not an integer"),
    ("0\t0.5\tcat\n", None, r"e\.tsv:1: label 'cat' is not an integer"),
    ("0\tnan\t1\n", None, r"e\.tsv:1: entropy nan is not allowed"),
    ("0\tinf\t1\n", None, r"e\.tsv:1: entropy inf is not allowed"),
    ("0\t-0.1\t1\n", None, r"e\.tsv:1: entropy -0\.1 is not allowed"),
    ("h e l\n-1\t0.1\t1\n", None, r"e\.tsv:2: index -1 is negative"),
    ("0\t0.5\t1\n1\t0.5\t1\n0\t0.1\t2\n", None, r"e\.tsv:3: duplicate index 0 \(first on line 1\)"),
    ("0\t0.5\t1\n2\t0.5\t1\n", 3, r"e\.tsv: index 1 is missing"),
    ("0\t0.5\t1\n5\t0.5\t1\n", 3, r"e\.tsv:2: index 5 is out of range; .* 0\.\.2"),
    ("index\tentropy\tlabel\n", None, r"has no rows"),
])
def test_entropy_list_reader_errors_name_file_and_line(tmp_path, text, num, message):
    path = tmp_path / "e.tsv"
    path.write_text(text)
    with pytest.raises(NasforgeError, match=message):
        read_entropy_list(path, num)


def test_missing_files_are_user_errors(tmp_path):
    with pytest.raises(NasforgeError, match="entropy list .*nope.tsv not found"):
        read_entropy_list(tmp_path / "nope.tsv")
    with pytest.raises(NasforgeError, match="forgetting file .* not found"):
        read_forgetting(tmp_path / "nope.tsv")
    with pytest.raises(NasforgeError, match="features file .* not found"):
        load_features(tmp_path / "nope.npy")


def test_forgetting_file_round_trip_and_errors(tmp_path):
    path = write_forgetting(tmp_path / "f.tsv", torch.tensor([0, 3, 1]))
    assert path.read_text() == "0\t0\n1\t3\n2\t1\n"
    assert read_forgetting(path, 3).tolist() == [0, 3, 1]
    shuffled = tmp_path / "g.tsv"
    shuffled.write_text("index count\n1 3\n0 0\n")
    assert read_forgetting(shuffled).tolist() == [0, 3]
    with pytest.raises(NasforgeError, match="index 2 is missing"):
        read_forgetting(shuffled, 3)
    shuffled.write_text("0 1.5\n")
    with pytest.raises(NasforgeError, match=r"g\.tsv:1: count '1\.5' is not an integer"):
        read_forgetting(shuffled)


def test_features_round_trip_and_row_mismatch(tmp_path):
    features = torch.randn(5, 4, dtype=torch.float64)
    path = save_features(tmp_path / "f.npy", features)
    loaded = load_features(path, 5)
    assert loaded.dtype == torch.float32 and torch.equal(loaded, features.float())
    with pytest.raises(NasforgeError, match="has 5 rows but the training split has 6 examples"):
        load_features(path, 6)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(NasforgeError, match="cannot read features file"):
        load_features(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.zeros(3))
    with pytest.raises(NasforgeError, match=r"expected a numeric array \[N, D\]"):
        load_features(tmp_path / "flat.npy")


def test_forgetting_counter_on_a_hand_made_sequence():
    history = torch.tensor([
        # ex0 always right, ex1 flips twice, ex2 never learned, ex3 learned late then forgets
        [1, 1, 0, 0],
        [1, 0, 0, 1],
        [1, 1, 0, 0],
        [1, 0, 0, 1],
    ], dtype=torch.bool)
    assert count_forgetting(history).tolist() == [0, 2, 4, 1]
    # batch-wise updates in any order give the same counts, and state survives a round trip
    counter = ForgettingCounter(4)
    for row in history[:2]:
        counter.update(torch.tensor([3, 1]), row[[3, 1]])
        counter.update(torch.tensor([0, 2]), row[[0, 2]])
    resumed = ForgettingCounter(4)
    resumed.load_state_dict(counter.state_dict())
    for row in history[2:]:
        resumed.update(torch.tensor([2, 0, 3, 1]), row[[2, 0, 3, 1]])
    assert resumed.counts().tolist() == [0, 2, 4, 1]
    assert resumed.presented.tolist() == [4, 4, 4, 4]


def test_writers_reject_bad_values(tmp_path):
    with pytest.raises(ValueError, match="finite and non-negative"):
        write_entropy_list(tmp_path / "e.tsv", torch.tensor([float("nan")]), torch.tensor([0]))
    with pytest.raises(ValueError, match="2 entropies but 1 labels"):
        write_entropy_list(tmp_path / "e.tsv", torch.tensor([0.1, 0.2]), torch.tensor([0]))
