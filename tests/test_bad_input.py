"""The bad-input suite: every user mistake ends in exit code 2 and one line on stderr that
names the bad value and what is allowed, with no traceback and nothing left behind that
looks like a valid result (issue 8). Most cases run in-process through ``nasforge.cli.main``
(fast); a few run the real console entry point to prove the end-to-end behaviour.
"""

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_SEARCH, TINY_TRAIN, run_cli
from nasforge.cli import main
from nasforge.errors import NasforgeError

N_TRAIN = 1258  # the digits training split


def _sets(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


# A case that fails late because of a regression still finishes in seconds.
SEARCH = _sets(*TINY_SEARCH, "search.epochs=1")
TRAIN = _sets(*TINY_TRAIN, "train.epochs=1")
SNN = ["--channels", "2", "--timesteps", "2", "--epochs", "1", "--no-progress"]
ARCH = "SRB_k3,skip,SCB_k5,SRB_k5,SCB_k3"


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good and bad input files, shared read-only by every case."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "proxy64.txt").write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    (root / "out_of_range.txt").write_text("1\n2\n5000\n")
    (root / "duplicate.txt").write_text("1\n2\n2\n")
    (root / "not_integer.txt").write_text("1\n2.5\n")
    rows = [f"{i}\t{0.01 + i / 1000}\t{i % 10}\n" for i in range(N_TRAIN)]
    (root / "good.tsv").write_text("".join(rows))
    rows[3] = "3\tnan\t3\n"
    (root / "nan.tsv").write_text("".join(rows))
    (root / "two_columns.tsv").write_text("".join(f"{i}\t0.5\n" for i in range(N_TRAIN)))
    # CIFAR-10 in the official "python version" layout, one batch file replaced by garbage
    rng = np.random.default_rng(0)
    folder = root / "cifar" / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(folder / name, {b"labels": [int(v) for v in rng.integers(0, 10, 20)],
                                b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8)})
    _pickle(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    (folder / "data_batch_2").write_bytes(b"this is not a pickle")
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "notes.txt").write_text("x")
    (root / "a_file").write_text("x")
    (root / "binary.bin").write_bytes(b"\xff\xfe\x00\x80" * 8)
    return root


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, inputs) -> Path:
    """A finished one-epoch DARTS search on 64 digits."""
    run = tmp_path_factory.mktemp("bad-input-search") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["search", *SEARCH, "--proxy", str(inputs / "proxy64.txt"),
                 "--out", str(run)]) == 0
    torch.set_num_threads(threads)
    return run


