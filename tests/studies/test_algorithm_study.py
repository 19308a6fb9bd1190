import csv
import json

import pytest

from conftest import TINY_SEARCH, run_cli
from nasforge.config import load_config
from nasforge.studies.algorithms import markdown, run_algorithm_study, summarise
from studies.test_proxy_data_study import ENTROPY_TINY, fake_table


@pytest.fixture(scope="module", autouse=True)
def resnet8():
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet

    AUX_MODELS._entries["resnet8"] = lambda k, c: cifar_resnet(8, k, c)
    yield
    del AUX_MODELS._entries["resnet8"]


def test_every_algorithm_on_full_and_proxy_data(tmp_path, one_thread):
    table = fake_table(tmp_path / "table.json.gz")
    cfg = load_config("study-algorithms-digits", [
        *ENTROPY_TINY, *TINY_SEARCH, "search.epochs=1", "search.nodes=2",
        "study.algos=[darts,gdas]", "study.seeds=[0]", "study.sizes=[64]",
        f"study.bench={table}"])
    summary = run_algorithm_study(cfg, tmp_path / "out", progress=False)
    assert {(r["algo"], r["data"]) for r in summary} == {
        ("darts", "full"), ("darts", "p1 64"), ("gdas", "full"), ("gdas", "p1 64")}
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    for row in summary:
        mine = [r for r in runs if r["algo"] == row["algo"]
                and (r["method"] == "full") == (row["data"] == "full")]
        assert row["test_acc_mean"] == pytest.approx(float(mine[0]["test_acc"]))
    saved = json.loads((tmp_path / "out" / "algorithms.json").read_text())
    assert saved == summary
    assert (tmp_path / "out" / "algorithms.png").read_bytes()[:4] == b"\x89PNG"
    assert "| gdas |" in (tmp_path / "out" / "algorithms.md").read_text()


def test_summary_statistics_and_table():
    rows = [{"algo": "a", "method": "p1", "size": 0.2, "test_acc": acc, "rank": rank,
             "search_seconds": 3.0} for acc, rank in ((90.0, 4), (94.0, 2))]
    rows += [{"algo": "a", "method": "full", "size": 1.0, "test_acc": 91.0, "rank": 3,
              "percentile": pct, "search_seconds": 9.0} for pct in (40.0, 60.0, 50.0)]
    summary = summarise(rows)
    proxy = next(r for r in summary if r["data"] == "p1 0.2")
    assert proxy["test_acc_mean"] == 92.0 and proxy["rank_mean"] == 3.0
    assert proxy["test_acc_std"] == pytest.approx(2 ** 0.5 * 2)
    assert proxy["percentile_mean"] is None  # rows written before the column: no percentile
    full = next(r for r in summary if r["data"] == "full")
    # 95% Student-t interval over 3 seeds: t(0.975, 2) = 4.303, sd 10, n 3
    assert full["percentile_mean"] == pytest.approx(50.0)
    assert full["percentile_ci"] == pytest.approx(4.302653 * 10 / 3 ** 0.5, rel=1e-5)
    text = markdown(summary)
    assert "| a | 92.00 ± 2.83 | 91.00 ± 0.00 | 50 ± 25 | 9 |" in text


def test_cli_rejects_an_unknown_algorithm(tmp_path):
    res = run_cli("study", "algorithms", "--out", str(tmp_path / "s"), "--algos", "darts,nope")
    assert res.returncode == 2 and "nope" in res.stderr and "gdas" in res.stderr
