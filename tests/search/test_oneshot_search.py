"""Searching the NAS-Bench-1shot1 spaces end to end, scored against a NAS-Bench-101 table.

The table is written by the test in the official record format: every distinct cell of
space 1 with a made-up test accuracy that depends on its pruned ops, so the per-epoch
NAS-Bench-101 error in the search log can be recomputed independently from the genotype.
"""

import csv
import json

import pytest

from benchmarks.test_nasbench101 import write_tfrecord
from conftest import TINY_SEARCH, assert_resume_matches, run_cli
from nasforge.benchmarks.nasbench101 import hash_of, prune
from nasforge.spaces.nb101.space import ONESHOT_SPACES, parse_arch

SS1 = ONESHOT_SPACES.get("1shot1-ss1")


def made_up_accuracy(ops: list[str]) -> float:
    """Higher with more 3×3 convolutions and fewer vertices: distinct across many cells."""
    return 0.80 + 0.03 * ops.count("conv3x3-bn-relu") - 0.005 * len(ops)


@pytest.fixture(scope="module")
def ss1_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb101")
    cells = {}
    for arch in SS1.architectures():
        matrix, ops = prune(*SS1.to_spec(arch))
        cells.setdefault(hash_of(matrix, ops), (matrix, ops))
    cells = list(cells.values())

    def metrics(c, epochs, repeat):
        acc = made_up_accuracy(cells[c][1])
        return {"train": 1.0, "valid": acc, "test": acc + (repeat - 1) * 0.001,
                "time": 10.0, "params": 1000 + c}

    record = root / "ss1.tfrecord"
    write_tfrecord(record, budgets=(108,), cells=cells, metrics=metrics)
    table = root / "ss1.npz"
    run_cli("bench", "nb101-convert", str(record), "--out", str(table), "--no-progress",
            check=True)
    return table


def expected_error(genotype: str) -> float:
    space, arch = parse_arch(genotype)
    return 1.0 - made_up_accuracy(prune(*space.to_spec(arch))[1])


@pytest.mark.parametrize("algo", ["darts", "gdas", "enas"])
def test_search_logs_the_tabulated_error_of_each_epochs_cell(algo, ss1_table, small_proxy,
                                                            tmp_path):
    out = tmp_path / algo
    sets = [s for x in [*TINY_SEARCH, f"data.proxy={small_proxy}",
                        f"search.nb101_table={ss1_table}"] for s in ("--set", x)]
    proc = run_cli("search", "--algo", algo, "--space", "1shot1-ss1", "--dataset", "digits",
                   "--out", str(out), *sets)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["space"] == "1shot1-ss1"
    genotype = (out / "genotype.txt").read_text().strip()
    assert genotype == results["genotype"]
    assert results["nb101_test_error"] == pytest.approx(expected_error(genotype), abs=1e-9)
    assert results["nb101_regret"] == pytest.approx(
        results["nb101_test_error"] - 0.05449, abs=1e-9)
    with (out / "search_log.csv").open() as fh:
        log = list(csv.DictReader(fh))
    history = [json.loads(line) for line in (out / "strengths.jsonl").read_text().splitlines()]
    assert len(log) == len(history) == 2
    for row, epoch in zip(log, history, strict=True):
        assert float(row["nb101_test_error"]) == pytest.approx(
            expected_error(epoch["genotype"]), abs=1e-9)
        assert sorted(k for k in epoch if k not in ("epoch", "genotype")) == [
            "inputs", "ops", "output"]
    assert "NAS-Bench-1shot1" in run_cli("derive", str(out)).stderr


@pytest.mark.parametrize("algo, extra", [
    ("darts", []), ("enas", []), ("gdas", []),
    # NAS-Bench-1shot1's schedule: controller phase after each epoch, best-of-N cell
    ("enas", ["search.controller_steps=3", "search.candidates=6", "search.rescore=2"]),
], ids=["darts", "enas", "gdas", "enas-reference"])
def test_resumed_oneshot_search_matches(algo, extra, small_proxy, tmp_path, one_thread):
    assert_resume_matches(tmp_path, [*TINY_SEARCH, f"data.proxy={small_proxy}",
                                     f"search.algo={algo}", "search.space=1shot1-ss3", *extra])
    if extra:  # with candidates each epoch's cell is one sampled cell: 0/1 strengths
        lines = (tmp_path / "full" / "strengths.jsonl").read_text().splitlines()
        for epoch in map(json.loads, lines):
            assert {v for row in epoch["ops"] for v in row} == {0.0, 1.0}
            assert all(sum(row) == 1.0 for row in epoch["ops"])
            space, arch = parse_arch(epoch["genotype"])
            assert space.name == "1shot1-ss3" and space.validate(arch) == arch


@pytest.mark.parametrize("args, message", [
    (["--space", "1shot1-ss1", "--algo", "pcdarts"],
     "unknown search algorithm for the NAS-Bench-1shot1 spaces 'pcdarts'; choose from: "
     "darts, enas, gdas"),
    (["--space", "1shot1-ss4"], "unknown search space '1shot1-ss4'; choose from: "),
    (["--space", "1shot1-ss2", "--derive", "topk", "--k", "3"], "search.rule must be argmax"),
    (["--space", "1shot1-ss2", "--set", "search.nb101_table=missing.npz"],
     "NAS-Bench-101 table not found: missing.npz"),
])
def test_bad_oneshot_settings_fail_before_any_work(args, message, tmp_path):
    proc = run_cli("search", "--dataset", "digits", "--out", str(tmp_path / "run"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_bench_query_takes_a_oneshot_cell_a_file_or_a_run(ss1_table, tmp_path):
    genotype = ("1shot1-ss1 ops=conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu "
                "parents=0;0,1;1,2;0,3 output=3,4")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "genotype.txt").write_text(genotype + "\n")
    answers = []
    for arch in (genotype, str(tmp_path / "run" / "genotype.txt"), str(tmp_path / "run")):
        proc = run_cli("bench", "nb101-query", "--table", str(ss1_table), "--arch", arch,
                       "--json")
        assert proc.returncode == 0, proc.stderr
        answers.append(json.loads(proc.stdout))
    assert answers[0] == answers[1] == answers[2]
    assert 1 - answers[0]["test_accuracy"] == pytest.approx(expected_error(genotype), abs=1e-9)
    proc = run_cli("bench", "nb101-query", "--table", str(ss1_table))
    assert proc.returncode == 2 and "--matrix ROWS --ops OPS, or --arch" in proc.stderr
