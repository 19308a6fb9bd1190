import os

import pytest
import torch

from nasforge.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from nasforge.errors import NasforgeError


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json"]
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1}, path)

    def boom(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert load_checkpoint(path)["epoch"] == 1


def test_previous_checkpoint_kept_and_used_when_latest_corrupt(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 2
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with pytest.warns(UserWarning, match="corrupt"):
        assert load_checkpoint(path)["epoch"] == 1
    assert has_checkpoint(path)


def test_missing_and_unrecoverable(tmp_path):
    with pytest.raises(NasforgeError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(NasforgeError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")
