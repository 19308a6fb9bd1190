"""Search-space quality study (§4.2.2): samplers, EDF, the resumable run and its CLI."""

from __future__ import annotations

import csv
import json
import random
import re
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.cli import main
from nasforge.config import load_config
from nasforge.derive import derive
from nasforge.errors import NasforgeError
from nasforge.quality import (
    CANDIDATES,
    canonical,
    edf_at,
    error_edf,
    parse_space,
    parse_spaces,
    random_darts_pair,
    run_quality,
    sample_space,
    sample_spaces,
    summarise,
    train_pair,
)
from nasforge.spaces.darts.genotype import (
    PRIMITIVES,
    cell_edges,
    format_genotype,
    is_darts_cell,
    parse_genotype,
    validate_genotype,
)

TINY = ["train.epochs=1", "train.channels=4", "train.layers=3", "run.progress=false",
        "quality.spaces=[darts, extcell-10]", "quality.samples=2"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets train several times faster on one thread than on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ops(g):
    return [*g.normal.ops, *g.reduce.ops]


# --------------------------------------------------------------------------- space names


def test_space_names_parse_and_bad_ones_name_the_value():
    assert parse_space("darts").k is None and parse_space("extcell-14").k == 14
    assert CANDIDATES == 196
    assert [s.name for s in parse_spaces(["extcell-196", "extcell-2", "darts"])] == [
        "extcell-196", "extcell-2", "darts"]
    for bad, match in [("extcell-x", "unknown space 'extcell-x'"), ("foo", "unknown space 'foo'"),
                       ("extcell-0", "K=0 is out of range; allowed 2..196"),
                       ("extcell-197", "K=197 is out of range"),
                       ("extcell-1", "K=1 is out of range")]:
        with pytest.raises(NasforgeError, match=match):
            parse_space(bad)
    with pytest.raises(NasforgeError, match="listed twice"):
        parse_spaces(["darts", "darts"])


# --------------------------------------------------------------------------- samplers


def test_darts_sampler_gives_valid_darts_cells():
    rng = random.Random(0)
    for _ in range(200):
        g = random_darts_pair(rng)
        validate_genotype(g, nodes=4)
        for cell in (g.normal, g.reduce):
            assert is_darts_cell(cell, nodes=4) and len(cell.ops) == 8
            assert all(op in PRIMITIVES and op != "none" for op, _, _ in cell.ops)
            for node in range(2, 6):
                inputs = [i for _, i, n in cell.ops if n == node]
                assert len(inputs) == 2 and len(set(inputs)) == 2 and max(inputs) < node
        # written in the published pair form and read back unchanged
        text = format_genotype(g)
        assert len(re.findall(r"\('\w+', \d\)", text)) == 16  # (op, input) pairs
        assert parse_genotype(text) == g


@pytest.mark.parametrize("k", [2, 10, 16, 60])
def test_extcell_sampler_gives_k_ops_unique_valid_and_seeded(k):
    spec = parse_space(f"extcell-{k}")
    pairs = sample_space(spec, 25, seed=7)
    texts = [format_genotype(g) for g in pairs]
    assert len(set(texts)) == 25
    for g in pairs:
        ops = _ops(g)
        assert len(ops) == k
        cands = [(c, op, i, n) for c, cell in enumerate((g.normal, g.reduce))
                 for op, i, n in cell.ops]
        assert len(set(cands)) == k  # drawn without replacement
        assert all(op != "none" and (i, n) in cell_edges(4) for op, i, n in ops)
        validate_genotype(g, nodes=4)
        for cell in (g.normal, g.reduce):
            assert cell.concat == cell.active_nodes()
        assert canonical(g) == g and parse_genotype(format_genotype(g)) == g
    assert sample_space(spec, 25, seed=7) == pairs
    assert sample_space(spec, 5, seed=7) == pairs[:5]  # sample i does not depend on N
    assert sample_space(spec, 25, seed=8) != pairs


def test_extcell_pair_is_what_topk_keeps_on_matching_strengths():
    for g in sample_space(parse_space("extcell-12"), 10, seed=3):
        strengths = {}
        for name, cell in (("normal", g.normal), ("reduce", g.reduce)):
            w = torch.rand(14, len(PRIMITIVES)) * 0.5
            for op, i, n in cell.ops:
                w[cell_edges(4).index((i, n)), PRIMITIVES.index(op)] = 1.0 + torch.rand(())
            strengths[name] = w
        assert canonical(derive("topk", strengths, k=12)) == g


def test_samples_are_unique_across_spaces_and_listing_order_is_irrelevant():
    specs = parse_spaces(["extcell-16", "darts", "extcell-10"])
    drawn = sample_spaces(specs, 15, seed=0)
    assert list(drawn) == ["extcell-16", "darts", "extcell-10"]
    texts = [format_genotype(g) for pairs in drawn.values() for g in pairs]
    assert len(texts) == len(set(texts)) == 45
    again = sample_spaces(list(reversed(specs)), 15, seed=0)
    assert all(again[name] == drawn[name] for name in drawn)
    assert Counter(len(_ops(g)) for g in drawn["darts"]) == {16: 15}


def test_zero_samples_is_an_error():
    with pytest.raises(NasforgeError, match="samples must be at least 1"):
        sample_space(parse_space("darts"), 0, seed=0)


# --------------------------------------------------------------------------- EDF


def test_edf_matches_an_independent_computation():
    errors = [12.5, 3.0, 7.25, 3.0, 40.0, 7.25, 0.5]
    xs, ys = error_edf(errors)
    assert xs == sorted(errors)
    assert ys == [1 / 7, 3 / 7, 3 / 7, 5 / 7, 5 / 7, 6 / 7, 1.0]
    thresholds = [0.0, 0.5, 2.9, 3.0, 7.0, 7.25, 12.49, 12.5, 39.0, 40.0, 100.0]
    expected = np.searchsorted(np.sort(errors), thresholds, side="right") / len(errors)
    assert edf_at(errors, thresholds) == pytest.approx(expected.tolist())
    assert edf_at(errors, thresholds) == [0, 1 / 7, 1 / 7, 3 / 7, 3 / 7, 5 / 7, 5 / 7, 6 / 7,
                                          6 / 7, 1.0, 1.0]


# --------------------------------------------------------------------------- the study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "study"
    cfg = load_config("quality-digits", TINY)
    calls = []

    def spy(g, protocol, **kw):
        calls.append(format_genotype(g))
        return train_pair(g, protocol, **kw)

    rows = run_quality(cfg, out, trainer=spy)
    return out, cfg, rows, calls


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_writes_results_summary_and_plot(study):
    out, cfg, rows, calls = study
    assert len(calls) == 4
    table = _csv(out / "results.csv")
    assert list(table[0]) == ["space", "sample", "seed", "genotype", "params", "test_acc",
                              "val_acc", "seconds"]
    assert [(r["space"], r["sample"]) for r in table] == [
        ("darts", "0"), ("darts", "1"), ("extcell-10", "0"), ("extcell-10", "1")]
    drawn = sample_spaces(parse_spaces(["darts", "extcell-10"]), 2, cfg.run.seed)
    for r in table:
        assert r["genotype"] == format_genotype(drawn[r["space"]][int(r["sample"])])
        assert r["seed"] == str(cfg.run.seed) and int(r["params"]) > 0
        assert 0.0 <= float(r["test_acc"]) <= 100.0 and 0.0 <= float(r["val_acc"]) <= 100.0
    summary = json.loads((out / "summary.json").read_text())
    for space in ("darts", "extcell-10"):
        accs = [float(r["test_acc"]) for r in table if r["space"] == space]
        got = summary["spaces"][space]
        assert got["count"] == 2
        assert got["median"] == pytest.approx(statistics.median(accs))
        assert got["mean"] == pytest.approx(sum(accs) / 2)
        assert (got["min"], got["max"]) == pytest.approx((min(accs), max(accs)))
    assert summary["spaces"] == summarise(rows)
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_samples_and_extends(study):
    out, cfg, rows, _ = study

    def refuse(*args, **kw):
        raise AssertionError("a finished sample was trained again")

    assert run_quality(cfg, out, trainer=refuse) == rows
    more = load_config("quality-digits", [*TINY, "quality.samples=3"])
    trained = []

    def fake(g, protocol, **kw):
        trained.append(format_genotype(g))
        return {"params": 1, "test_acc": 50.0, "val_acc": 50.0, "seconds": 0.0}

    extended = run_quality(more, out, trainer=fake)
    drawn = sample_spaces(parse_spaces(["darts", "extcell-10"]), 3, cfg.run.seed)
    assert trained == [format_genotype(drawn["darts"][2]), format_genotype(drawn["extcell-10"][2])]
    assert len(extended) == 6 and [r for r in extended if r["sample"] < 2] == rows
    assert len(_csv(out / "results.csv")) == 6


def test_another_protocol_in_the_same_dir_is_refused(study):
    out, _, _, _ = study
    other = load_config("quality-digits", [*TINY, "train.epochs=2"])
    with pytest.raises(NasforgeError, match=r"different config \(train.epochs 1 -> 2\)"):
        run_quality(other, out)


def test_thesis_protocol_features_train_deterministically():
    """The t4.1 protocol (auxiliary head, drop-path, cutout, flips), shrunk to digits."""
    from nasforge.quality import build_protocol

    cfg = load_config("t4.1-quality-cifar10", [
        "data.dataset=digits", "train.epochs=2", "train.channels=4", "train.layers=3",
        "train.batch_size=128", "train.crop_pad=1", "train.cutout=2"])
    assert cfg.train.auxiliary and cfg.train.drop_path > 0 and cfg.train.flip
    (g,) = sample_space(parse_space("extcell-16"), 1, seed=0)
    a, b = (train_pair(g, build_protocol(cfg)) for _ in range(2))
    a.pop("seconds"), b.pop("seconds")
    assert a == b and 0.0 <= a["test_acc"] <= 100.0


def test_rows_round_trip_without_a_validation_split(tmp_path):
    from nasforge.quality import read_rows, write_rows

    rows = [{"space": "darts", "sample": 0, "seed": 1, "genotype": "Genotype(x, y)",
             "params": 10, "test_acc": 1 / 3, "val_acc": None, "seconds": 0.5}]
    write_rows(tmp_path / "r.csv", rows)
    assert read_rows(tmp_path / "r.csv") == rows


# --------------------------------------------------------------------------- CLI


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize("args, needle", [
    (["--spaces", "darts,extcell-x"], "unknown space 'extcell-x'"),
    (["--spaces", "foo"], "unknown space 'foo'; allowed: darts or extcell-K"),
    (["--spaces", "extcell-0"], "K=0 is out of range; allowed 2..196"),
    (["--spaces", "extcell-197"], "K=197 is out of range"),
    (["--samples", "0"], "--samples must be at least 1; got 0"),
    (["--set", "quality.spaces=[bar]"], "unknown space 'bar'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, needle):
    assert main(["quality", *args, "--out", str(tmp_path / "q")]) == 2
    assert needle in _error_line(capsys)
    assert not (tmp_path / "q").exists()


def test_cli_refuses_foreign_or_mismatched_dirs(tmp_path, capsys, study):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert main(["quality", "--spaces", "darts", "--samples", "1", "--out", str(foreign)]) == 2
    assert "is not a quality study output" in _error_line(capsys)
    out, _, _, _ = study
    sets = [x for s in TINY for x in ("--set", s)]
    assert main(["quality", *sets, "--seed", "5", "--out", str(out)]) == 2
    assert "different config (seed 2 -> 5)" in _error_line(capsys)


def test_cli_runs_a_tiny_study(tmp_path, capsys):
    sets = [x for s in TINY[:3] for x in ("--set", s)]
    out = tmp_path / "q"
    assert main(["quality", "--spaces", "extcell-14", "--samples", "1", "--seed", "4", *sets,
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "extcell-14" in printed and "1 nets ->" in printed
    (row,) = _csv(out / "results.csv")
    assert row["space"] == "extcell-14" and row["seed"] == "4"
    assert len(_ops(parse_genotype(row["genotype"]))) == 14
