"""The same seed gives the same result on the same machine (issue 8): every command that
trains or samples runs twice through the real CLI (in this process, one thread) and the two
output trees must agree file by file, bit for bit, wall-clock fields aside.

Text outputs (genotypes, index files, entropy lists, architectures) must be byte-identical;
JSON and CSV are compared with wall-clock fields and the run's own path removed; checkpoints
and weights tensor by tensor with ``torch.equal``; ``.npy`` arrays exactly. TensorBoard event
files (timestamps) and PNG pictures (matplotlib metadata) are skipped; their numbers are the
CSV logs'. A different seed must change the result, so the check cannot pass vacuously.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_SEARCH, TINY_TRAIN, assert_same_state
from nasforge.cli import main

SKIPPED_SUFFIXES = {".png", ".html", ".pdf", ".svg", ".prev", ".corrupt", ".log"}
SKIPPED_DIRS = {"tb", "report"}


def _wall_clock(key: str) -> bool:
    return "seconds" in key or "elapsed" in key or key in {"time", "started", "finished"}


def _clean(obj, roots: list[str]):
    if isinstance(obj, dict):
        return {k: _clean(v, roots) for k, v in obj.items() if not _wall_clock(str(k))}
    if isinstance(obj, list):
        return [_clean(v, roots) for v in obj]
    if isinstance(obj, str):
        for root in roots:
            obj = obj.replace(root, "ROOT")
        return obj
    return obj


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if not _wall_clock(k)}
                for row in csv.DictReader(fh)]


def compared_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and p.suffix not in SKIPPED_SUFFIXES
                  and not p.name.startswith(".")
                  and not SKIPPED_DIRS & set(p.relative_to(root).parts[:-1]))


def assert_same_tree(a: Path, b: Path) -> int:
    """Every compared file of ``a`` equals its twin in ``b``; returns how many were compared."""
    files = compared_files(a)
    assert files == compared_files(b)
    roots = [str(a.resolve()), str(a), str(b.resolve()), str(b)]
    for rel in files:
        x, y = a / rel, b / rel
        if rel.suffix == ".json":
            assert _clean(json.loads(x.read_text()), roots) == \
                _clean(json.loads(y.read_text()), roots), rel
        elif rel.suffix == ".jsonl":
            rows = [[_clean(json.loads(line), roots) for line in p.read_text().splitlines()]
                    for p in (x, y)]
            assert rows[0] == rows[1], rel
        elif rel.suffix == ".csv":
            assert _csv_rows(x) == _csv_rows(y), rel
        elif rel.suffix in {".pt", ".pth"}:
            assert_same_state(torch.load(x, weights_only=False),
                              torch.load(y, weights_only=False), str(rel), _wall_clock)
        elif rel.suffix == ".npy":
            assert np.array_equal(np.load(x), np.load(y)), rel
        elif rel.suffix in {".yaml", ".yml"}:
            assert _clean(x.read_text(), roots) == _clean(y.read_text(), roots), rel
        else:
            assert x.read_bytes() == y.read_bytes(), rel
    return len(files)


def sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


def twice(tmp_path: Path, argv_for, *, seeds=(0, 0, 1)) -> tuple[Path, Path, Path]:
    """Run ``argv_for(out, seed)`` for each seed; every run must exit 0."""
    outs = []
    for i, seed in enumerate(seeds):
        out = tmp_path / f"run{i}"
        assert main([str(a) for a in argv_for(out, seed)]) == 0
        outs.append(out)
    return tuple(outs)


def assert_seeded(a: Path, b: Path, c: Path, min_files: int = 1) -> None:
    """``a`` and ``b`` (same seed) are identical; ``c`` (another seed) is not."""
    assert assert_same_tree(a, b) >= min_files
    with pytest.raises(AssertionError):
        assert_same_tree(a, c)


SEARCH_ALGOS = ["darts", "gdas", "sdarts-rs", "drnas", "prdarts", "enas", "pcdarts"]


@pytest.mark.parametrize("algo", SEARCH_ALGOS)
def test_search_is_deterministic(work, tmp_path, algo):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "search", "--algo", algo, "--out", out, "--seed", seed,
        *sets([*TINY_SEARCH, "search.epochs=1", f"data.proxy={work / 'proxy64.txt'}"])])
    assert_seeded(a, b, c, min_files=6)


def test_oneshot_search_is_deterministic(work, tmp_path):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "search", "--config", "1shot1-digits", "--algo", "gdas", "--out", out, "--seed", seed,
        *sets(["search.epochs=1", "search.channels=4", "search.layers=3",
               "search.batch_size=32", f"data.proxy={work / 'proxy64.txt'}",
               "run.progress=false"])])
    assert_seeded(a, b, c, min_files=5)


def test_train_is_deterministic(tmp_path, one_thread):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "train", "--genotype", "DARTS_V2", "--out", out, "--seed", seed,
        *sets([*TINY_TRAIN, "train.epochs=2", "train.drop_path=0.3"])])
    assert_seeded(a, b, c, min_files=5)


def test_entropy_and_select_are_deterministic(work, tmp_path):
    entropy = ["entropy.model=resnet8", "entropy.epochs=2", "entropy.milestones=[1,2]",
               "run.progress=false"]
    a, b, c = twice(tmp_path, lambda out, seed: [
        "entropy", "--out", out / "digits.tsv", "--seed", seed, *sets(entropy)])
    assert_seeded(a, b, c, min_files=6)
    tsv, run = a / "digits.tsv", a / "digits.tsv.run"
    for method, extra in [("random", []), ("p1", []), ("beta", []),
                          ("k-center", ["--features", run / "features.npy"]),
                          ("forgetting", ["--forgetting", run / "forgetting.tsv"])]:
        picks = []
        for i, seed in enumerate((3, 3, 4)):
            out = tmp_path / f"{method}{i}.txt"
            assert main(["select", "--entropy", str(tsv), "--method", method, "--size", "64",
                         "--seed", str(seed), "--out", str(out), *map(str, extra)]) == 0
            picks.append(out.read_bytes())
        assert picks[0] == picks[1], method
        if method in {"random", "k-center", "beta"}:
            assert picks[0] != picks[2], method


SNN = ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64", "snn.crop_pad=0",
       "snn.flip=false", "snn.cutout=0", "run.progress=false"]


def test_snn_supernet_and_search_are_deterministic(work, tmp_path):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "snn", "supernet", "--out", out / "sn", "--seed", seed,
        *sets([*SNN, f"data.proxy={work / 'proxy256.txt'}", "snn.epochs=1"])])
    assert_seeded(a, b, c, min_files=5)
    search = ["snn.rounds=2", "snn.pool=4", "snn.top_k=2", "snn.mutations=2",
              "snn.crossovers=1", "snn.blocks=[SCB_k3,SRB_k3,skip]", "run.progress=false"]
    x, y, z = twice(tmp_path / "search", lambda out, seed: [
        "snn", "search", "--supernet", a / "sn", "--out", out, "--lam", "-0.08",
        "--seed", seed, *sets(search)])
    assert_seeded(x, y, z, min_files=4)


def test_snn_train_is_deterministic(work, tmp_path):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "snn", "train", "--arch", "SRB_k3,SCB_k3,skip,SRB_k3,SCB_k3", "--out", out,
        "--seed", seed,
        *sets([*SNN, "snn.epochs=1", f"data.proxy={work / 'proxy256.txt'}"])])
    assert_seeded(a, b, c, min_files=4)


def test_quality_is_deterministic(tmp_path, one_thread):
    a, b, c = twice(tmp_path, lambda out, seed: [
        "quality", "--spaces", "darts,extcell-10", "--samples", "1", "--out", out,
        "--seed", seed, *sets(["train.epochs=1", "train.channels=4", "train.layers=3",
                               "train.batch_size=128", "run.progress=false"])])
    assert_seeded(a, b, c, min_files=3)
