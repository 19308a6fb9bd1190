import csv
import gzip
import json

import pytest

from conftest import TINY_SEARCH
from nasforge.benchmarks.tabular import PROTOCOL, TabularBenchmark, cell_key, enumerate_cells
from nasforge.config import load_config
from nasforge.studies.proxy_data import run_proxy_study, summarise

ENTROPY_TINY = ["entropy.model=resnet8", "entropy.epochs=1", "entropy.milestones=[1]",
                "entropy.crop_pad=1", "run.device=cpu"]


@pytest.fixture(scope="module", autouse=True)
def resnet8():
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet

    AUX_MODELS._entries["resnet8"] = lambda k, c: cifar_resnet(8, k, c)
    yield
    del AUX_MODELS._entries["resnet8"]


def fake_table(path):
    """Every cell of the space with made-up accuracies (distinct, seed 1 = seed 0 - 1)."""
    records = {}
    for i, cell in enumerate(enumerate_cells()):
        acc = 80.0 + 0.05 * i
        records[cell_key(cell)] = {"val_acc": [acc + 1, acc], "test_acc": [acc, acc - 1],
                                   "params": 1000 + i, "seconds": [1.0, 1.0]}
    table = {"space": "tabular-digits", "protocol": PROTOCOL, "seeds": [0, 1],
             "records": records}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    table = fake_table(root / "table.json.gz")
    cfg = load_config("study-proxy-digits", [
        *ENTROPY_TINY, *TINY_SEARCH, "search.epochs=1",
        "study.methods=[p1,bottom-k]", "study.sizes=[0.05,64]", "study.seeds=[0]",
        f"study.bench={table}"])
    out = root / "out"
    rows = run_proxy_study(cfg, out, progress=False)
    return cfg, out, rows, TabularBenchmark.load(path=table)


def test_study_runs_every_point_plus_the_full_baseline(study):
    cfg, out, rows, bench = study
    plan = {(r["method"], r["k"]) for r in rows}
    assert plan == {("full", 1258), ("p1", 63), ("p1", 64), ("bottom-k", 63),
                    ("bottom-k", 64)}
    with open(out / "results.csv", newline="") as fh:
        saved = list(csv.DictReader(fh))
    assert len(saved) == len(rows) == 5
    for row in saved:
        size = float(row["size"])
        label = f"{int(size)}" if size >= 1 else f"{size:g}"
        run = out / "runs" / f"darts-{row['method']}-{label}-s0"
        found = json.loads((run / "results.json").read_text())["genotype"]
        # the score is the table's mean test accuracy of the cell the search found
        assert float(row["test_acc"]) == pytest.approx(bench.query(found)["test_acc_mean"])
        if row["method"] != "full":
            lines = (out / "proxies" / f"{row['method']}-{label}-s0.txt").read_text()
            assert len([x for x in lines.splitlines() if x and not x.startswith("#")]) == \
                int(row["k"])
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["table"]) == 5
    table = (out / "table.md").read_text()
    p1 = [r for r in rows if r["method"] == "p1"]
    assert all(f"{r['test_acc']:.2f} ± 0.00" in table for r in p1)


def test_a_rerun_skips_finished_runs(study):
    cfg, out, rows, _ = study
    marker = out / "runs" / "darts-p1-64-s0" / "results.json"
    before = marker.stat().st_mtime_ns
    again = run_proxy_study(cfg, out, progress=False)
    assert marker.stat().st_mtime_ns == before
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in rows]


def test_summarise_means_and_stds():
    rows = [{"algo": "darts", "method": "p1", "size": 0.1, "k": 10, "seed": s,
             "test_acc": acc, "search_seconds": 2.0} for s, acc in enumerate((90.0, 94.0))]
    (entry,) = summarise(rows)["table"]
    assert entry["test_acc_mean"] == pytest.approx(92.0)
    assert entry["test_acc_std"] == pytest.approx(2 ** 0.5 * 2)
    assert entry["runs"] == 2
