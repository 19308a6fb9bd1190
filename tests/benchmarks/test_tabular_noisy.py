"""``tabular-noisy-digits``: the table built to rank (issue 19) — its protocol, its statistics
and, once built, the seed-to-seed agreement it was designed for."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from nasforge.benchmarks import PROTOCOLS, TabularBenchmark, cell_from_key, train_protocol
from nasforge.errors import NasforgeError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_tabular_digits.py"
KEY = "sep_conv_3x3~0|skip_connect~1+max_pool_3x3~0|sep_conv_3x3~2"


def test_protocol_differs_from_tabular_digits_only_where_documented():
    a, b = PROTOCOLS["tabular-digits"], PROTOCOLS["tabular-noisy-digits"]
    assert {k for k in a if a[k] != b[k]} == {"dataset", "channels", "epochs"}
    assert (b["dataset"], b["channels"], b["epochs"]) == ("noisy-digits", 4, 20)


def test_train_protocol_trains_on_the_benchmarks_data():
    cell = cell_from_key(KEY)
    tiny = dict(epochs=1, layers=3)
    noisy = train_protocol(cell, 0, bench="tabular-noisy-digits", **tiny)
    again = train_protocol(cell, 0, bench="tabular-noisy-digits", **tiny)
    clean = train_protocol(cell, 0, channels=4, **tiny)
    noisy.pop("seconds"), again.pop("seconds"), clean.pop("seconds")
    assert noisy == again
    assert noisy["params"] == clean["params"]  # same network (channels 4, 3 cells)
    # 11,488 test images: accuracies are multiples of 1/11488, digits' of 1/359
    assert abs(noisy["test_acc"] * 114.88 - round(noisy["test_acc"] * 114.88)) < 1e-6
    assert noisy["test_acc"] != clean["test_acc"]
    with pytest.raises(NasforgeError, match="unknown benchmark 'nope'"):
        train_protocol(cell, 0, bench="nope")


def _table(records: dict, seeds: list[int]) -> TabularBenchmark:
    return TabularBenchmark({"space": "tabular-digits", "protocol": {}, "seeds": seeds,
                             "records": records})


def test_stats_average_spearman_over_seed_pairs_and_give_the_spread_ratio():
    keys = sorted(TabularBenchmark.load().keys())[:6]
    tests = [[90, 91, 89], [80, 82, 81], [85, 84, 86], [70, 70, 72], [95, 94, 96],
             [60, 63, 61]]
    records = {k: {"val_acc": t, "test_acc": t, "params": 1, "seconds": [1, 1, 1]}
               for k, t in zip(keys, tests, strict=True)}
    stats = _table(records, [0, 1, 2]).stats()
    cols = list(zip(*tests, strict=True))
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = sum(spearmanr(cols[i], cols[j]).statistic for i, j in pairs) / 3
    assert stats["seed_spearman"] == pytest.approx(expected)
    ranges = [max(t) - min(t) for t in tests]
    assert stats["mean_seed_range"] == pytest.approx(sum(ranges) / 6)
    means = sorted(sum(t) / 3 for t in tests)
    median = (means[2] + means[3]) / 2
    assert stats["spread_ratio"] == pytest.approx((means[-1] - median) / (sum(ranges) / 6))


def test_four_seed_tables_also_compare_the_two_halves_of_their_seeds():
    keys = sorted(TabularBenchmark.load().keys())[:5]
    tests = [[90, 91, 89, 92], [80, 82, 81, 79], [85, 84, 86, 88], [70, 70, 72, 71],
             [95, 94, 96, 93]]
    records = {k: {"val_acc": t, "test_acc": t, "params": 1, "seconds": [1] * 4}
               for k, t in zip(keys, tests, strict=True)}
    stats = _table(records, [0, 1, 2, 3]).stats()
    first, second = [(t[0] + t[1]) / 2 for t in tests], [(t[2] + t[3]) / 2 for t in tests]
    assert stats["half_spearman"] == pytest.approx(spearmanr(first, second).statistic)
    gaps = [abs(a - b) for a, b in zip(first, second, strict=True)]  # 0 1 2.5 1.5 0
    assert stats["half_range"] == pytest.approx(sum(gaps) / 5) == pytest.approx(1.0)
    assert stats["half_spread_ratio"] == pytest.approx((94.5 - 85.75) / 1.0)
    three = {k: {**r, "val_acc": r["val_acc"][:3], "test_acc": r["test_acc"][:3],
                 "seconds": [1] * 3} for k, r in records.items()}
    assert "half_spearman" not in _table(three, [0, 1, 2]).stats()  # no two equal halves


def test_table_only_writes_the_cells_finished_for_every_seed(tmp_path):
    work = tmp_path / "work.jsonl"
    protocol = {**PROTOCOLS["tabular-noisy-digits"], "threads": 1}
    rows = [{"protocol": protocol}]
    rows += [{"key": KEY, "seed": s, "val_acc": 80.0 + s, "test_acc": 81.0 + s,
              "params": 4974, "seconds": 1.0} for s in (0, 1, 2, 3, 4, 5)]
    other = "max_pool_3x3~0|max_pool_3x3~1+max_pool_3x3~0|max_pool_3x3~1"
    rows.append({"key": other, "seed": 0, "val_acc": 70.0, "test_acc": 71.0, "params": 1,
                 "seconds": 1.0})
    work.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "t.json.gz"
    res = subprocess.run([sys.executable, str(SCRIPT), "--bench", "tabular-noisy-digits",
                          "--table-only", "--work", str(work), "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # without --seeds: the shipped table's 6 seeds
    assert "7 done, 1451 to train" in res.stdout and "trained 0 " in res.stdout
    table = TabularBenchmark.load(path=out)
    assert table.keys() == [KEY]
    assert table.query(KEY)["test_acc"] == [81.0, 82.0, 83.0, 84.0, 85.0, 86.0]
    assert work.read_text().count("\n") == 8  # nothing trained, nothing appended


def _shipped_stats() -> dict:
    table = TabularBenchmark.load("tabular-noisy-digits")
    assert table.seeds == [0, 1, 2, 3, 4, 5] and len(table) == 243
    return table.stats()


def _half_means(tests: list[list[float]], seeds: slice) -> list[float]:
    return [sum(t[seeds]) / len(t[seeds]) for t in tests]


def test_the_shipped_table_holds_the_earlier_builds():
    """Seeds 0 and 1 are the complete 20-epoch table of session 7, seeds 0-3 the 4-seed
    table of session 8 (re-training reproduces them bit-exactly): their statistics,
    recomputed here — Spearman 0.761 and mean range 0.740 points for seeds 0 and 1; the
    2-seed builds {0, 1} and {2, 3} agree at 0.855 with a mean gap of 0.638 points."""
    table = TabularBenchmark.load("tabular-noisy-digits")
    assert table.protocol["epochs"] == 20 and table.protocol == PROTOCOLS["tabular-noisy-digits"]
    cells = table.keys()
    tests = [table.query(k)["test_acc"] for k in cells]
    s0, s1 = [t[0] for t in tests], [t[1] for t in tests]
    assert spearmanr(s0, s1).statistic == pytest.approx(0.761, abs=0.001)
    assert sum(abs(a - b) for a, b in zip(s0, s1, strict=True)) / 243 == pytest.approx(
        0.740, abs=0.001)
    first, second = _half_means(tests, slice(0, 2)), _half_means(tests, slice(2, 4))
    assert spearmanr(first, second).statistic == pytest.approx(0.855, abs=0.001)
    assert sum(abs(a - b) for a, b in zip(first, second, strict=True)) / 243 == \
        pytest.approx(0.638, abs=0.001)


def test_the_shipped_tables_values_rank():
    """Issue 19's Spearman bar on the table's values (6-seed means), measured one level
    down as two independent 3-seed builds: seeds {0, 1, 2} against {3, 4, 5} agree at
    0.875 (measured 2026-12-06, session 9). A single training does not reach 0.8 (below)."""
    stats = _shipped_stats()
    assert stats["half_spearman"] >= 0.8
    assert stats["half_spearman"] == pytest.approx(0.875, abs=0.001)
    assert stats["half_range"] == pytest.approx(0.474, abs=0.001)
    assert (stats["min"], stats["median"], stats["max"]) == pytest.approx(
        (79.50, 89.12, 90.97), abs=0.005)


def test_the_shipped_table_spreads_its_cells():
    """Issue 19's spread bar on the table's values: best - median (90.97 - 89.12 = 1.85
    points) is 3.90 mean gaps between two independent 3-seed builds (0.474 points). With
    2-seed builds it was 2.80 (session 8), short of 3."""
    stats = _shipped_stats()
    assert stats["half_spread_ratio"] >= 3.0
    assert stats["half_spread_ratio"] == pytest.approx(3.90, abs=0.01)


@pytest.mark.xfail(strict=True, reason="single trainings agree at seed Spearman 0.755 (mean "
                   "over the 15 seed pairs); training is chaotic, longer training did not "
                   "help (docs/bench.md)")
def test_single_trainings_rank():
    """Issue 19's bar read per training: any two seeds agree at Spearman >= 0.8. Strict
    xfail: a table that meets it turns this into a failure to remove."""
    assert _shipped_stats()["seed_spearman"] >= 0.8
