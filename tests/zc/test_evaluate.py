"""Proxies against NAS-Bench-101 and against trained SNNs (nasforge.zc.evaluate).

The NAS-Bench-101 table is written by the test in the official record format, with a made-up
accuracy that depends on a cell's pruned ops, so every looked-up accuracy is recomputed here
independently of the library. The SNN ground truth is a tiny ``snn quality`` study; each
untrained network's scores are checked against the zc sampler's own SNN network built from
the same architecture text, a second, independent construction path.
"""

import csv
import json

import pytest
import torch
from scipy.stats import spearmanr

from benchmarks.test_nasbench101 import write_tfrecord
from conftest import run_cli
from nasforge.benchmarks.nasbench101 import convert, prune
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.snn.quality import run_snn_quality
from nasforge.spaces.nb101.space import ONESHOT_SPACES
from nasforge.zc.evaluate import quality_runs, zc_eval_nb101, zc_eval_snn
from nasforge.zc.sample import NetSettings, Sample, sample_architectures
from nasforge.zc.score import load_batch, score_architectures
from search import test_oneshot_search
from search.test_oneshot_search import made_up_accuracy

SS1 = ONESHOT_SPACES.get("1shot1-ss1")
ss1_table = test_oneshot_search.ss1_table  # every SS1 cell, made-up accuracies (fixture)
FAST = ["params", "synflow", "grad_norm"]


def test_nb101_accuracies_and_correlations_match_an_independent_computation(ss1_table,
                                                                           tmp_path):
    out = tmp_path / "nb101.json"
    result = zc_eval_nb101(ss1_table, "1shot1-ss1", 12, FAST, seed=3, out=out,
                           dataset="digits", channels=4, layers=3)
    drawn = sample_architectures("1shot1-ss1", 12, 3)
    # the table's mean over repeats 0, 1, 2 of acc + (r − 1)·0.001 is acc itself
    expected = [100 * made_up_accuracy(prune(*SS1.to_spec(s.arch))[1]) for s in drawn]
    rows = result["rows"]
    assert [r["arch"] for r in rows] == [s.text for s in drawn]
    assert [r["test_acc"] for r in rows] == pytest.approx(expected)
    rho = spearmanr([r["params"] for r in rows], expected).statistic
    assert result["correlations"]["params"]["spearman"] == pytest.approx(rho)
    assert result["cells"] == 12 and result["channels"] == 4
    # the scores are score_architectures' on the same batch and network size
    data = load_batch("digits", 64, 3)
    again = score_architectures("1shot1-ss1", drawn[:2], ["params"], data, None, 3,
                                settings=NetSettings(channels=4, layers=3))
    assert [r["params"] for r in rows[:2]] == [r["params"] for r in again]
    saved = json.loads(out.read_text())
    assert saved["correlations"]["params"]["n"] == 12


def test_nb101_refuses_other_spaces_and_bad_sizes(ss1_table):
    with pytest.raises(NasforgeError, match="NAS-Bench-101 holds the 1shot1 spaces"):
        zc_eval_nb101(ss1_table, "darts", 2, ["params"], dataset="digits")
    with pytest.raises(NasforgeError, match="channels must be a positive whole number"):
        zc_eval_nb101(ss1_table, "1shot1-ss1", 2, ["params"], dataset="digits", channels=0)


def test_nb101_names_a_cell_the_table_lacks(tmp_path):
    one = [prune(*SS1.to_spec(next(iter(SS1.architectures()))))]
    record = tmp_path / "one.tfrecord"
    write_tfrecord(record, budgets=(108,), cells=one,
                   metrics=lambda c, e, r: {"train": 1.0, "valid": 0.9, "test": 0.9,
                                            "time": 1.0, "params": 10})
    convert(record, tmp_path / "one.npz", progress=False)
    with pytest.raises(NasforgeError, match="has no entry for cell"):
        zc_eval_nb101(tmp_path / "one.npz", "1shot1-ss1", 5, ["params"], dataset="digits")


TINY_SNN = ["snn.channels=8", "snn.timesteps=4", "snn.epochs=1", "snn.batch_size=128",
            "snn.cutout=0", "snn.crop_pad=0", "snn.flip=false", "run.progress=false"]


@pytest.fixture(scope="module")
def quality_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "study"
    torch.set_num_threads(1)
    run_snn_quality(load_config(None, [*TINY_SNN, "snn.samples=3", "snn.variants=[default]"]),
                    out)
    return out


def test_snn_scores_match_the_samplers_network_and_accuracies_the_study(quality_study):
    result = zc_eval_snn(quality_study, FAST, seed=1)
    with (quality_study / "quality.csv").open() as f:
        table = list(csv.DictReader(f))
    rows = result["rows"]
    assert [r["arch"] for r in rows] == [t["arch"] for t in table]
    assert [r["test_acc"] for r in rows] == [float(t["test_acc"]) for t in table]
    # the study trained C=8, T=4 default-variant networks: exactly the sampler's SNN network
    samples = [Sample("snn", tuple(t["arch"].split(",")), t["arch"], i)
               for i, t in enumerate(table)]
    data = load_batch("digits", 64, 1)
    again = score_architectures("snn", samples, FAST, data, None, 1,
                                settings=NetSettings(channels=8, timesteps=4))
    for mine, theirs in zip(rows, again, strict=True):
        for name in FAST:
            assert mine[name] == pytest.approx(theirs[name], rel=1e-5)
    rho = spearmanr([r["synflow"] for r in rows], [r["test_acc"] for r in rows]).statistic
    got = result["correlations"]["synflow"]["spearman"]
    assert (got != got and rho != rho) or got == pytest.approx(rho)


def test_snn_study_errors(tmp_path, quality_study):
    with pytest.raises(NasforgeError, match="holds no quality.csv"):
        quality_runs(tmp_path)
    (tmp_path / "quality.csv").write_text("variant,index,arch,test_acc,spikes,params_m\n"
                                          "default,0,skip,50.0,1,0.1\n")
    with pytest.raises(NasforgeError, match="has no results.json"):
        quality_runs(tmp_path)
    assert len(quality_runs(quality_study)) == 3


def test_cli_eval_against_nb101_and_trained_snns(ss1_table, quality_study, tmp_path):
    proc = run_cli("zc", "eval", "--nb101", str(ss1_table), "--space", "1shot1-ss1",
                   "--samples", "6", "--proxies", "params", "--dataset", "digits",
                   "--channels", "4", "--layers", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"]["n"] == 6
    proc = run_cli("zc", "eval", "--snn-quality", str(quality_study), "--proxies",
                   "params,synflow")
    assert proc.returncode == 0, proc.stderr
    assert "synflow" in proc.stdout and "3 networks" in proc.stdout
    bad = run_cli("zc", "eval", "--nb101", str(ss1_table), "--snn-quality",
                  str(quality_study))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "one of" in bad.stderr
