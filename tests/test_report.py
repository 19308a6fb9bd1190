"""`nasforge report`: self-contained HTML + markdown reports of real (tiny) runs."""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, TINY_TRAIN
from nasforge.analysis.curves import plot_curves
from nasforge.analysis.report import build_report, fmt
from nasforge.cli import main
from nasforge.config import load_config
from nasforge.spaces.darts.genotype import parse_genotype


def age(run: Path, seconds: float = 3600) -> None:
    """Make a run look untouched for ``seconds`` (not 'running' any more)."""
    past = time.time() - seconds
    for path in [run, *run.rglob("*")]:
        os.utime(path, (past, past))


def images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def check_self_contained(html_path: Path, md_path: Path) -> tuple[str, str]:
    html, md = html_path.read_text(), md_path.read_text()
    linked = images(md)
    assert linked and all((md_path.parent / name).is_file() for name in linked)
    assert html.count('src="data:image/png;base64,') == len(linked)
    assert 'src="http' not in html and "<script" not in html and "<link" not in html
    return html, md


@pytest.fixture
def darts_copy(search_runs, tmp_path) -> Path:
    run = tmp_path / "darts"
    shutil.copytree(search_runs["darts"], run)
    return run


def test_search_report_is_self_contained_and_complete(search_runs, tmp_path):
    run = search_runs["darts"]
    results = json.loads((run / "results.json").read_text())
    html_path, md_path = build_report(run, tmp_path / "rep")
    assert (html_path.name, md_path.name) == ("report.html", "report.md")
    html, md = check_self_contained(html_path, md_path)
    assert {"curves.png", "strengths.png", "normal.png", "reduce.png"} <= set(images(md))
    for text in (html, md):
        assert results["genotype"] in text
        assert f"| val_acc | {fmt(results['val_acc'])} |" in md
        assert fmt(results["val_acc"]) in text and fmt(results["val_loss"]) in text
        assert "algo: darts" in text and "channels: 4" in text  # the config
        assert "examples seen" in text and str(results["cost"]["examples_seen"]) in text
        assert "status: done" not in text and "not available" not in text
        assert str(results["cost"]["train_examples"]) in text  # data: proxy subset size
    assert "Search curves" in md and "Op strengths" in md and "Derived architecture" in md
    assert not (run / "report").exists()  # --out was given


def test_killed_run_reports_resumable_with_what_it_has(darts_copy):
    (darts_copy / "results.json").unlink()
    (darts_copy / "genotype.txt").unlink()
    (darts_copy / "strengths.json").unlink()
    age(darts_copy)
    html_path, md_path = build_report(darts_copy)
    assert md_path.parent == darts_copy / "report"  # the default output folder
    html, md = check_self_contained(html_path, md_path)
    assert "| status | resumable |" in md
    assert f"nasforge search --resume {darts_copy}" in md
    assert "final metrics: not available" in md
    # strengths and the genotype come from the last epoch's record instead
    record = json.loads((darts_copy / "strengths.jsonl").read_text().splitlines()[-1])
    assert record["genotype"] in md and "run unfinished" in md
    assert "strengths.png" in images(md)


def test_failed_run_renders_without_a_crash(darts_copy):
    """Killed before its first epoch: only the config is there (the kind is unknown)."""
    for path in darts_copy.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != "config.yaml":
            path.unlink()
    age(darts_copy)
    _, md_path = build_report(darts_copy)
    md = md_path.read_text()
    assert "| status | failed |" in md and "| kind | run |" in md
    assert "final metrics: not available (no results.json; status: failed" in md
    assert "algo: darts" in md


def test_folder_of_runs_gets_an_index_and_a_section_per_run(search_runs, tmp_path, one_thread):
    from nasforge.train import run_train

    root = tmp_path / "demo"
    shutil.copytree(search_runs["btnas"], root / "search")
    search = json.loads((root / "search" / "results.json").read_text())
    train = run_train(load_config(None, [*TINY_TRAIN, "train.epochs=1"]),
                      parse_genotype(search["genotype"]), root / "train")
    (root / "results.json").write_text(json.dumps({  # what `nasforge demo` writes, in short
        "algo": "btnas", "genotype": search["genotype"], "test_acc": train["test_acc"],
        "files": {"search_run": "search", "train_run": "train"}}))
    html_path, md_path = build_report(root)
    html, md = check_self_contained(html_path, md_path)
    assert "## Demo summary" in md and "## Runs" in md
    assert "## search: search" in md and "## train: train" in md
    assert "### Retrain curves" in md and "### Trained cell" in md
    assert {"demo-curves.png", "search-strengths.png", "train-curves.png",
            "train-normal.png"} <= set(images(md))
    assert f"| test_acc | {fmt(train['test_acc'])} |" in md
    assert "epochs: 1" in html and 'id="train"' in html


def test_oneshot_search_report_shows_tables(small_proxy, tmp_path, one_thread):
    from nasforge.search.loop import run_search

    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={small_proxy}", "search.epochs=1",
                             "search.space=1shot1-ss1"])
    results = run_search(cfg, tmp_path / "ss1")
    _, md_path = build_report(tmp_path / "ss1")
    md = md_path.read_text()
    assert results["genotype"] in md
    assert "| block | conv3x3-bn-relu | conv1x1-bn-relu | maxpool3x3 |" in md
    assert "| vertex | op | reads |" in md and "| output |" in md
    assert "strengths.png" not in md and "normal.png" not in md


def test_curves_skip_missing_columns_and_empty_cells(tmp_path):
    rows = [{"epoch": "0", "train_loss": "2.0", "train_acc": "", "test_acc": "50"},
            {"epoch": "1", "train_loss": "1.0", "train_acc": "", "test_acc": "60"}]
    assert plot_curves({"entropy": rows}, tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "file.txt", "is not a directory"),
    (lambda p: p / "empty", "is not a nasforge run directory"),
    (lambda p: p / "missing", "does not exist"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_prints_both_paths(search_runs, tmp_path, capsys):
    assert main(["report", str(search_runs["btnas"]), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "r" / "report.html"),
                                               str(tmp_path / "r" / "report.md")]

