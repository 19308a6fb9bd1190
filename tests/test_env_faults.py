"""Issue 14, item 6: environment faults are one line and exit code 2, naming the path the
user gave (never an internal temporary file); a run whose checkpoint write hit a full disk
resumes to the same result; a closed stdout pipe ends quietly; argparse errors carry the
``nasforge: error:`` prefix once."""

import csv
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_SEARCH
from nasforge import checkpoint
from nasforge.cli import main


def _sets(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _one_line(capsys, argv: list[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nasforge: error: ") and lines[0].count("nasforge: error:") == 1
    assert ".tmp" not in lines[0], lines[0]  # never an internal temporary file
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def _log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def test_a_full_disk_while_checkpointing_is_one_line_and_the_run_resumes(
        capsys, tmp_path, monkeypatch, small_proxy, one_thread):
    sets = ["search", *_sets(*TINY_SEARCH, "search.epochs=3"), "--proxy", str(small_proxy)]
    assert main([*sets, "--out", str(tmp_path / "ref")]) == 0

    run = tmp_path / "run"
    monkeypatch.setattr(checkpoint, "_reached", {})
    monkeypatch.setenv(checkpoint.FULL_ENV, "checkpoint-write:2")  # epoch 1's checkpoint
    line = _one_line(capsys, [*sets, "--out", str(run)], f"cannot write {run / 'checkpoint.pt'}",
                     "No space left on device", "--resume")
    assert line.count(str(run)) == 1
    assert not list(run.glob(".*.tmp")) and not list(run.glob("*.tmp"))  # no half file left
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 0  # last good
    assert not (run / "strengths.json").exists()

    monkeypatch.delenv(checkpoint.FULL_ENV)
    assert main(["search", "--resume", str(run)]) == 0
    ref = tmp_path / "ref"
    assert (run / "genotype.txt").read_text() == (ref / "genotype.txt").read_text()
    assert (run / "strengths.json").read_bytes() == (ref / "strengths.json").read_bytes()
    assert _log(run / "search_log.csv") == _log(ref / "search_log.csv")


def test_the_full_disk_hook_raises_enospc_through_torch_save(tmp_path, monkeypatch):
    """A real full disk fails inside torch.save, which wraps the OSError in a RuntimeError;
    the writer reports the OSError, names the checkpoint and leaves the old one intact."""
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_checkpoint({"epoch": 0, "w": torch.zeros(1000)}, path)
    monkeypatch.setattr(checkpoint, "_reached", {})
    monkeypatch.setenv(checkpoint.FULL_ENV, "checkpoint-write:1")
    with pytest.raises(OSError) as err:
        checkpoint.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, path)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert checkpoint.load_checkpoint(path)["epoch"] == 0


def _refuse_temp_files(code: int):
    def mkstemp(prefix="", suffix="", dir=None):  # noqa: A002 (tempfile's signature)
        name = f"{prefix}x1y2z3w4{suffix}"  # mkstemp's 8 random characters
        raise OSError(code, os.strerror(code), os.path.join(dir or ".", name))

    return mkstemp


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_output_folder_is_one_line_naming_the_users_path(
        capsys, tmp_path, monkeypatch, code):
    """As root, chmod cannot make a folder read-only, so the writer's temporary file is
    refused the way a read-only file system refuses it."""
    monkeypatch.chdir(tmp_path)
    entropy = tmp_path / "good.tsv"
    entropy.write_text("".join(f"{i}\t{0.01 + i / 1000}\t{i % 10}\n" for i in range(1258)))
    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", _refuse_temp_files(code))
    reason = os.strerror(code)
    _one_line(capsys, ["select", "--entropy", str(entropy), "--method", "p1", "--size", "5",
                       "--out", "ro/p1.txt"], "ro/p1.txt", reason)
    assert not Path("ro/p1.txt").exists()
    _one_line(capsys, ["search", *_sets(*TINY_SEARCH), "--out", "ro/run"], "ro/run", reason)
    assert not any(Path("ro").rglob("*.tmp")) if Path("ro").exists() else True


def test_a_read_only_folder_in_the_middle_of_a_run(capsys, tmp_path, monkeypatch, small_proxy,
                                                   one_thread):
    """The folder becomes read-only after the run started: the first checkpoint write fails
    with one line that names the checkpoint the user's --out holds."""
    real = checkpoint.tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None):  # noqa: A002
        if prefix.startswith(".checkpoint.pt"):
            return _refuse_temp_files(errno.EROFS)(prefix, suffix, dir)
        return real(prefix=prefix, suffix=suffix, dir=dir)

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", mkstemp)
    run = tmp_path / "run"
    _one_line(capsys, ["search", *_sets(*TINY_SEARCH, "search.epochs=1"), "--proxy",
                       str(small_proxy), "--out", str(run)],
              f"cannot use {run / 'checkpoint.pt'}", "Read-only file system")


def test_a_closed_stdout_pipe_ends_quietly_in_process(capsys, monkeypatch):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["config", "list"]) == 0
    assert capsys.readouterr().err == ""


