"""Re-running an accumulating command into a finished folder (issue 14, item 3).

``study proxy``, ``study algorithms``, ``quality``, ``snn quality``, ``snn search`` and
``sweep`` keep what an earlier call into the same ``--out`` finished. A call whose settings
differ must not reuse those rows while recording the new settings: it is refused in one line
naming the differing settings (exit 2, nothing changed), or with ``--force`` the rows are
recomputed. Plan lists (seeds, sizes, samples, λ) and run options may change. The costly
inner runs are replaced by stubs that record what they were asked to compute.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SEARCH
from conftest import assert_refused as _refused
from nasforge.cli import main
from nasforge.config import load_config, save_config
from nasforge.errors import NasforgeError


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- study proxy


@pytest.fixture
def fake_search(monkeypatch) -> list[tuple[str, int, int]]:
    """``run_search`` replaced: writes config.yaml and a results.json whose cell and
    examples_seen depend on search.epochs, and records (run, epochs, seed)."""
    import nasforge.search.loop
    from nasforge.benchmarks.tabular import cell_key, enumerate_cells

    keys = [cell_key(c) for c in enumerate_cells()[:10]]
    calls: list[tuple[str, int, int]] = []

    def run_search(cfg, out, *, resume=False, force=False):
        out = Path(out)
        assert force or not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        calls.append((out.name, cfg.search.epochs, cfg.run.seed))
        result = {"stage": "search", "genotype": keys[cfg.search.epochs],
                  "cost": {"seconds": 0.5, "examples_seen": 1000 * cfg.search.epochs}}
        (out / "results.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(nasforge.search.loop, "run_search", run_search)
    return calls


@pytest.fixture
def entropy_list(tmp_path) -> Path:
    from nasforge.data import load_dataset
    from nasforge.proxy.entropy import write_entropy_list

    labels = load_dataset("digits").train.y
    values = np.random.default_rng(0).uniform(0.01, 2.0, len(labels))
    return write_entropy_list(tmp_path / "entropy.tsv", values, labels)


def _study_sets(entropy: Path, epochs: int = 1, seeds: str = "[0]") -> list[str]:
    return [*TINY_SEARCH, "search.space=tabular-digits", f"search.epochs={epochs}",
            "study.methods=[p1]", "study.sizes=[64]", f"study.seeds={seeds}",
            "study.algos=[darts]", f"proxy.entropy={entropy}"]


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_study_proxy_rerun_with_other_settings_is_refused(tmp_path, fake_search, entropy_list,
                                                          capsys):
    from nasforge.studies.proxy_data import run_proxy_study

    out = tmp_path / "study"
    cfg = load_config("study-proxy-digits", _study_sets(entropy_list))
    rows = run_proxy_study(cfg, out, progress=False)
    assert sorted(fake_search) == [("darts-full-1-s0", 1, 0), ("darts-p1-64-s0", 1, 0)]
    assert [int(r["examples_seen"]) for r in rows] == [1000, 1000]
    run_proxy_study(cfg, out, progress=False)  # the same settings: every run reused
    assert len(fake_search) == 2
    before = _snapshot(out)

    # the case: a new search.epochs reused every run and recorded the new value
    base = ["study", "proxy", "--out", str(out), "--config", "study-proxy-digits"]

    def sets(epochs: int) -> list[str]:
        return [x for s in _study_sets(entropy_list, epochs=epochs) for x in ("--set", s)]

    argv = [*base, *sets(3)]
    _refused(capsys, argv, f"{out} holds a proxy study made with other settings "
             "(search.epochs 1 -> 3)", "use a new --out, or --force to recompute them")
    assert len(fake_search) == 2 and _snapshot(out) == before  # nothing reused or written

    # run options may differ
    assert main([*base, *sets(1), "--device", "cpu", "--no-progress"]) == 0
    assert len(fake_search) == 2

    # --force recomputes every row under the new settings
    capsys.readouterr()
    assert main([*argv, "--force"]) == 0
    assert sorted(fake_search[2:]) == [("darts-full-1-s0", 3, 0), ("darts-p1-64-s0", 3, 0)]
    assert [int(r["examples_seen"]) for r in _csv(out / "results.csv")] == [3000, 3000]
    saved = json.loads((out / "config.json").read_text())
    assert saved["search"]["epochs"] == 3


def test_study_proxy_plan_may_grow_and_stale_runs_are_caught(tmp_path, fake_search,
                                                             entropy_list):
    from nasforge.studies.proxy_data import run_proxy_study

    out = tmp_path / "study"
    run_proxy_study(load_config("study-proxy-digits", _study_sets(entropy_list)), out,
                    progress=False)
    # another seed: the finished seed-0 runs are kept, only seed 1 is searched
    grown = load_config("study-proxy-digits", _study_sets(entropy_list, seeds="[0,1]"))
    rows = run_proxy_study(grown, out, progress=False)
    assert sorted(fake_search[2:]) == [("darts-full-1-s1", 1, 1), ("darts-p1-64-s1", 1, 1)]
    assert len(rows) == 4
    # a --force call killed after saving the new config: the runs still hold the old
    # settings and are caught one by one
    new = load_config("study-proxy-digits", _study_sets(entropy_list, epochs=2))
    from nasforge.config import config_to_dict

    (out / "config.json").write_text(json.dumps(config_to_dict(new)))
    with pytest.raises(NasforgeError, match=r"\(run darts-full-1-s0\) made with other "
                       r"settings \(search.epochs 1 -> 2\)"):
        run_proxy_study(new, out, progress=False)
    assert len(fake_search) == 4
    # a corrupt results.json is searched again, not read
    (out / "config.json").write_text(json.dumps(config_to_dict(grown)))
    (out / "runs" / "darts-p1-64-s1" / "results.json").write_text('{"genotype": ')
    run_proxy_study(grown, out, progress=False)
    assert fake_search[4:] == [("darts-p1-64-s1", 1, 1)]


def test_study_proxy_force_reselects_proxies_after_a_selection_change(tmp_path, fake_search,
                                                                      entropy_list):
    from nasforge.data import read_index_file
    from nasforge.studies.proxy_data import run_proxy_study

    out = tmp_path / "study"
    run_proxy_study(load_config("study-proxy-digits", _study_sets(entropy_list)), out,
                    progress=False)
    index = out / "proxies" / "p1-64-s0.txt"
    first = read_index_file(index, 1258)
    other = load_config("study-proxy-digits", [*_study_sets(entropy_list),
                                               "proxy.bin_width=0.05"])
    with pytest.raises(NasforgeError, match=r"proxy.bin_width None -> 0.05"):
        run_proxy_study(other, out, progress=False)
    run_proxy_study(other, out, progress=False, force=True)
    # the index file was selected again with the new bin width; only the proxy run and
    # ... the full-data run too, since its config records proxy.bin_width
    assert not np.array_equal(np.asarray(first), np.asarray(read_index_file(index, 1258)))
    assert sorted(f[0] for f in fake_search[2:]) == ["darts-full-1-s0", "darts-p1-64-s0"]


def test_study_algorithms_rerun_with_other_settings_is_refused(tmp_path, fake_search,
                                                               entropy_list, capsys):
    out = tmp_path / "zoo"
    sets = [x for s in _study_sets(entropy_list) for x in ("--set", s)]
    assert main(["study", "algorithms", "--out", str(out), "--algos", "darts", *sets]) == 0
    assert len(fake_search) == 2
    before = _snapshot(out)
    capsys.readouterr()
    _refused(capsys, ["study", "algorithms", "--out", str(out), "--algos", "darts", *sets,
                      "--set", "search.w_lr=0.1"],
             "holds a proxy study made with other settings (search.w_lr 0.025 -> 0.1)",
             "--force")
    assert _snapshot(out) == before and len(fake_search) == 2
    assert main(["study", "algorithms", "--out", str(out), "--algos", "darts", *sets,
                 "--set", "search.w_lr=0.1", "--force"]) == 0
    assert len(fake_search) == 4


# --------------------------------------------------------------------------- quality


def test_quality_rerun_with_another_protocol_is_refused_or_recomputed(tmp_path, monkeypatch,
                                                                      capsys):
    import nasforge.quality

    trained: list[tuple[str, int, int]] = []

    def train_pair(genotype, protocol, *, on_epoch=None):
        trained.append((nasforge.quality.format_genotype(genotype), protocol.cfg.train.epochs,
                        protocol.cfg.run.seed))
        return {"params": 1, "test_acc": 10.0 * protocol.cfg.train.epochs, "val_acc": None,
                "seconds": 0.0}

    monkeypatch.setattr(nasforge.quality, "train_pair", train_pair)
    monkeypatch.setattr(nasforge.quality, "build_protocol",
                        lambda cfg: nasforge.quality.QualityProtocol(cfg, *[None] * 7))
    out = tmp_path / "q"
    argv = ["quality", "--out", str(out), "--spaces", "darts", "--samples", "2",
            "--set", "train.epochs=1", "--no-progress"]
    assert main(argv) == 0 and len(trained) == 2
    before = _snapshot(out)
    capsys.readouterr()
    _refused(capsys, [*argv, "--set", "train.epochs=4"],
             "holds a quality study with a different config (train.epochs 1 -> 4)",
             "use a new --out, or --force to recompute them")
    assert _snapshot(out) == before and len(trained) == 2
    assert main([*argv, "--samples", "3"]) == 0  # a larger plan keeps the finished rows
    assert len(trained) == 3
    assert main([*argv, "--set", "train.epochs=4", "--force"]) == 0
    assert [t[1] for t in trained[3:]] == [4, 4]  # every row trained again
    rows = _csv(out / "results.csv")  # the third sample's old row is gone with the others
    assert [float(r["test_acc"]) for r in rows] == [40.0, 40.0]


# --------------------------------------------------------------------------- snn quality


@pytest.fixture
def fake_snn_train(monkeypatch) -> list[tuple[str, str, int]]:
    import nasforge.snn.quality

    calls: list[tuple[str, str, int]] = []

    def run_snn_train(cfg, out, *, resume=False, force=False):
        out = Path(out)
        assert force or not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        calls.append(("train", f"{out.parent.name}/{out.name}", cfg.snn.epochs))
        result = {"test_acc": float(cfg.snn.epochs), "spikes": 1.0, "params_m": 0.1,
                  "arch": cfg.snn.arch}
        (out / "results.json").write_text(json.dumps(result))
        return result

    def resume_snn_train(run_dir, overrides=()):
        from nasforge.runtime import load_run_config

        calls.append(("resume", f"{Path(run_dir).parent.name}/{Path(run_dir).name}", 0))
        return run_snn_train(load_run_config(run_dir), run_dir, force=True)

    monkeypatch.setattr(nasforge.snn.quality, "run_snn_train", run_snn_train)
    monkeypatch.setattr(nasforge.snn.quality, "resume_snn_train", resume_snn_train)
    return calls


def test_snn_quality_rerun_with_other_settings_is_refused(tmp_path, fake_snn_train, capsys):
    out = tmp_path / "sq"
    argv = ["snn", "quality", "--out", str(out), "--samples", "2", "--variants", "default",
            "--no-progress", "--epochs", "1"]
    assert main(argv) == 0
    assert [c[:2] for c in fake_snn_train] == [("train", "default/000"),
                                               ("train", "default/001")]
    before = _snapshot(out)
    capsys.readouterr()
    _refused(capsys, [*argv[:-2], "--epochs", "5"],
             "holds an snn quality study (run default/000) made with other settings "
             "(snn.epochs 1 -> 5)", "--force to recompute them")
    _refused(capsys, [*argv, "--seed", "9"], "snn.arch", "run.seed 2 -> 9")  # other draws
    assert _snapshot(out) == before and len(fake_snn_train) == 2
    assert main([*argv[:5], "3", *argv[6:]]) == 0  # one more sample: only it is trained
    assert fake_snn_train[2:] == [("train", "default/002", 1)]
    # a killed run (config, no results) of the same settings is resumed; a corrupt
    # results.json is not read
    (out / "runs" / "default" / "001" / "results.json").unlink()
    (out / "runs" / "default" / "002" / "results.json").write_text("{")
    assert main([*argv[:5], "3", *argv[6:]]) == 0
    assert [c[:2] for c in fake_snn_train[3:]] == [
        ("resume", "default/001"), ("train", "default/001"),
        ("resume", "default/002"), ("train", "default/002")]
    del fake_snn_train[:]
    assert main([*argv[:-2], "--epochs", "5", "--force"]) == 0
    assert fake_snn_train == [("train", "default/000", 5), ("train", "default/001", 5)]
    with (out / "quality.csv").open() as fh:
        assert [float(r["test_acc"]) for r in csv.DictReader(fh)] == [5.0, 5.0]


# --------------------------------------------------------------------------- snn search


SNN_SEARCH = ["--set", "snn.rounds=1", "--set", "snn.pool=3", "--set", "snn.top_k=2",
              "--set", "snn.mutations=1", "--set", "snn.crossovers=1", "--no-progress"]


@pytest.fixture(scope="module")
def supernet(tmp_path_factory, one_thread) -> Path:
    from nasforge.snn.supernet import run_supernet

    out = tmp_path_factory.mktemp("rerun-supernet") / "sn"
    run_supernet(load_config(None, [
        "snn.channels=4", "snn.timesteps=2", "snn.epochs=1", "snn.batch_size=128",
        "snn.cutout=0", "snn.blocks=[SCB_k3,SRB_k3,skip]", "run.progress=false"]), out)
    return out


def test_snn_search_accumulates_lambdas_but_refuses_other_settings(supernet, tmp_path, capsys):
    out = tmp_path / "s"
    base = ["snn", "search", "--supernet", str(supernet), "--out", str(out), *SNN_SEARCH]
    assert main([*base, "--lam", "0"]) == 0
    assert main([*base, "--lam", "-0.1"]) == 0  # another λ: accumulated
    results = json.loads((out / "results.json").read_text())
    assert [r["lam"] for r in results["searches"]] == [0.0, -0.1]
    before = _snapshot(out)
    capsys.readouterr()
    _refused(capsys, [*base, "--lam", "-0.2", "--set", "snn.rounds=2"],
             f"{out} holds an snn search made with other settings (snn.rounds 1 -> 2)",
             "use a new --out, or --force")
    _refused(capsys, [*base, "--algo", "random"], "snn.search_algo 'evolution' -> 'random'")
    _refused(capsys, [*base, "--seed", "5"], "run.seed 2 -> 5")
    assert _snapshot(out) == before  # no row of the old settings mixed with new ones
    assert main([*base, "--lam", "-0.2", "--set", "snn.rounds=2", "--force"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["lam"] for r in results["searches"]] == [-0.2]  # started again


def test_snn_search_refuses_another_supernet(supernet, tmp_path):
    import shutil

    from nasforge.snn.search import run_snn_search

    other = tmp_path / "sn2"
    shutil.copytree(supernet, other)
    sets = [s for s in SNN_SEARCH if s.startswith("snn.")] + ["snn.lams=[0]"]
    run_snn_search(supernet, tmp_path / "s", sets)
    with pytest.raises(NasforgeError, match=r"made with other settings \(supernet .*sn -> "
                       r".*sn2\)"):
        run_snn_search(other, tmp_path / "s", sets)


# --------------------------------------------------------------------------- sweep


def test_sweep_rerun_refuses_a_trial_of_other_grid_values(tmp_path, monkeypatch, capsys):
    """search.epochs=1 and train.epochs=1 both make the trial `epochs=1_seed=0`: a re-run
    with the other key must not count the finished trial as its own."""
    import nasforge.sweep

    ran: list[str] = []

    def run_trials(spec, trials, out, *, address, progress, on_result):
        for trial in trials:
            ran.append(trial.name)
            trial_dir = out / trial.name
            for step in spec.steps:
                (trial_dir / step.name).mkdir(parents=True, exist_ok=True)
                (trial_dir / step.name / step.results_file).write_text('{"test_acc": 1.0}')
            record = {"name": trial.name, "status": "done", "error": "", "seconds": 0.1}
            (trial_dir / "trial.json").write_text(json.dumps(record))
            on_result(trial, record)

    monkeypatch.setattr(nasforge.sweep, "run_trials", run_trials)
    monkeypatch.setattr(nasforge.sweep, "plot_sweep", lambda *a, **k: None, raising=False)
    out = tmp_path / "sw"
    argv = ["sweep", "train", "--genotype", "DARTS_V2", "--out", str(out)]
    assert main([*argv, "--grid", "search.epochs=1"]) == 0
    assert ran == ["epochs=1_seed=0"]
    assert main([*argv, "--grid", "search.epochs=1,2", "--seeds", "2"]) == 0  # more: kept
    assert ran[1:] == ["epochs=1_seed=1", "epochs=2_seed=0", "epochs=2_seed=1"]
    before = _snapshot(out)
    capsys.readouterr()
    _refused(capsys, [*argv, "--grid", "train.epochs=1"],
             "holds trial epochs=1_seed=0 of other grid values ({'search.epochs': '1'}",
             "now {'train.epochs': '1'}", "give another --out")
    assert len(ran) == 4 and _snapshot(out) == before



def test_study_proxy_rescores_finished_runs_on_another_table(tmp_path, fake_search,
                                                             entropy_list):
    """A new study.bench keeps every finished search and looks each found cell up again:
    a table whose accuracies are all +1 point gives rows exactly 1 point higher."""
    import gzip

    from nasforge.benchmarks.tabular import DATA_DIR
    from nasforge.studies.proxy_data import run_proxy_study

    with gzip.open(DATA_DIR / "tabular_digits.json.gz", "rt") as fh:
        table = json.load(fh)
    for record in table["records"].values():
        record["test_acc"] = [a + 1.0 for a in record["test_acc"]]
    shifted = tmp_path / "shifted.json.gz"
    with gzip.open(shifted, "wt") as fh:
        json.dump(table, fh)
    out = tmp_path / "study"
    first = run_proxy_study(load_config("study-proxy-digits", _study_sets(entropy_list)), out,
                            progress=False)
    again = run_proxy_study(load_config("study-proxy-digits", [*_study_sets(entropy_list),
                                                               f"study.bench={shifted}"]),
                            out, progress=False)
    assert len(fake_search) == 2  # nothing searched again
    assert [r["genotype"] for r in again] == [r["genotype"] for r in first]
    assert [r["test_acc"] for r in again] == pytest.approx([r["test_acc"] + 1 for r in first])
    assert [float(r["test_acc"]) for r in _csv(out / "results.csv")] == pytest.approx(
        [r["test_acc"] for r in again])
