import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasforge.benchmarks import (
    TabularBenchmark,
    cell_from_key,
    cell_key,
    enumerate_cells,
    fixed_reduction_cell,
    genotype_of,
    train_protocol,
)
from nasforge.derive import derive
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import (
    CellGenotype,
    Genotype,
    cell_edges,
    format_genotype,
    load_genotype,
    validate_genotype,
)
from nasforge.spaces.darts.spaces import SPACES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_tabular_digits.py"
SPACE = SPACES.get("tabular-digits")


@pytest.fixture(scope="module")
def bench() -> TabularBenchmark:
    return TabularBenchmark.load()


def _strengths_for(cell: CellGenotype) -> torch.Tensor:
    """Strengths whose argmax derivation gives ``cell`` (dropped edge of node 3 weakest)."""
    w = torch.zeros(len(cell_edges(2)), len(SPACE.primitives))
    w[:, 0] = 5.0  # 'none' is strongest everywhere and must be ignored
    for op, inp, node in cell.ops:
        w[cell_edges(2).index((inp, node)), SPACE.primitives.index(op)] = 1.0 + 0.1 * inp
    return w


# --------------------------------------------------------------------------- the space


def test_space_is_registered_with_two_nodes():
    assert SPACE.nodes == 2
    assert SPACE.primitives == ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")


def test_enumerate_cells_gives_243_unique_valid_cells():
    cells = enumerate_cells()
    keys = [cell_key(c) for c in cells]
    assert len(cells) == 243 and len(set(keys)) == 243
    for cell in cells:
        validate_genotype(genotype_of(cell), nodes=2, primitives=SPACE.primitives)
        assert cell_from_key(cell_key(cell)) == cell


def test_fixed_reduction_cell_is_a_valid_two_node_cell():
    cell = fixed_reduction_cell()
    validate_genotype(Genotype(cell, cell), nodes=2, primitives=SPACE.primitives)


def test_every_cell_is_reachable_by_argmax_derivation():
    for cell in enumerate_cells():
        w = _strengths_for(cell)
        g = derive("argmax", {"normal": w, "reduce": w}, primitives=SPACE.primitives, nodes=2)
        assert cell_key(g.normal) == cell_key(cell)


def test_random_argmax_derivations_land_in_the_space():
    keys = {cell_key(c) for c in enumerate_cells()}
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        s = {c: torch.randn(5, 4, generator=gen) for c in ("normal", "reduce")}
        g = derive("argmax", s, primitives=SPACE.primitives, nodes=2)
        assert cell_key(g.normal) in keys


def test_key_ignores_op_order_and_reduction_cell():
    cell = enumerate_cells()[100]
    shuffled = list(cell.ops)
    random.Random(1).shuffle(shuffled)
    other = CellGenotype(ops=tuple(reversed(shuffled)), concat=(3, 2))
    darts_reduce = load_genotype("DARTS_V2").reduce
    assert cell_key(other) == cell_key(cell)
    assert cell_key(Genotype(other, darts_reduce).normal) == cell_key(cell)


@pytest.mark.parametrize(
    ("ops", "concat", "reason"),
    [
        ((("sep_conv_5x5", 0, 2), ("skip_connect", 1, 2), ("skip_connect", 0, 3),
          ("skip_connect", 1, 3)), (2, 3), "op 'sep_conv_5x5'"),
        ((("skip_connect", 0, 2), ("skip_connect", 1, 2)), (2,), "nodes [2]"),
        ((("skip_connect", 0, 2), ("skip_connect", 1, 2), ("skip_connect", 0, 3),
          ("skip_connect", 0, 3)), (2, 3), "inputs [0, 0]"),
        ((("skip_connect", 0, 2), ("skip_connect", 1, 2), ("skip_connect", 0, 3),
          ("skip_connect", 1, 3), ("skip_connect", 2, 3)), (2, 3), "inputs [0, 1, 2]"),
        ((("skip_connect", 0, 2), ("skip_connect", 1, 2), ("skip_connect", 0, 3),
          ("skip_connect", 1, 3)), (3,), "concat"),
    ],
)
def test_cells_outside_the_space_are_rejected(ops, concat, reason):
    with pytest.raises(NasforgeError, match="not in the tabular-digits space") as err:
        cell_key(CellGenotype(ops=ops, concat=concat))
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_bad_key_is_rejected():
    with pytest.raises(NasforgeError, match="not a benchmark key"):
        cell_from_key("skip_connect~0")


# --------------------------------------------------------------------------- the table


