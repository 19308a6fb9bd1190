"""Index files and the weight/architecture split."""

import os

import pytest
import torch

from nasforge.data import read_index_file, split_weight_arch, write_index_file
from nasforge.errors import NasforgeError


def test_round_trip_keeps_order_and_comment(tmp_path):
    path = tmp_path / "sub" / "proxy.txt"
    write_index_file(path, torch.tensor([5, 0, 99, 42]), comment="entropy proxy\n10% of train")
    assert path.read_text() == "# entropy proxy\n# 10% of train\n5\n0\n99\n42\n"
    got = read_index_file(path, 100)
    assert got.dtype == torch.int64 and got.tolist() == [5, 0, 99, 42]
    write_index_file(path, [7, 3])  # plain ints; overwrites in place
    assert read_index_file(path, 10).tolist() == [7, 3]
    assert sorted(os.listdir(path.parent)) == ["proxy.txt"]  # no temporary file left


def test_blank_lines_and_comments_are_ignored(tmp_path):
    path = tmp_path / "idx.txt"
    path.write_text("# header\n\n  3  \n1 # inline note\n\t\n+2\n")
    assert read_index_file(path, 4).tolist() == [3, 1, 2]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "idx.txt"
    write_index_file(path, [1, 2, 3])

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_index_file(path, [9, 8])
    assert path.read_text() == "1\n2\n3\n" and os.listdir(tmp_path) == ["idx.txt"]


def test_write_rejects_indices_that_cannot_be_read_back(tmp_path):
    with pytest.raises(ValueError):
        write_index_file(tmp_path / "a.txt", [1, 1])
    with pytest.raises(ValueError):
        write_index_file(tmp_path / "a.txt", [-3])
    assert not (tmp_path / "a.txt").exists()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("1\n2\nabc\n", [":3:", "'abc'", "not an integer"]),
        ("1\n2.5\n", [":2:", "'2.5'"]),
        ("1\n\n10\n", [":3:", "index 10", "0..9"]),
        ("-1\n", [":1:", "index -1", "0..9"]),
        ("4\n# c\n7\n4\n", [":4:", "duplicate index 4", "line 1"]),
        ("", ["no indices"]),
        ("# only a comment\n\n", ["no indices"]),
    ],
)
def test_read_errors_are_one_line_and_precise(tmp_path, text, needles):
    path = tmp_path / "idx.txt"
    path.write_text(text)
    with pytest.raises(NasforgeError) as excinfo:
        read_index_file(path, 10)
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message


def test_missing_file_names_path(tmp_path):
    with pytest.raises(NasforgeError) as excinfo:
        read_index_file(tmp_path / "nope.txt", 10)
    assert str(tmp_path / "nope.txt") in str(excinfo.value)


@pytest.mark.parametrize("n", [10, 11, 1])
def test_split_weight_arch_halves(n):
    indices = torch.arange(100, 100 + n)
    weight, arch = split_weight_arch(indices, seed=3)
    assert len(weight) == (n + 1) // 2 and len(arch) == n // 2
    assert sorted(torch.cat([weight, arch]).tolist()) == indices.tolist()
    again = split_weight_arch(indices, seed=3)
    assert torch.equal(weight, again[0]) and torch.equal(arch, again[1])


def test_split_weight_arch_shuffles_by_seed():
    indices = torch.arange(40)
    weight, _ = split_weight_arch(indices, seed=0)
    other, _ = split_weight_arch(indices, seed=1)
    assert not torch.equal(weight, indices[:20])
    assert not torch.equal(weight, other)
