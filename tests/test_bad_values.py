"""Issue 14, items 5 and 7: values are validated before anything runs or is written, and
hostile sizes are refused with the allowed range before a network is built. Every case
exits 2 with one line on stderr and leaves the working folder empty (no run directory)."""

import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nasforge.cli import main
from nasforge.errors import NasforgeError, NumericalError

ARCH = "SRB_k3,skip,SCB_k5,SRB_k5,SCB_k3"
SNN = ["--channels", "2", "--timesteps", "2", "--epochs", "1", "--no-progress"]


def _sets(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _error_line(capsys, argv: list[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nasforge: error: "), lines[0]
    assert lines[0].count("nasforge: error:") == 1, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert captured.out == ""
    return lines[0]


def _ops(n: int, node: int | None = None) -> str:
    """A cell of ``n`` triples: op i goes into node i + 2 (or all into ``node``)."""
    return ", ".join(f"('sep_conv_3x3', {1 if node else i + 1}, {node or i + 2})"
                     for i in range(n))


def _genotype(normal: str) -> str:
    return (f"Genotype(normal=[{normal}], normal_concat=[2], "
            "reduce=[('max_pool_3x3', 0, 2)], reduce_concat=[2])")


def _bomb(levels: int = 9) -> str:
    """A billion-laughs YAML: 9 levels of 9 aliases each, 9**9 values once expanded."""
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
        prev = name
    return text + f"search:\n  epochs: *{prev}\n"


def _write_inputs(root: Path) -> None:
    (root / "dup.yaml").write_text("search:\n  epochs: 3\n  w_lr: 0.1\n  epochs: 4\n")
    (root / "dup_sections.yaml").write_text("search:\n  epochs: 3\nsearch:\n  w_lr: 0.1\n")
    (root / "bomb.yaml").write_text(_bomb())
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00\x80" * 64)
    (root / "latin1.yaml").write_bytes("search:\n  algo: caf\xe9\n".encode("latin-1"))
    (root / "nul.yaml").write_bytes(b"search:\n  epochs: 3\x00\n")
    (root / "sweep_dup.yaml").write_text("steps: [search]\nseeds: 1\nseeds: 2\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-values")
    _write_inputs(root)
    return root


HUGE_GENOTYPE = _genotype(_ops(3000))
FAR_NODE = _genotype("('sep_conv_3x3', 0, 2), ('skip_connect', 1, 5000)")

CASES = {
    # non-finite learning rates, in every command that trains
    "search-lr-inf": (["search", *_sets("search.w_lr=.inf"), "--out", "out"],
                      ["search.w_lr must be a finite number", "inf"]),
    "search-arch-lr-nan": (["search", *_sets("search.arch_lr=.nan"), "--out", "out"],
                           ["search.arch_lr must be a finite number", "nan"]),
    "train-lr-overflow": (["train", "--genotype", "DARTS_V2", *_sets("train.lr=1e400"),
                           "--out", "out"], ["train.lr must be a finite number", "inf"]),
    "entropy-lr-minus-inf": (["entropy", *_sets("entropy.lr=-.inf"), "--out", "e.tsv"],
                             ["entropy.lr must be a finite number", "-inf"]),
    "snn-train-lr-inf": (["snn", "train", "--arch", ARCH, *SNN, *_sets("snn.lr=.inf"),
                          "--out", "out"], ["snn.lr must be a finite number"]),
    "snn-supernet-lr-huge-int": (["snn", "supernet", *SNN, *_sets("snn.lr=1" + "0" * 400),
                                  "--out", "out"], ["snn.lr must be a finite number", "..."]),
    "quality-lr-nan": (["quality", *_sets("train.lr=.nan"), "--out", "out"],
                       ["train.lr must be a finite number"]),
    # Adam betas
    "search-beta-one": (["search", *_sets("search.arch_betas=[0.5, 1.0]"), "--out", "out"],
                        ["search.arch_betas must be in [0, 1)", "got 1.0"]),
    "snn-beta-negative": (["snn", "supernet", *SNN, *_sets("snn.betas=[-0.1, 0.999]"),
                           "--out", "out"], ["snn.betas must be in [0, 1)", "got -0.1"]),
    # seeds
    "seed-too-big": (["search", "--seed", "4294967296", "--out", "out"],
                     ["search: argument --seed", "allowed 0..4294967295"]),
    "seed-negative-set": (["search", *_sets("run.seed=-1"), "--out", "out"],
                          ["run.seed must be >= 0", "got -1"]),
    "seed-too-big-set": (["train", "--genotype", "DARTS_V2", *_sets("run.seed=4294967296"),
                          "--out", "out"], ["run.seed must be <= 4294967295"]),
    "study-seed-too-big": (["study", "proxy", *_sets("study.seeds=[0, 4294967296]"),
                            "--out", "out"], ["study.seeds must be <= 4294967295"]),
    "select-seed-negative": (["select", "--entropy", "none.tsv", "--method", "p1", "--size",
                              "5", "--seed", "-1", "--out", "o.txt"],
                             ["select: argument --seed", "allowed 0..4294967295"]),
    # sizes of 0
    "snn-describe-c0-t0": (["snn", "describe", "--arch", ARCH, "--channels", "0",
                            "--timesteps", "0"], ["--channels must be an integer >= 1", "0"]),
    "snn-describe-t0": (["snn", "describe", "--arch", ARCH, "--timesteps", "0"],
                        ["--timesteps must be an integer 1..256", "got 0"]),
    "snn-describe-batch0": (["snn", "describe", "--arch", ARCH, "--measure", "--batch", "0"],
                            ["--batch must be an integer 1..1024", "got 0"]),
    "describe-c0": (["describe", "--genotype", "DARTS_V2", "--channels", "0"],
                    ["channels must be an integer >= 1", "got 0"]),
    "describe-layers0": (["describe", "--genotype", "DARTS_V2", "--layers", "0"],
                         ["layers must be an integer 3..100", "got 0"]),
    "snn-train-c0": (["snn", "train", "--arch", ARCH, "--channels", "0", "--timesteps", "2",
                      "--epochs", "1", "--out", "out"], ["snn.channels must be >= 1", "got 0"]),
    "snn-supernet-t0": (["snn", "supernet", "--channels", "2", "--timesteps", "0",
                         "--epochs", "1", "--out", "out"], ["snn.timesteps must be >= 1"]),
    "train-batch0": (["train", "--genotype", "DARTS_V2", *_sets("train.batch_size=0"),
                      "--out", "out"], ["train.batch_size must be >= 1", "got 0"]),
    "search-channels0": (["search", *_sets("search.channels=0"), "--out", "out"],
                         ["search.channels must be >= 1"]),
    "search-nodes-huge": (["search", *_sets("search.nodes=5000"), "--out", "out"],
                          ["search.nodes must be <= 16", "got 5000"]),
    # YAML files
    "yaml-duplicate-key": (["search", "--config", "{IN}/dup.yaml", "--out", "out"],
                           ["duplicate key 'epochs'", "dup.yaml line 4", "once"]),
    "yaml-duplicate-section": (["search", "--config", "{IN}/dup_sections.yaml",
                                "--out", "out"], ["duplicate key 'search'", "line 3"]),
    "yaml-duplicate-in-set": (["search", "--set", "search.algo={a: 1, a: 2}", "--out", "out"],
                              ["duplicate key 'a'", "--set search.algo"]),
    "yaml-billion-laughs": (["search", "--config", "{IN}/bomb.yaml", "--out", "out"],
                            ["bomb.yaml expands to more than 100,000 values", "aliases"]),
    "yaml-binary": (["search", "--config", "{IN}/binary.yaml", "--out", "out"],
                    ["binary.yaml is not a UTF-8 text file"]),
    "yaml-latin1": (["train", "--genotype", "DARTS_V2", "--config", "{IN}/latin1.yaml",
                     "--out", "out"], ["latin1.yaml is not a UTF-8 text file"]),
    "yaml-nul-byte": (["snn", "supernet", "--config", "{IN}/nul.yaml", "--out", "out"],
                      ["nul.yaml is a binary file"]),
    "sweep-config-duplicate-key": (["sweep", "--sweep-config", "{IN}/sweep_dup.yaml",
                                    "--out", "out"], ["duplicate key 'seeds'", "line 3"]),
    "sweep-config-binary": (["sweep", "--sweep-config", "{IN}/binary.yaml", "--out", "out"],
                            ["binary.yaml is not a UTF-8 text file"]),
    # item 7: hostile sizes, refused before a network is built
    "describe-huge-genotype": (["describe", "--genotype", HUGE_GENOTYPE],
                               ["normal cell has 3000 ops", "allowed 1..1064 per cell",
                                "nodes 2..17"]),
    "train-huge-genotype": (["train", "--genotype", HUGE_GENOTYPE, "--out", "out"],
                            ["normal cell has 3000 ops", "allowed 1..1064"]),
    "describe-far-node": (["describe", "--genotype", FAR_NODE],
                          ["node 5000 is outside 2..17", "at most 16 intermediate nodes"]),
    "describe-genotype-too-long": (["describe", "--genotype",
                                    "Genotype(normal=[" + " " * 250_000 + "])"],
                                   ["250,019 characters", "allowed up to 200,000"]),
    "describe-channels-huge": (["describe", "--genotype", "DARTS_V2", "--channels", "100000"],
                               ["C=100000", "parameters", "up to 50,000,000 parameters",
                                "lower --channels"]),
    "describe-layers-huge": (["describe", "--genotype", "DARTS_V2", "--layers", "100000"],
                             ["layers must be an integer 3..100", "got 100000"]),
    "snn-describe-channels-huge": (["snn", "describe", "--arch", ARCH, "--channels", "100000"],
                                   ["C=100000", "values in the first layer",
                                    "allowed up to 268,435,456"]),
    "snn-describe-params-huge": (["snn", "describe", "--arch", ARCH, "--channels", "8000",
                                  "--timesteps", "1", "--batch", "1", "--dataset", "digits"],
                                 ["parameters", "up to 50,000,000 parameters"]),
    "snn-describe-timesteps-huge": (["snn", "describe", "--arch", ARCH, "--timesteps",
                                     "100000"], ["--timesteps must be an integer 1..256"]),
    "snn-describe-long-arch": (["snn", "describe", "--arch", ",".join(["skip"] * 10_000)],
                               ["architecture has 10,000 blocks", "takes exactly 5"]),
}


@pytest.mark.parametrize("argv, fragments", list(CASES.values()), ids=list(CASES))
def test_bad_value(capsys, tmp_path, monkeypatch, inputs, argv, fragments):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{IN}", str(inputs)) for a in argv]
    start = time.perf_counter()
    line = _error_line(capsys, argv, *fragments)
    assert time.perf_counter() - start < 30  # refused up front, not after building a network
    assert len(line) <= 400
    assert list(tmp_path.iterdir()) == []  # no run directory, no output file


def test_error_text_is_capped_for_a_huge_value(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = ", ".join(["1"] * 50_000)
    line = _error_line(capsys, ["search", "--set", f"search.epochs=[{values}]",
                                "--out", "out"], "search.epochs must be int")
    assert len(line) < 200
    line = _error_line(capsys, ["search", "--set", f"search.algo_{'x' * 50_000}=1",
                                "--out", "out"], "unknown config key")
    assert len(line) <= 2000


def test_the_bomb_is_refused_quickly_without_expanding_it(inputs):
    from nasforge.config import load_config

    start = time.perf_counter()
    with pytest.raises(NasforgeError, match="expands to more than 100,000 values"):
        load_config(inputs / "bomb.yaml")
    assert time.perf_counter() - start < 2
    small = inputs / "small_alias.yaml"  # a legitimate alias still works
    small.write_text("b: &b [0.5, 0.9]\n")
    with pytest.raises(NasforgeError, match="unknown config key 'b'"):
        load_config(small)
    small.write_text("search:\n  arch_betas: &b [0.5, 0.9]\nsnn:\n  betas: *b\n")
    assert load_config(small).snn.betas == (0.5, 0.9)


# ------------------------------------------------------------------ non-finite training


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x), None


class _OneBatch:
    def epoch(self, epoch):
        gen = torch.Generator().manual_seed(epoch)
        yield torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)


def test_check_finite_stops_on_non_finite_weights_with_a_finite_loss(tmp_path):
    from nasforge.runtime import check_finite, weights_finite

    model = _Tiny()
    guard = dict(epoch=3, run=tmp_path, checkpoint=tmp_path / "checkpoint.pt",
                 resume="nasforge snn train --resume RUN --set snn.lr=0.0001")
    check_finite(torch.tensor(0.5), module=model, **guard)  # finite: nothing happens
    assert weights_finite(model)
    with torch.no_grad():
        model.fc.weight[1, 2] = math.nan
    assert not weights_finite(model)
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(NumericalError) as err:
        check_finite(torch.tensor(0.5), module=model, **guard)
    message = str(err.value)
    assert message.startswith("non-finite weights at epoch 3 of ")
    assert "last good checkpoint" in message and "(epoch 2)" in message
    assert "--set snn.lr=0.0001" in message and "\n" not in message
    with pytest.raises(NumericalError, match="non-finite loss at epoch 3"):
        check_finite(torch.tensor(math.inf), module=model, **guard)


def test_fit_stops_the_quality_loop_on_a_diverging_network():
    from nasforge.fit import fit

    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    # without a hint (the tabular benchmark) the loop runs on
    fit(model, _OneBatch(), opt, epochs=1, lr_at=lambda e: math.inf)
    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with pytest.raises(NumericalError, match=r"non-finite (loss|weights) at epoch [01]; lower"):
        fit(model, _OneBatch(), opt, epochs=3, lr_at=lambda e: math.inf, hint="lower train.lr")
    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = fit(model, _OneBatch(), opt, epochs=2, lr_at=lambda e: 0.1, hint="lower train.lr")
    assert math.isfinite(loss)


def test_snn_train_with_a_huge_lr_stops_instead_of_reporting_nan_weights(capsys, tmp_path,
                                                                        monkeypatch):
    """The issue's case: an SNN's MSE rate loss stays finite while Adam with a huge lr makes
    every weight NaN; before, `snn train` exited 0 and reported 10% accuracy."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proxy.txt").write_text("".join(f"{i}\n" for i in range(0, 1152, 36)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        line = _error_line(capsys, ["snn", "train", "--arch", ARCH, *SNN, *_sets(
            "snn.lr=1e30", "data.proxy=proxy.txt", "snn.batch_size=32",
            "snn.eval_batch_size=64"), "--out", "run"],
            "non-finite", "epoch 0 of run", "--set snn.lr=1e+29")
    finally:
        torch.set_num_threads(threads)
    assert "weights" in line or "loss" in line
    assert not (tmp_path / "run" / "results.json").exists()
