"""`nasforge runs`: run directories under a folder with their status."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from nasforge.cli import main
from nasforge.run_status import find_run_dirs, format_runs, list_runs, run_info


def age(run: Path, seconds: float = 3600) -> None:
    past = time.time() - seconds
    for path in [run, *run.rglob("*")]:
        os.utime(path, (past, past))


@pytest.fixture
def runs_root(search_runs, tmp_path) -> Path:
    """done / resumable / failed / running search runs, one level below ``root``, plus a
    demo-style folder holding a run two levels down."""
    root = tmp_path / "runs"
    for name in ("done", "resumable", "failed", "running"):
        shutil.copytree(search_runs["darts"], root / name)
    (root / "resumable" / "results.json").unlink()
    for path in (root / "failed").iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != "config.yaml":
            path.unlink()
    shutil.copytree(search_runs["btnas"], root / "demo" / "search")
    (root / "notes").mkdir()
    (root / "notes" / "x.txt").write_text("not a run")
    age(root)
    (root / "running" / "results.json").unlink()
    (root / "running" / "search_log.csv").touch()  # its last epoch was just written
    return root


def test_statuses_kinds_and_progress(runs_root):
    runs = {Path(r.path).relative_to(runs_root).as_posix(): r for r in list_runs(runs_root)}
    assert list(runs) == ["demo/search", "done", "failed", "resumable", "running"]
    assert {k: r.status for k, r in runs.items()} == {
        "demo/search": "done", "done": "done", "failed": "failed",
        "resumable": "resumable", "running": "running"}
    done = runs["done"]
    results = json.loads((runs_root / "done" / "results.json").read_text())
    assert (done.kind, done.epoch, done.epochs, done.progress) == ("search", 1, 1, "1/1")
    assert (done.metric, done.value) == ("val_acc", results["val_acc"])
    assert done.age >= 3500 and done.detail == "darts digits"
    assert runs["resumable"].metric == "val_acc"  # from the log's last row
    assert runs["running"].age < 60
    assert runs["failed"].kind == "run" and runs["failed"].progress == "-"
    assert runs["demo/search"].detail == "btnas digits"


def test_running_window_follows_active(runs_root):
    assert run_info(runs_root / "running", active=0).status == "running"  # epoch-time window
    assert run_info(runs_root / "resumable", active=7200).status == "running"


def test_depth_limit(runs_root):
    assert [p.name for p in find_run_dirs(runs_root, max_depth=1)] == [
        "done", "failed", "resumable", "running"]
    assert find_run_dirs(runs_root / "done", max_depth=0) == [runs_root / "done"]


def test_table_is_aligned(runs_root):
    lines = format_runs(list_runs(runs_root)).splitlines()
    assert lines[0].split() == ["STATUS", "KIND", "EPOCHS", "METRIC", "AGE", "PATH", "DETAIL"]
    column = lines[0].index("PATH")
    assert all(line[column:].startswith(str(runs_root)) for line in lines[1:])


def test_cli_json_and_table(runs_root, capsys):
    assert main(["runs", str(runs_root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {Path(r["path"]).name: r["status"] for r in rows} == {
        "search": "done", "done": "done", "failed": "failed", "resumable": "resumable",
        "running": "running"}
    assert {"kind", "epoch", "epochs", "progress", "metric", "value", "age"} <= set(rows[0])
    assert main(["runs", str(runs_root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("STATUS") and out.count("\n") == 6


def test_cli_default_dir_and_empty_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 2  # default: ./runs, absent here
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs is not a directory" in err
    (tmp_path / "runs").mkdir()
    assert main(["runs"]) == 0
    assert capsys.readouterr().out == "no runs under runs\n"


@pytest.mark.parametrize("argv", [["runs", "--depth", "-1"], ["runs", "--active", "x"]])
def test_cli_bad_options(tmp_path, capsys, argv):
    assert main([*argv, str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("text", ['{"stage": "search", "val_acc": 9', "", "null", "[1, 2]", "{}"])
def test_a_corrupt_results_json_is_failed_not_done(runs_root, capsys, text):
    """A truncated or unparseable results.json (written atomically, so damaged afterwards)
    makes the run failed, whatever else it holds, and the table says why; even one
    recently changed or holding a checkpoint is not running/resumable."""
    run = runs_root / "done"
    (run / "results.json").write_text(text)
    info = run_info(run)
    assert info.status == "failed" and info.kind == "search"
    assert info.detail == "darts digits; results.json is corrupt"
    assert main(["runs", str(runs_root)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if f"{run} " in x]
    assert line.startswith("failed") and line.endswith("results.json is corrupt")


def test_report_on_a_corrupt_results_json(runs_root, tmp_path, capsys):
    """`nasforge report` on a run whose results.json is truncated says so in the report;
    one that parses but holds the wrong types is one line and exit 2, no traceback."""
    run = runs_root / "done"
    (run / "results.json").write_text('{"stage": "search", "geno')
    assert main(["report", str(run), "--out", str(tmp_path / "r1")]) == 0
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "| status | failed |" in md and "corrupt results.json" in md
    capsys.readouterr()
    (run / "results.json").write_text('{"stage": "search", "genotype": 5, "cost": "x"}')
    assert main(["report", str(run), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{run / 'results.json'} is corrupt" in err


def test_a_search_without_epochs_shows_no_epoch_budget(tmp_path, proxy_file):
    """random / zc-* runs score cells one by one and keep no epoch log: their progress is
    "-", not "?/50" (search.epochs is not their budget)."""
    out = tmp_path / "zc"
    assert main(["search", "--algo", "zc-random", "--dataset", "digits", "--out", str(out),
                 "--proxy", str(proxy_file), "--set", "search.space=tabular-digits",
                 "--set", "search.nodes=2", "--set", "search.samples=3",
                 "--set", "search.zc_proxies=params", "--no-progress"]) == 0
    info = run_info(out)
    assert (info.status, info.kind, info.progress) == ("done", "search", "-")
