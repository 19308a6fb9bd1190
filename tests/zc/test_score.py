"""Scoring sampled architectures, rank correlations, and the functions the CLI will call."""

import csv
import json
import math

import pytest
import torch

from nasforge.benchmarks.tabular import TabularBenchmark
from nasforge.errors import NasforgeError
from nasforge.zc.proxies import PROXIES
from nasforge.zc.sample import NetSettings, build_network, sample_architectures
from nasforge.zc.score import (
    correlations,
    format_table,
    load_batch,
    resolve_proxies,
    score_architectures,
    zc_eval,
    zc_score,
)

TINY = NetSettings(channels=4, layers=3, timesteps=2)
FAST = ["grad_norm", "naswot", "params", "synflow"]


def test_correlations_by_hand():
    rows = [{"a": v, "b": -v, "c": 1.0, "d": w}
            for v, w in zip([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, math.nan],
                            strict=True)]
    acc = [10.0, 20.0, 30.0, 40.0, 50.0]
    out = correlations(rows, acc, ["a", "b", "c", "d"])
    assert out["a"] == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "n": 5}
    assert out["b"]["spearman"] == pytest.approx(-1.0)
    assert math.isnan(out["c"]["spearman"]) and math.isnan(out["c"]["kendall"])  # constant
    # d: NaN row left out; ranks 2,1,4,3 vs 1,2,3,4: ρ = 1 − 6·4/(4·15) = 0.6,
    # τ = (4 concordant − 2 discordant) / 6
    assert out["d"]["n"] == 4
    assert out["d"]["spearman"] == pytest.approx(0.6)
    assert out["d"]["kendall"] == pytest.approx(2 / 6)
    ranked = correlations([{"a": -math.inf}, {"a": 0.0}, {"a": 1.0}], [1.0, 2.0, 3.0], ["a"])
    assert ranked["a"]["spearman"] == pytest.approx(1.0)  # −inf ranks lowest
    with pytest.raises(NasforgeError, match="3 rows but 2 accuracies"):
        correlations(rows[:3], acc[:2])


def test_resolve_proxies():
    assert resolve_proxies(None) == PROXIES.names()
    assert resolve_proxies("snip, synflow") == ["snip", "synflow"]
    with pytest.raises(NasforgeError, match="unknown zero-cost proxy 'zen'"):
        resolve_proxies("snip,zen")
    with pytest.raises(NasforgeError, match="listed twice"):
        resolve_proxies(["snip", "snip"])


def test_load_batch_is_seeded_and_normalised():
    a, b = load_batch("digits", 64, 0), load_batch("digits", 64, 0)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(load_batch("digits", 64, 1).x, a.x)
    assert a.x.shape == (64, 1, 8, 8) and a.num_classes == 10
    assert abs(float(a.x.mean())) < 0.3 and 0.7 < float(a.x.std()) < 1.3
    assert a.x.stride() == (64, 64, 8, 1)
    with pytest.raises(NasforgeError, match="training split has 1258"):
        load_batch("digits", 5000, 0)


def test_score_architectures_rows_and_batch(one_thread):
    samples = sample_architectures("tabular-digits", 2, seed=0)
    data = load_batch("digits", 128, 0)
    rows = score_architectures("tabular-digits", samples, FAST, data, None, 0, settings=TINY)
    assert [r["arch"] for r in rows] == [s.text for s in samples]
    assert [r["index"] for r in rows] == [0, 1]
    # the same network scored by hand with the published batch sizes
    torch.manual_seed(0)
    net = build_network(samples[1], in_channels=1, in_size=8, num_classes=10, settings=TINY)
    for name in FAST:
        b = max(PROXIES.get(name).batch_size, 1)
        assert rows[1][name] == PROXIES.get(name)(net, data.x[:b], data.y[:b],
                                                  torch.nn.functional.cross_entropy)
    fixed = score_architectures("tabular-digits", samples[:1], ["naswot"], data, 16, 0,
                                settings=TINY)
    torch.manual_seed(0)
    net = build_network(samples[0], in_channels=1, in_size=8, num_classes=10, settings=TINY)
    assert fixed[0]["naswot"] == PROXIES.get("naswot")(net, data.x[:16], data.y[:16], None)
    with pytest.raises(NasforgeError, match="from space tabular-digits, not darts"):
        score_architectures("darts", samples, FAST, data, None, 0)
    with pytest.raises(NasforgeError, match="holds 128 examples; the proxies need 200"):
        score_architectures("tabular-digits", samples, FAST, data, 200, 0)


