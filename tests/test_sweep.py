"""``nasforge sweep``: a real 2 x 2 sweep on digits with a local Ray, its re-run, a failing
trial, bad input, and the planning, sweep configs and plot without Ray."""

import csv
import json
import shlex

import pytest

from conftest import TINY_SEARCH, run_cli
from nasforge.cli import main
from nasforge.errors import NasforgeError
from nasforge.sweep import (
    flatten_metrics,
    make_spec,
    parse_grid,
    pick_metric,
    plan,
    split_values,
    sweep_config_names,
    validate,
)

NAMES = ["space=darts_seed=0", "space=darts_seed=1", "space=darts-no-none_seed=0",
         "space=darts-no-none_seed=1"]


def _command(tmp_path) -> list[str]:
    proxy = tmp_path / "proxy64.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    sets = [*TINY_SEARCH, "search.epochs=1", f"data.proxy={proxy}"]
    return ["search", "--algo", "darts", "--dataset", "digits",
            *[a for s in sets for a in ("--set", s)]]


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One sweep run three times: 2 spaces x 2 seeds; the same again (all skipped); then
    with a third, unknown space added to the grid (its 2 trials fail at run time)."""
    pytest.importorskip("ray")
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sw"
    command = _command(tmp)
    first = run_cli("sweep", *command, "--grid", "search.space=darts,darts-no-none",
                    "--seeds", "2", "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _rows(out / "results.csv")
    mtimes = {n: (out / n / "search" / "results.json").stat().st_mtime_ns for n in NAMES}
    again = run_cli("sweep", *command, "--grid", "search.space=darts,darts-no-none",
                    "--seeds", "2", "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    after = {n: (out / n / "search" / "results.json").stat().st_mtime_ns for n in NAMES}
    failing = run_cli("sweep", *command, "--grid", "search.space=darts,darts-no-none,nope",
                      "--seeds", "2", "--out", str(out), "--no-progress")
    assert failing.returncode == 0, failing.stderr[-3000:]
    return {"out": out, "first": first, "rows": rows, "again": again, "mtimes": (mtimes, after),
            "failing": failing, "command": command}


def test_every_trial_has_its_run_directory(sweep):
    out = sweep["out"]
    for name in NAMES:
        results = json.loads((out / name / "search" / "results.json").read_text())
        assert results["stage"] == "search"
        assert (out / name / "trial.log").read_text().startswith("$ nasforge search")
        assert json.loads((out / name / "trial.json").read_text())["status"] == "done"
    assert "4 trials: 4 run, 0 skipped" in sweep["first"].stdout


def test_results_csv_has_one_row_per_trial(sweep):
    rows = sweep["rows"]
    assert [r["trial"] for r in rows] == NAMES
    assert [(r["search.space"], r["seed"]) for r in rows] == [
        ("darts", "0"), ("darts", "1"), ("darts-no-none", "0"), ("darts-no-none", "1")]
    assert {r["status"] for r in rows} == {"done"}
    for row in rows:
        assert 0 <= float(row["val_acc"]) <= 100
        assert float(row["seconds"]) > 0 and row["error"] == ""
        assert float(row["cost.epochs"]) == 1
    # the seed really reaches the run: its saved config has it
    config = (sweep["out"] / NAMES[1] / "search" / "config.yaml").read_text()
    assert "seed: 1" in config and "space: darts" in config


def test_the_plot_is_a_png(sweep):
    png = (sweep["out"] / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "val_acc plotted" in sweep["first"].stdout


def test_a_rerun_skips_finished_trials(sweep):
    before, after = sweep["mtimes"]
    assert before == after
    assert "4 trials: 0 run, 4 skipped" in sweep["again"].stdout


def test_a_failing_trial_is_recorded_and_the_others_kept(sweep):
    out = sweep["out"]
    assert "6 trials: 2 run, 4 skipped (finished before), 2 failed" in sweep["failing"].stdout
    rows = _rows(out / "results.csv")
    assert len(rows) == 6
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["trial"] for r in failed] == ["space=nope_seed=0", "space=nope_seed=1"]
    assert all("unknown search space 'nope'" in r["error"] for r in failed)
    assert all(r["val_acc"] == "" for r in failed)
    assert all(r["status"] == "done" for r in rows if r not in failed)
    log = (out / "space=nope_seed=0" / "trial.log").read_text()
    assert "unknown search space 'nope'" in log
    summary = json.loads((out / "results.json").read_text())
    assert summary["failed"] == 2 and summary["skipped"] == 4 and len(summary["trials"]) == 6


def test_another_command_into_the_same_directory_is_refused(sweep, capsys):
    command = [a if a != "darts" else "btnas" for a in sweep["command"]]
    code = main(["sweep", *command, "--grid", "search.space=darts", "--out", str(sweep["out"])])
    err = capsys.readouterr().err
    assert code == 2 and "holds a sweep of" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["search", "--grid", "search.epochs"], "must look like key=value1,value2"),
    (["search", "--grid", "search.epochs=1,,2"], "empty value"),
    (["serch", "--grid", "search.epochs=1,2"], "COMMAND must be one of"),
    (["derive", "--grid", "search.epochs=1,2"], "COMMAND must be one of"),
    (["search", "--seeds", "0"], "--seeds must be at least 1"),
    (["search", "--grid", "search.epoch=1,2"], "unknown config key 'search.epoch'"),
    (["search", "--grid", "search.epochs=0,1"], "search.epochs must be >= 1"),
    (["search", "--grid", "run.seed=1,2"], "use --seeds N"),
    (["search", "--seed", "3"], "use --seeds N"),
    (["search", "--bogus"], "unrecognized arguments: --bogus"),
    (["search", "--then", "train", "--genotype", "x", "--set", "train.epoch=1"],
     "unknown config key 'train.epoch'"),
    (["--sweep-config", "t5.3-autosnn-lambda"], "needs --var supernet="),
    (["--sweep-config", "nope"], "neither a file nor a shipped sweep config"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["sweep", *argv, "--out", str(tmp_path / "sw"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "sw").exists()


def test_dry_run_lists_trials_wherever_the_sweep_options_are(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "--grid", "search.epochs=1,2", "--seeds", "2", "search", "--set",
                 "search.layers=3", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("4 trials (2 grid points x 2 seeds)")
    assert f"--set search.epochs=2 --set run.seed=1 --out {out}/epochs=2_seed=1/search" in text
    assert "--set search.layers=3" in text and not out.exists()
    # a sweep config, and COMMAND options after it that go to every step
    assert main(["sweep", "--sweep-config", "digits-btnas-lambda", "--set", "search.epochs=1",
                 "--seeds", "1", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("3 trials (3 grid points x 1 seed)")
    assert text.count("--set search.epochs=1") == 6  # 3 trials x (search, train)
    assert main(["sweep", "--list"]) == 0
    assert "t4.3-btnas-lambda" in capsys.readouterr().out


def test_out_is_required(capsys):
    assert main(["sweep", "search", "--grid", "search.epochs=1,2"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_split_values_and_grid():
    assert split_values("1,2") == ["1", "2"]
    assert split_values("[0.0],[-0.08, 1]") == ["[0.0]", "[-0.08, 1]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    assert parse_grid(["search.epochs=1,2", "--config=a,b"]) == {
        "search.epochs": ["1", "2"], "config": ["a", "b"]}
    with pytest.raises(NasforgeError, match="repeats a value"):
        parse_grid(["search.k=1,1"])


def test_plan_names_steps_and_overrides(tmp_path):
    spec = make_spec(["search", "--dataset", "digits", "--then", "train", "--genotype",
                      "{prev}"], grid=["search.epochs=1,2", "train.epochs=3", "config=a/b"],
                     seeds=2)
    trials = plan(spec, tmp_path)
    assert [t.name for t in trials][:2] == ["search.epochs=1_train.epochs=3_config=a-b_seed=0",
                                            "search.epochs=1_train.epochs=3_config=a-b_seed=1"]
    assert len(trials) == 4
    search, train = trials[1].argvs
    assert search[-2:] == ["--out", str(tmp_path / trials[1].name / "search")]
    assert " ".join(search).count("--set search.epochs=1") == 1
    assert search[search.index("--config") + 1] == "a/b"
    assert "run.seed=1" in search and "run.progress=false" in search
    assert train[train.index("--genotype") + 1] == str(tmp_path / trials[1].name / "search")


def test_an_option_goes_only_to_the_steps_that_have_it(tmp_path):
    """--algo is an option of `search`, not of `train`: a search -> train sweep over it
    passes it to the search step only; a key no step has is refused in one line."""
    spec = make_spec(["search", "--dataset", "digits", "--then", "train", "--genotype",
                      "{prev}"], grid=["algo=darts,gdas"])
    trials = plan(spec, tmp_path)
    assert [t.argvs[0][t.argvs[0].index("--algo") + 1] for t in trials] == ["darts", "gdas"]
    assert all("--algo" not in t.argvs[1] for t in trials)
    validate(spec, trials)
    with pytest.raises(NasforgeError, match="grid key 'bogus' is an option of none"):
        plan(make_spec(["search", "--then", "train", "--genotype", "{prev}"],
                       grid=["bogus=1,2"]), tmp_path)


def test_shipped_sweep_configs_plan_and_validate(tmp_path):
    names = sweep_config_names()
    assert {"t3.2-algorithms-p1-5k", "t4.2-topk", "t4.3-btnas-lambda",
            "t5.3-autosnn-lambda"} <= set(names)
    for name in names:
        spec = make_spec([], sweep_config=name, variables=["entropy=e.txt", "supernet=sn"])
        trials = plan(spec, tmp_path / name)
        validate(spec, trials)
        assert trials and all(len(t.argvs) == len(spec.steps) for t in trials)
    spec = make_spec(["--set", "search.epochs=1"], sweep_config="t4.3-btnas-lambda",
                     grid=["search.k=14"], seeds=1)
    trials = plan(spec, tmp_path / "t43")
    assert len(trials) == 3 and all("search.epochs=1" in t.argvs[0] for t in trials)
    assert shlex.join(trials[0].argvs[0]).count("search.k=14") == 1


def test_metrics_are_flattened_and_picked():
    metrics = flatten_metrics({"val_acc": 90.0, "cost": {"seconds": 2, "proxy": None},
                               "searches": [{"acc": 50.0, "arch": "x"}], "ok": True})
    assert metrics == {"val_acc": 90.0, "cost.seconds": 2, "searches.0.acc": 50.0}
    one = make_spec(["snn", "search", "--supernet", "sn"])
    assert pick_metric(one, [{"trial": "t", "searches.0.acc": 1.0, "seconds": 2}]) \
        == "searches.0.acc"
    two = make_spec(["search", "--then", "train", "--genotype", "{prev}"])
    row = {"search/val_acc": 1.0, "train/test_acc": 2.0, "train/seconds": 3.0}
    assert pick_metric(two, [row]) == "train/test_acc"


def test_plot_numeric_grid_with_lines_per_other_key(tmp_path):
    from nasforge.analysis.sweep_plot import plot_sweep, sweep_series

    rows = [{"search.kl_weight": lam, "search.k": k, "seed": s, "status": "done",
             "test_acc": 90 + k / 10 + s}
            for lam in ("0.01", "0.001", "0.0001") for k in (10, 14) for s in (0, 1)]
    rows.append({"search.kl_weight": "0.01", "search.k": 10, "seed": 2, "status": "failed",
                 "test_acc": None})
    xs, lines = sweep_series(rows, ["search.kl_weight", "search.k"], "test_acc")
    assert xs == ["0.01", "0.001", "0.0001"]
    assert set(lines) == {"search.k=10", "search.k=14"}
    assert lines["search.k=10"][0] == ("0.01", 91.5, pytest.approx(0.7071, abs=1e-3), 2)
    path = plot_sweep(rows, ["search.kl_weight", "search.k"], "test_acc", tmp_path / "s.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