def _error_line(capsys, argv: list[str], *fragments: str, code: int = 2) -> str:
    """Run ``argv`` in-process; check the exit code and the one-line message."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nasforge: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def _fill(argv: list[str], inputs: Path, run: Path | None = None) -> list[str]:
    out = []
    for arg in argv:
        arg = arg.replace("{IN}", str(inputs))
        if run is not None:
            arg = arg.replace("{RUN}", str(run))
        out.append(arg)
    return out


UNKNOWN_OP = ("Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
              "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])")
ODD_PAIRS = ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], "
             "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])")
LATER_NODE = ("Genotype(normal=[('sep_conv_3x3', 0, 2), ('skip_connect', 3, 2)], "
              "normal_concat=[2], reduce=[('max_pool_3x3', 0, 2)], reduce_concat=[2])")
CIFAR_HELP = "cs.toronto.edu/~kriz/cifar.html"

# (argv, fragments): each command writes, if anything, to ./out (the test's empty folder),
# and must leave that folder empty.
CASES = {
    # unknown names
    "search-unknown-algo": (["search", "--algo", "nope", "--out", "out"],
                            ["invalid choice: 'nope'", "'darts'", "'gdas'"]),
    "search-unknown-space": (["search", "--space", "nope", *SEARCH, "--out", "out"],
                             ["unknown search space 'nope'", "darts-no-none", "1shot1-ss1"]),
    "derive-unknown-rule": (["derive", "{RUN}", "--rule", "nope"],
                            ["invalid choice: 'nope'", "'argmax'", "'topk'"]),
    "search-unknown-dataset": (["search", "--dataset", "mnist", *SEARCH, "--out", "out"],
                               ["unknown dataset 'mnist'", "digits", "cifar10"]),
    "select-unknown-method": (["select", "--entropy", "{IN}/good.tsv", "--method", "p9",
                               "--size", "10", "--out", "out"],
                              ["unknown selection method 'p9'", "p1", "bottom-k"]),
    "search-unknown-proxy-method": (["search", "--proxy-method", "p9", *SEARCH, "--out", "out"],
                                    ["unknown selection method 'p9'", "p1"]),
    "entropy-unknown-model": (["entropy", "--model", "resnet7", "--out", "out"],
                              ["unknown auxiliary model 'resnet7'", "resnet20"]),
    "unknown-config": (["search", "--config", "nope", "--out", "out"],
                       ["config 'nope'", "nasforge config list"]),
    "misspelt-config": (["search", "--config", "darts-digit", "--out", "out"],
                        ["config 'darts-digit'", "close matches: darts-digits"]),
    "1shot1-unsupported-algo": (["search", "--space", "1shot1-ss1", "--algo", "pcdarts",
                                 *SEARCH, "--out", "out"],
                                ["'pcdarts'", "darts, enas, gdas"]),
    "1shot1-topk": (["search", "--space", "1shot1-ss1", "--derive", "topk", "--k", "4",
                     *SEARCH, "--out", "out"], ["got topk", "must be argmax"]),
    # top-k's k
    "derive-k-zero": (["derive", "{RUN}", "--rule", "topk", "--k", "0"],
                      ["k=0 is out of range", "allowed 1.."]),
    "derive-k-too-big": (["derive", "{RUN}", "--rule", "topk", "--k", "500"],
                         ["k=500 is out of range", "allowed 1.."]),
    "search-k-zero": (["search", "--derive", "topk", "--k", "0", *SEARCH, "--out", "out"],
                      ["search.k must be >= 1", "got 0"]),
    "search-k-too-big": (["search", "--derive", "topk", "--k", "500", *SEARCH, "--out", "out"],
                         ["k=500 is out of range", "allowed 1.."]),
    # genotypes
    "genotype-malformed": (["describe", "--genotype", "Genotype(normal=[('sep_conv_3x3', 0)"],
                           ["cannot parse genotype", "never closed"]),
    "genotype-unknown-op": (["train", "--genotype", UNKNOWN_OP, *TRAIN, "--out", "out"],
                            ["unknown op 'conv_9x9'", "allowed:", "sep_conv_3x3"]),
    "genotype-odd-pairs": (["train", "--genotype", ODD_PAIRS, *TRAIN, "--out", "out"],
                           ["normal has 1 (op, input) pairs", "two per node"]),
    "genotype-input-from-later-node": (["describe", "--genotype", LATER_NODE], ["node 3"]),
    "genotype-file-missing": (["train", "--genotype", "missing_genotype.txt", *TRAIN,
                               "--out", "out"],
                              ["'missing_genotype.txt' is not a file", "DARTS_V2"]),
    "describe-bad-genotype-name": (["describe", "--genotype", "DARTS_V9"],
                                   ["'DARTS_V9'", "DARTS_V2", "PC_DARTS"]),
    # SNN architectures
    "snn-train-unknown-block": (["snn", "train", "--arch", "SRB_k3,bogus,SCB_k5,SRB_k5,SCB_k3",
                                 *SNN, "--out", "out"],
                                ["unknown SNN block 'bogus'", "SRB_k5", "skip"]),
    "snn-train-wrong-length": (["snn", "train", "--arch", "SRB_k3,SCB_k5", *SNN, "--out", "out"],
                               ["needs 5 blocks, got 2", "SRB_k3,SCB_k5"]),
    "snn-train-unknown-model": (["snn", "train", "--model", "lenet", *SNN, "--out", "out"],
                                ["unknown SNN model 'lenet'", "cifarnet-wu"]),
    "snn-train-arch-and-model": (["snn", "train", "--arch", ARCH, "--model", "cifarnet-wu",
                                  *SNN, "--out", "out"], ["exactly one of --arch", "--model"]),
    "snn-describe-bad-arch": (["snn", "describe", "--arch", "SRB_k3,bogus"],
                              ["unknown SNN block 'bogus'", "SCB_k3"]),
    "snn-supernet-unknown-block": (["snn", "supernet", *SNN, "--set",
                                    "snn.blocks=[SCB_k3,bogus]", "--out", "out"],
                                   ["unknown SNN block 'bogus'", "SCB_k3"]),
    # proxy sizes, index files and entropy lists
    "select-size-too-big": (["select", "--entropy", "{IN}/good.tsv", "--method", "p1",
                             "--size", "5000", "--out", "out"],
                            ["size 5000", "more than the 1258", "allowed: a count 1..1258"]),
    "select-size-not-a-number": (["select", "--entropy", "{IN}/good.tsv", "--method", "p1",
                                  "--size", "ten", "--out", "out"],
                                 ["--size", "'ten'", "a count or a fraction"]),
    "search-proxy-size-too-big": (["search", "--proxy-method", "random", "--proxy-size",
                                   "99999", *SEARCH, "--out", "out"],
                                  ["size 99999", "more than the 1258", "allowed"]),
    "index-out-of-range": (["search", "--proxy", "{IN}/out_of_range.txt", *SEARCH,
                            "--out", "out"],
                           ["out_of_range.txt:3", "index 5000 is out of range",
                            "allowed 0..1257"]),
    "index-duplicate": (["search", "--proxy", "{IN}/duplicate.txt", *SEARCH, "--out", "out"],
                        ["duplicate.txt:3", "duplicate index 2", "first on line 2"]),
    "index-not-integer": (["search", "--proxy", "{IN}/not_integer.txt", *SEARCH,
                           "--out", "out"],
                          ["not_integer.txt:2", "'2.5' is not an integer index"]),
    "index-file-missing": (["search", "--proxy", "{IN}/none.txt", *SEARCH, "--out", "out"],
                           ["none.txt not found", "one example index per line"]),
    "snn-supernet-index-out-of-range": (["snn", "supernet", *SNN, "--set",
                                         "data.proxy={IN}/out_of_range.txt", "--out", "out"],
                                        ["index 5000 is out of range", "allowed 0..1257"]),
    "entropy-list-nan": (["select", "--entropy", "{IN}/nan.tsv", "--method", "p1", "--size",
                          "5", "--out", "out"],
                         ["nan.tsv:4", "entropy nan is not allowed", "finite and >= 0"]),
    "entropy-list-two-columns": (["select", "--entropy", "{IN}/two_columns.tsv", "--method",
                                  "p1", "--size", "5", "--out", "out"],
                                 ["two_columns.tsv:1", "expected 3 columns", "got 2"]),
    "search-entropy-list-nan": (["search", "--proxy-method", "p1", "--proxy-entropy",
                                 "{IN}/nan.tsv", *SEARCH, "--out", "out"],
                                ["nan.tsv:4", "entropy nan is not allowed"]),
    "search-k-center-without-features": (["search", "--proxy-method", "k-center",
                                          "--proxy-entropy", "{IN}/good.tsv", *SEARCH,
                                          "--out", "out"],
                                         ["k-center needs", "features.npy", "nasforge entropy"]),
    # data files
    "search-missing-data-root": (["search", "--dataset", "cifar10", "--data-root", "/nonexistent",
                                  *SEARCH, "--out", "out"],
                                 ["/nonexistent/cifar-10-batches-py", CIFAR_HELP]),
    "train-missing-data-root": (["train", "--genotype", "DARTS_V2", "--dataset", "cifar10",
                                 "--data-root", "/nonexistent", *TRAIN, "--out", "out"],
                                ["/nonexistent/cifar-10-batches-py", CIFAR_HELP]),
    "snn-supernet-missing-data-root": (["snn", "supernet", "--dataset", "cifar10",
                                        "--data-root", "/nonexistent", *SNN, "--out", "out"],
                                       ["/nonexistent/cifar-10-batches-py", CIFAR_HELP]),
    "entropy-missing-data-root": (["entropy", "--dataset", "cifar10", "--data-root",
                                   "/nonexistent", "--out", "out"],
                                  ["/nonexistent/cifar-10-batches-py", CIFAR_HELP]),
    "search-corrupt-data-file": (["search", "--dataset", "cifar10", "--data-root", "{IN}/cifar",
                                  *SEARCH, "--out", "out"],
                                 ["cannot read data file", "data_batch_2", "re-download"]),
    "data-info-corrupt-data-file": (["data", "info", "cifar10", "--data-root", "{IN}/cifar"],
                                    ["data_batch_2", CIFAR_HELP]),
    # run directories and resuming
    "search-resume-not-a-run": (["search", "--resume", "{IN}/not_a_run"],
                                ["not_a_run is not a nasforge run directory", "no config.yaml"]),
    "train-resume-a-search-run": (["train", "--resume", "{RUN}"],
                                  ["checkpoint.pt is not a checkpoint of this training run"]),
    "snn-train-resume-a-search-run": (["snn", "train", "--resume", "{RUN}"],
                                      ["is not an `snn train` run", "snn.arch nor snn.model"]),
    "snn-search-not-a-supernet": (["snn", "search", "--supernet", "{RUN}", "--out", "out"],
                                  ["is not an SNN super-network checkpoint"]),
    "search-out-under-a-file": (["search", *SEARCH, "--out", "{IN}/a_file/run"],
                                ["cannot write run directory", "a_file/run", "Not a directory"]),
    "search-out-is-a-file": (["search", *SEARCH, "--out", "{IN}/a_file"],
                             ["a_file is a file", "new or empty directory"]),
    "select-out-under-a-file": (["select", "--entropy", "{IN}/good.tsv", "--method", "p1",
                                 "--size", "5", "--out", "{IN}/a_file/o.txt"],
                                ["a_file", "where a directory is needed"]),
    "derive-out-under-a-file": (["derive", "{RUN}", "--out", "{IN}/a_file/g.txt"],
                                ["a_file", "where a directory is needed"]),
    # --set and strategy settings
    "set-unknown-key": (["search", "--set", "search.epoch=2", "--out", "out"],
                        ["unknown config key 'search.epoch'", "allowed:", "search.epochs"]),
    "set-out-of-range": (["search", "--set", "search.epochs=0", "--out", "out"],
                         ["search.epochs must be >= 1", "got 0"]),
    "set-wrong-type": (["search", "--set", "search.w_lr=fast", "--out", "out"],
                       ["search.w_lr must be float", "'fast'"]),
    "set-bad-choice": (["search", "--set", "search.order=third", "--out", "out"],
                       ["'third'", "first, second"]),
    "set-not-key-value": (["search", "--set", "search.epochs", "--out", "out"],
                          ["'search.epochs'", "section.key=value"]),
    "gdas-second-order": (["search", "--algo", "gdas", *SEARCH, "--set", "search.order=second",
                           "--out", "out"],
                          ["gdas is first-order only", "search.order=second"]),
    "pcdarts-indivisible-channels": (["search", "--algo", "pcdarts", *SEARCH, "--set",
                                      "search.channels=6", "--out", "out"],
                                     ["divisible by search.partial_k=4", "channels=6"]),
    # other commands
    "nb101-query-malformed-matrix": (["bench", "nb101-query", "--table", "{IN}/none.npz",
                                      "--matrix", "011;00", "--ops", "input,conv3x3-bn-relu"],
                                     ["--matrix '011;00'", "N rows of N digits 0/1"]),
    "nb101-query-binary-arch-file": (["bench", "nb101-query", "--table", "{IN}/none.npz",
                                      "--arch", "{IN}/binary.bin"],
                                     ["binary.bin is not a text file", "NAS-Bench-1shot1"]),
    "nb101-query-arch-and-matrix": (["bench", "nb101-query", "--table", "{IN}/none.npz",
                                     "--arch", "{IN}/a_file", "--matrix", "01;00",
                                     "--ops", "input,output"], ["--arch or as --matrix/--ops"]),
    "sweep-grid-option-of-no-step": (["sweep", "search", "--then", "train", "--genotype",
                                      "{prev}", "--grid", "bogus=1,2", "--out", "out"],
                                     ["grid key 'bogus' is an option of none", "search.algo"]),
    "entropy-out-is-a-directory": (["entropy", "--out", "{IN}/not_a_run", "--resume"],
                                   ["not_a_run is a directory", "file name"]),
    "bench-query-bad-key": (["bench", "query", "sep_conv_3x3~0|bogus~1"],
                            ["'sep_conv_3x3~0|bogus~1' is not a benchmark key", "op~input"]),
    "sweep-malformed-grid": (["sweep", "search", "--grid", "search.epochs", "--out", "out"],
                             ["--grid 'search.epochs'", "key=value1,value2"]),
    "report-on-a-file": (["report", "{IN}/a_file"], ["a_file is not a directory", "run directory"]),
    "runs-on-a-file": (["runs", "{IN}/a_file"], ["a_file is not a directory"]),
    "derive-not-a-search-run": (["derive", "{IN}/not_a_run"],
                                ["no strengths.json", "finished search run"]),
    "evaluate-a-search-run": (["evaluate", "{RUN}"], ["no trained model", "model.pt"]),
    "study-unknown-method": (["study", "proxy", "--set", "study.methods=[p1,bogus]",
                              "--out", "out"],
                             ["unknown selection method 'bogus'", "p1"]),
    "quality-unknown-space": (["quality", "--spaces", "bogus", "--out", "out"],
                              ["unknown space 'bogus'", "extcell-K"]),
}


@pytest.mark.parametrize("argv, fragments", list(CASES.values()), ids=list(CASES))
def test_bad_input(capsys, tmp_path, monkeypatch, inputs, search_run, argv, fragments):
    monkeypatch.chdir(tmp_path)
    _error_line(capsys, _fill(argv, inputs, search_run), *fragments)
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run dir, no output file
    assert sorted(p.name for p in inputs.iterdir()) == sorted(
        ["proxy64.txt", "out_of_range.txt", "duplicate.txt", "not_integer.txt", "good.tsv",
         "nan.tsv", "two_columns.tsv", "cifar", "not_a_run", "a_file", "binary.bin"])
    assert (inputs / "a_file").is_file()


def test_existing_run_dir_needs_resume_or_force(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    _error_line(capsys, ["search", *SEARCH, "--out", str(out)],
                f"run directory {out} already exists", f"--resume {out}", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "x"


def test_resume_with_a_checkpoint_of_another_algorithm(capsys, tmp_path, search_run):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    text = (run / "config.yaml").read_text()
    assert "algo: darts" in text and "  epochs: 1\n" in text
    (run / "config.yaml").write_text(text.replace("algo: darts", "algo: gdas")
                                     .replace("  epochs: 1\n", "  epochs: 2\n"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _error_line(capsys, ["search", "--resume", str(run)],
                "checkpoint.pt is not a checkpoint of a 'gdas' search")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_with_a_checkpoint_of_another_network_size(capsys, tmp_path, search_run):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("  channels: 4\n", "  channels: 8\n", 1)
                                     .replace("  epochs: 1\n", "  epochs: 2\n"))
    _error_line(capsys, ["search", "--resume", str(run)], "checkpoint", "channels")


def test_unwritable_output_directory(capsys, tmp_path, inputs):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        probe = parent / ".probe"
        try:
            probe.write_text("x")
            probe.unlink()
            pytest.skip("this user (root?) writes through chmod 500; the unwritable case "
                        "is covered by the 'out-under-a-file' cases")
        except PermissionError:
            pass
        _error_line(capsys, ["search", *SEARCH, "--out", str(parent / "run")],
                    f"cannot write run directory {parent / 'run'}", "Permission denied")
        _error_line(capsys, ["select", "--entropy", str(inputs / "good.tsv"), "--method", "p1",
                             "--size", "5", "--out", str(parent / "o.txt")],
                    str(parent), "Permission denied")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o700)


def test_debug_shows_the_traceback_instead(capsys, inputs):
    with pytest.raises(NasforgeError, match="duplicate index 2"):
        main(["--debug", "search", *SEARCH, "--proxy", str(inputs / "duplicate.txt"),
              "--out", "unused"])
    with pytest.raises(OSError):
        main(["--debug", "select", "--entropy", str(inputs / "good.tsv"), "--method", "p1",
              "--size", "5", "--out", str(inputs / "a_file" / "o.txt")])


def test_positive_lambda_is_a_one_line_warning_not_an_error(capsys, tmp_path, one_thread):
    supernet = tmp_path / "supernet"
    assert main(["snn", "supernet", *SNN, "--set", "snn.batch_size=128", "--set",
                 "snn.blocks=[SCB_k3,skip]", "--set", "snn.cutout=0",
                 "--out", str(supernet)]) == 0
    capsys.readouterr()
    assert main(["snn", "search", "--supernet", str(supernet), "--lam", "0.5", "--no-progress",
                 *_sets("snn.rounds=1", "snn.pool=4", "snn.mutations=2", "snn.crossovers=2",
                        "snn.top_k=2"), "--out", str(tmp_path / "search")]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "lam=0.5" in line]
    assert warnings == ["nasforge: warning: lam=0.5 > 0 rewards architectures that spike more; "
                        "spike-aware search expects lam <= 0 (thesis default -0.08, lam=0 "
                        "ignores spikes)"]
    assert "Traceback" not in captured.err
    assert captured.out.startswith("lam=+0.5: ")
    assert (tmp_path / "search" / "results.json").is_file()


# The real console entry point: exit code, exactly stderr, no traceback, nothing left behind.
PROCESS_CASES = {
    "unknown-dataset": (["search", "--dataset", "mnist", "--out", "{OUT}"],
                        "unknown dataset 'mnist'; choose from: cifar10, cifar100, digits, "
                        "imagenet, noisy-digits, svhn, tiny-imagenet"),
    "strategy-setting": (["search", "--algo", "gdas", "--set", "search.order=second",
                          "--out", "{OUT}"],
                         "gdas is first-order only; got search.order=second"),
    "duplicate-index": (["search", "--proxy", "{IN}/duplicate.txt", "--out", "{OUT}"],
                        "{IN}/duplicate.txt:3: duplicate index 2 (first on line 2)"),
    "unwritable-output": (["select", "--entropy", "{IN}/good.tsv", "--method", "p1", "--size",
                           "5", "--out", "{IN}/a_file/o.txt"],
                          "cannot use {IN}/a_file: a file is in the way where a directory is "
                          "needed; give a path whose folders can be created and written"),
}


@pytest.mark.parametrize("argv, expected", list(PROCESS_CASES.values()), ids=list(PROCESS_CASES))
def test_bad_input_in_a_real_process(tmp_path, inputs, argv, expected):
    out = tmp_path / "out"
    argv = [a.replace("{OUT}", str(out)) for a in _fill(argv, inputs)]
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == f"nasforge: error: {expected.replace('{IN}', str(inputs))}\n"
    assert not out.exists()
    assert not os.path.exists(inputs / "a_file" / "o.txt")