def test_table_holds_every_cell_once(bench):
    assert len(bench) == 243
    assert set(bench.keys()) == {cell_key(c) for c in enumerate_cells()}
    assert bench.space.name == "tabular-digits" and len(bench.seeds) >= 2
    assert bench.protocol["epochs"] >= 1


def test_query_returns_per_seed_values_and_their_means(bench):
    for key in bench.keys()[::10]:
        q = bench.query(cell_from_key(key))
        assert q["key"] == key
        for field in ("test_acc", "val_acc"):
            assert len(q[field]) == len(bench.seeds)
            assert all(0.0 <= v <= 100.0 for v in q[field])
            assert q[f"{field}_mean"] == pytest.approx(sum(q[field]) / len(q[field]))
        assert q["params"] > 0 and 1 <= q["rank"] <= len(bench)
        assert 0.0 < q["percentile"] <= 100.0


def test_query_accepts_genotypes_text_and_keys(bench):
    cell = enumerate_cells()[7]
    full = Genotype(cell, load_genotype("DARTS_V2").reduce)
    text = format_genotype(genotype_of(cell))
    assert bench.query(full) == bench.query(cell) == bench.query(text)
    assert bench.query(cell_key(cell))["key"] == cell_key(cell)


def test_rank_one_is_best_and_ranks_follow_means(bench):
    best = bench.best()
    assert best["rank"] == 1 and best["percentile"] == 100.0
    keys = bench.keys()
    means = {k: bench.query(k)["test_acc_mean"] for k in keys}
    assert best["test_acc_mean"] == max(means.values())
    for k, m in means.items():
        assert bench.query(k)["rank"] == 1 + sum(v > m for v in means.values())


def test_stats_summarise_mean_test_accuracy(bench):
    s = bench.stats()
    assert s["count"] == 243
    assert s["min"] <= s["median"] <= s["max"] == bench.best()["test_acc_mean"]
    assert -1.0 <= s["seed_spearman"] <= 1.0 and s["mean_seed_range"] >= 0.0


def test_query_outside_the_space_raises(bench):
    with pytest.raises(NasforgeError, match="nodes \\[2, 3, 4, 5\\]"):
        bench.query(load_genotype("DARTS_V2"))


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(NasforgeError, match="missing"):
        TabularBenchmark.load(path=tmp_path / "absent.json.gz")
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(NasforgeError, match="corrupt"):
        TabularBenchmark.load(path=bad)
    partial = tmp_path / "partial.json.gz"
    partial.write_bytes(gzip.compress(json.dumps({"space": "tabular-digits"}).encode()))
    with pytest.raises(NasforgeError, match="corrupt"):
        TabularBenchmark.load(path=partial)
    with pytest.raises(NasforgeError, match="unknown benchmark"):
        TabularBenchmark.load("nope")


# --------------------------------------------------------------------------- building


def test_train_protocol_is_deterministic_for_a_seed():
    cell = cell_from_key("sep_conv_3x3~0|skip_connect~1+max_pool_3x3~0|sep_conv_3x3~2")
    tiny = dict(epochs=1, channels=4, layers=3)
    a, b = train_protocol(cell, 3, **tiny), train_protocol(cell, 3, **tiny)
    a.pop("seconds"), b.pop("seconds")
    assert a == b and 0.0 <= a["test_acc"] <= 100.0


def test_train_protocol_rejects_unknown_or_fixed_keys():
    cell = enumerate_cells()[0]
    with pytest.raises(NasforgeError, match="unknown protocol"):
        train_protocol(cell, 0, epoch=1)
    with pytest.raises(NasforgeError, match="cannot be changed"):
        train_protocol(cell, 0, flip=True)


def _build(tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--limit", "2", "--seeds", "0", "--epochs", "1",
           "--workers", "1", "--no-progress", "--work", str(tmp_path / "work.jsonl"),
           "--out", str(tmp_path / "table.json.gz")]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300)


def test_build_script_writes_a_table_and_resumes(tmp_path):
    first = _build(tmp_path)
    assert "trained 2 " in first.stdout
    table = TabularBenchmark.load(path=tmp_path / "table.json.gz")
    assert len(table) == 2 and table.seeds == [0] and table.protocol["epochs"] == 1
    lines = (tmp_path / "work.jsonl").read_text().splitlines()
    second = _build(tmp_path)
    assert "trained 0 " in second.stdout
    assert (tmp_path / "work.jsonl").read_text().splitlines() == lines
    assert TabularBenchmark.load(path=tmp_path / "table.json.gz").keys() == table.keys()
