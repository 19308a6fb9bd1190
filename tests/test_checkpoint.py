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


def test_previous_checkpoint_kept_and_used_when_latest_corrupt(tmp_path, capsys):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 2
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert load_checkpoint(path)["epoch"] == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nasforge: warning: checkpoint ")
    assert "corrupt or truncated" in lines[0] and "ck.pt.prev (epoch 1)" in lines[0]
    assert has_checkpoint(path)
    # the bad file is kept aside and the good one restored: no second warning
    assert (tmp_path / "ck.pt.corrupt").exists()
    assert load_checkpoint(path)["epoch"] == 1
    assert capsys.readouterr().err == ""
    save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path.with_name("ck.pt.prev"))["epoch"] == 1


def test_a_flipped_byte_inside_a_tensor_is_detected(tmp_path, capsys):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(4096)}, path)
    save_checkpoint({"epoch": 2, "w": torch.zeros(4096)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the tensor data: torch.load alone would not notice
    path.write_bytes(bytes(data))
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(4096))
    assert "CRC-32 mismatch" in capsys.readouterr().err


def test_previous_copy_never_leaves_the_latest_missing(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1}, path)
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(path.exists())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert all(seen) and load_checkpoint(path)["epoch"] == 2
    assert load_checkpoint(path.with_name("ck.pt.prev"))["epoch"] == 1


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    path = tmp_path / "ck.pt"
    (tmp_path / ".ck.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    save_checkpoint({"epoch": 1}, path)
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_missing_and_unrecoverable(tmp_path):
    with pytest.raises(NasforgeError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(NasforgeError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_failed_write_names_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    import errno

    from nasforge import checkpoint

    target = tmp_path / "results.json"
    target.write_text("old\n")

    def full(fh):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        checkpoint._atomic_write(target, full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old\n"  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no .tmp left

    def refuse(prefix="", suffix="", dir=None):  # noqa: A002
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}abcd1234{suffix}")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as err:
        checkpoint.atomic_write_text(tmp_path / "o.txt", "x")
    assert err.value.filename == str(tmp_path / "o.txt")