def test_a_closed_stdout_pipe_ends_quietly_in_a_real_process():
    """`nasforge config list | head -1`, made deterministic: the reader has gone before the
    first write, so every write meets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "nasforge.cli", "config", "list"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("argv, expected", [
    (["search", "--bogus"], "nasforge: error: unrecognized arguments: --bogus"),
    (["bogus"], "nasforge: error: argument command: invalid choice: 'bogus'"),
    (["snn", "describe", "--arch", "x", "--channels", "x"],
     "nasforge: error: snn describe: argument --channels: invalid int value: 'x'"),
    (["select", "--entropy", "e.tsv"],
     "nasforge: error: select: the following arguments are required: --method, --size, --out"),
], ids=["top-level", "bad-command", "subcommand-option", "missing-required"])
def test_argparse_errors_carry_the_prefix_once(capsys, argv, expected):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(expected), err
    assert err.count("nasforge") == 1, err


def test_an_allocation_the_host_cannot_make_is_one_line(capsys):
    """A real allocator failure: a batch of 2^40 images cannot be allocated anywhere."""
    line = _one_line(capsys, ["bench", "step", "--batch", str(2**40), "--channels", "4",
                              "--layers", "3", "--nodes", "2", "--resolution", "8",
                              "--steps", "1", "--warmup", "0", "--device", "cpu"],
                     "out of memory: could not allocate", "GiB of host memory",
                     "lower the batch size")
    size_gib = float(line.split("could not allocate ")[1].split(" GiB")[0].replace(",", ""))
    assert size_gib == 2**40 * 3 * 8 * 8 * 4 / 2**30  # the batch of random images


def test_a_gpu_out_of_memory_is_one_line(capsys, monkeypatch):
    """torch.OutOfMemoryError (what CUDA raises) keeps only torch's first sentences."""
    import nasforge.benchmarks.step as step

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
            "79.19 GiB of which 2.50 GiB is free. Of the allocated memory 70 GiB is ...")

    monkeypatch.setattr(step, "time_search_step", oom)
    _one_line(capsys, ["bench", "step"],
              "out of memory: CUDA out of memory. Tried to allocate 20.00 GiB;",
              "lower the batch size")
    assert "total capacity" not in capsys.readouterr().err


def test_other_runtime_errors_still_raise(monkeypatch):
    """Only allocation failures are turned into one line; a bug keeps its traceback."""
    import nasforge.benchmarks.step as step

    def bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(step, "time_search_step", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["bench", "step"])
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="allocate"):  # --debug shows the traceback
        main(["--debug", "bench", "step", "--batch", str(2**40), "--channels", "4", "--layers", "3",
              "--nodes", "2", "--resolution", "8", "--steps", "1", "--warmup", "0",
              "--device", "cpu"])