def test_snn_scores_flow_through_the_surrogate_gradient(one_thread):
    samples = sample_architectures("snn", 2, seed=0)
    data = load_batch("digits", 16, 0)
    rows = score_architectures("snn", samples, None, data, 16, 0, settings=TINY)
    for row in rows:
        for name in ("grad_norm", "snip", "synflow", "fisher"):
            assert row[name] > 0, (name, row)  # gradients through the spike function
        assert row["grasp"] != 0  # a Hessian-gradient product through the surrogate too
        assert all(math.isfinite(row[n]) or math.isnan(row[n]) or row[n] == -math.inf
                   for n in PROXIES.names())
    # T time steps: a network over more steps gives other scores
    more = score_architectures("snn", samples[:1], ["grad_norm"], data, 16, 0,
                               settings=NetSettings(channels=4, timesteps=3))
    assert more[0]["grad_norm"] != rows[0]["grad_norm"]


def test_zc_score_writes_csv_and_is_seeded(tmp_path, one_thread):
    out = tmp_path / "scores.csv"
    rows = zc_score("1shot1-ss2", 2, "params,synflow", "digits", 0, out, settings=TINY)
    again = zc_score("1shot1-ss2", 2, ["params", "synflow"], "digits", 0, settings=TINY)
    assert rows == [{**r, "seconds": rows[i]["seconds"]} for i, r in enumerate(again)]
    other = zc_score("1shot1-ss2", 2, ["params", "synflow"], "digits", 1, settings=TINY)
    assert [r["arch"] for r in other] != [r["arch"] for r in rows]
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["index", "space", "arch", "params", "synflow", "seconds"]
    assert [float(r["synflow"]) for r in table] == [r["synflow"] for r in rows]
    assert [r["arch"] for r in table] == [r["arch"] for r in rows]


def test_zc_eval_on_part_of_the_table(tmp_path, one_thread):
    out = tmp_path / "eval.json"
    result = zc_eval("tabular-digits", ["params", "naswot", "synflow"], 0, out, limit=6)
    bench = TabularBenchmark.load("tabular-digits")
    assert result["cells"] == 6 and result["proxies"] == ["params", "naswot", "synflow"]
    assert [r["arch"] for r in result["rows"]] == bench.keys()[:6]
    accs = [bench.query(k)["test_acc_mean"] for k in bench.keys()[:6]]
    assert [r["test_acc_mean"] for r in result["rows"]] == accs
    assert result["correlations"] == correlations(result["rows"], accs,
                                                  ["params", "naswot", "synflow"])
    assert all(c["n"] == 6 for c in result["correlations"].values())
    # the table's own networks: its protocol's 8 channels, 5 cells
    assert result["rows"][0]["params"] == bench.query(bench.keys()[0])["params"]
    saved = json.loads(out.read_text())
    assert saved["cells"] == 6 and saved["correlations"].keys() == result["correlations"].keys()
    text = format_table(result)
    assert text.splitlines()[0].split() == ["proxy", "spearman", "kendall", "n"]
    assert len(text.splitlines()) == 4


def test_a_batch_moves_to_a_device_once():
    data = load_batch("digits", 8, 0)
    assert data.to("cpu") is data  # already there: no copy
    if not torch.cuda.is_available():  # an unavailable device is a user error
        with pytest.raises(NasforgeError, match="CUDA is not available"):
            zc_score("tabular-digits", 1, "params", "digits", 0, settings=TINY,
                     device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_on_cuda_match_the_cpu(one_thread):
    """The same networks (initialised on the CPU from the seed) scored on the GPU: only the
    arithmetic differs, so every proxy agrees to float tolerance."""
    samples = sample_architectures("tabular-digits", 2, seed=0) + \
        sample_architectures("snn", 1, seed=0)
    data = load_batch("digits", 64, 0)
    names = ["grad_norm", "snip", "synflow", "naswot", "params", "flops", "fisher"]
    for space, group in (("tabular-digits", samples[:2]), ("snn", samples[2:])):
        cpu = score_architectures(space, group, names, data, 64, 0, settings=TINY)
        gpu = score_architectures(space, group, names, data, 64, 0, settings=TINY,
                                  device="cuda")
        for a, b in zip(cpu, gpu, strict=True):
            for n in names:
                assert b[n] == pytest.approx(a[n], rel=1e-3, abs=1e-6), (space, n)
