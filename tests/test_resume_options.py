"""`--resume` refuses the options it cannot honour (issue 14, item 4).

A resumed run continues with its saved config; an option that would change a saved setting
(``--algo``, ``--genotype``, ``--arch``, the ``snn`` shortcuts, ``--config``, ...) or start
the run again (``--out`` elsewhere, ``--force``) is refused in one line naming it, exit 2,
before anything is read or written; repeating the saved value is fine. The resume
functions are replaced by stubs, so no test trains anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, TINY_TRAIN
from conftest import assert_refused as _refused
from nasforge.cli import main
from nasforge.config import load_config, save_config
from nasforge.spaces.darts.genotype import format_genotype, load_genotype

ARCH = "SCB_k3,SRB_k3,skip,SRB_k3,SCB_k3"
SNN = ["snn.channels=4", "snn.timesteps=2", "snn.epochs=1", "run.progress=false"]


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str, list[str]]]:
    """Replace every resume function; each call is recorded instead of run."""
    import nasforge.proxy.scoring
    import nasforge.search.loop
    import nasforge.snn.search
    import nasforge.snn.supernet
    import nasforge.snn.train
    import nasforge.train

    seen: list[tuple[str, str, list[str]]] = []

    def stub(name: str, result: dict):
        def resume(run_dir, overrides=()):
            seen.append((name, str(run_dir), list(overrides)))
            return result
        return resume

    search = {"genotype": "G"}
    train = {"test_acc": 1.0, "params_m": 0.1}
    snn = {"label": "x", "test_acc": 1.0, "spikes": None, "params_m": 0.1}
    monkeypatch.setattr(nasforge.search.loop, "resume_search", stub("search", search))
    monkeypatch.setattr(nasforge.train, "resume_train", stub("train", train))
    monkeypatch.setattr(nasforge.snn.train, "resume_snn_train", stub("snn train", snn))
    monkeypatch.setattr(nasforge.snn.supernet, "resume_supernet", stub(
        "snn supernet", {"n_avg": None, "val_acc_random_path": 1.0}))
    monkeypatch.setattr(nasforge.snn.search, "resume_snn_search", stub(
        "snn search", {"searches": []}))
    monkeypatch.setattr(nasforge.proxy.scoring, "resume_entropy", stub(
        "entropy", {"examples": 1, "model": "m", "test_acc": 1.0}))
    return seen


def _run(root: Path, name: str, sets: list[str], config: str | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    save_config(load_config(config, sets), run / "config.yaml")
    return run


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    """Saved configs of a search, a training, an SNN super-network and an SNN training."""
    search = _run(tmp_path, "search", [*TINY_SEARCH, "search.algo=darts", "search.k=4"],
                  config="darts-digits")
    train = _run(tmp_path, "train", TINY_TRAIN)
    (train / "genotype.txt").write_text(format_genotype(load_genotype("DARTS_V2")) + "\n")
    supernet = _run(tmp_path, "supernet", SNN)
    snn_train = _run(tmp_path, "snn_train", [*SNN, f"snn.arch={ARCH}"])
    entropy = tmp_path / "ent.tsv"
    _run(tmp_path, "ent.tsv.run", ["entropy.model=resnet20"])
    return {"search": search, "train": train, "supernet": supernet, "snn_train": snn_train,
            "entropy": entropy}


SEARCH_REFUSED = [
    (["--algo", "gdas"], "--algo (search.algo 'darts' -> 'gdas')"),
    (["--space", "s2"], "--space (search.space 'darts' -> 's2')"),
    (["--proxy", "p.txt"], "--proxy (data.proxy None -> 'p.txt')"),
    (["--proxy-method", "p1"], "--proxy-method (proxy.method None -> 'p1')"),
    (["--proxy-size", "0.5"], "--proxy-size (proxy.size 0.1 -> 0.5)"),
    (["--proxy-entropy", "e.tsv"], "--proxy-entropy"),
    (["--derive", "topk"], "--derive (search.rule 'argmax' -> 'topk')"),
    (["--k", "6"], "--k (search.k 4 -> 6)"),
    (["--act-all"], "--act-all (search.act_all False -> True)"),
    (["--threshold", "0.5"], "--threshold"),
    (["--seed", "7"], "--seed (run.seed 2 -> 7)"),
    (["--dataset", "cifar10"], "--dataset (data.dataset 'digits' -> 'cifar10')"),
    (["--config", "btnas-digits"], "--config btnas-digits (", "search.algo 'darts' -> 'btnas'"),
    (["--out", "elsewhere"], "--out elsewhere (the run continues in"),
    (["--force"], "--force (it would start the run again)"),
]


@pytest.mark.parametrize("extra", SEARCH_REFUSED, ids=lambda e: e[0][0])
def test_search_resume_refuses_what_it_cannot_honour(runs, calls, capsys, extra):
    options, *needles = extra
    run = runs["search"]
    before = (run / "config.yaml").read_bytes()
    _refused(capsys, ["search", "--resume", str(run), *options],
             f"--resume continues {run} with its saved settings", *needles,
             "start a new run with another --out")
    assert calls == []  # nothing resumed
    assert (run / "config.yaml").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_several_refused_options_are_named_together(runs, calls, capsys):
    err = _refused(capsys, ["search", "--resume", str(runs["search"]), "--algo", "gdas",
                            "--seed", "3", "--force"], "--algo", "--seed", "--force",
                   "drop them")
    assert err.index("--force") < err.index("--algo")  # the flags first, then settings
    assert calls == []


def test_search_resume_accepts_the_saved_values_and_run_options(runs, calls, capsys):
    run = runs["search"]
    argv = ["search", "--resume", str(run), "--algo", "darts", "--space", "darts", "--k", "4",
            "--seed", "2", "--dataset", "digits", "--out", str(run), "--device", "cpu",
            "--no-progress", "--config", "darts-digits", *[
                x for s in TINY_SEARCH for x in ("--set", s)], "--set", "search.k=4",
            "--set", "search.w_lr=0.01"]
    assert main(argv) == 0, capsys.readouterr().err
    ((name, where, overrides),) = calls
    assert (name, where) == ("search", str(run))
    assert "search.w_lr=0.01" in overrides and "run.device=cpu" in overrides


def test_train_resume_refuses_another_genotype(runs, calls, capsys):
    run = runs["train"]
    _refused(capsys, ["train", "--resume", str(run), "--genotype", "DARTS_V1"],
             "--genotype (the run trains the genotype in", "genotype.txt")
    _refused(capsys, ["train", "--resume", str(run), "--out", str(run.parent / "x")],
             "--out")
    assert calls == []
    assert main(["train", "--resume", str(run), "--genotype", "DARTS_V2"]) == 0  # the same
    assert [c[0] for c in calls] == ["train"]


@pytest.mark.parametrize("extra", [
    (["--channels", "8"], "--channels (snn.channels 4 -> 8)"),
    (["--timesteps", "4"], "--timesteps (snn.timesteps 2 -> 4)"),
    (["--epochs", "3"], "--epochs (snn.epochs 1 -> 3)"),
    (["--variant", "v2"], "--variant (snn.variant None -> 'v2')"),
    (["--space", "v2-8tbd"], "--space (snn.space 'default' -> 'v2-8tbd')"),
    (["--neuron", "relu"], "--neuron (snn.neuron 'plif' -> 'relu')"),
    (["--loss", "ce"], "--loss (snn.loss 'mse' -> 'ce')"),
    (["--force"], "--force"),
], ids=lambda e: e[0][0])
def test_snn_supernet_resume_refuses_its_shortcuts(runs, calls, capsys, extra):
    options, needle = extra
    _refused(capsys, ["snn", "supernet", "--resume", str(runs["supernet"]), *options], needle)
    assert calls == []


def test_snn_train_resume_refuses_another_arch_or_model(runs, calls, capsys):
    run = runs["snn_train"]
    other = "SRB_k3,SRB_k3,skip,SRB_k3,SCB_k3"
    _refused(capsys, ["snn", "train", "--resume", str(run), "--arch", other],
             f"--arch (snn.arch {ARCH!r} -> {other!r})")
    _refused(capsys, ["snn", "train", "--resume", str(run), "--model", "cifarnet-wu"],
             "--model (snn.model None -> 'cifarnet-wu')")
    _refused(capsys, ["snn", "train", "--resume", str(run), "--lam", "0"], "--lam")
    _refused(capsys, ["snn", "train", "--resume", str(run), "--channels", "16"], "--channels")
    search = run.parent / "search_dir"  # --arch SEARCH_DIR: its top-1 is compared
    search.mkdir()
    (search / "results.json").write_text(json.dumps({"searches": [
        {"lam": -0.08, "arch": other}, {"lam": 0.0, "arch": ARCH}]}))
    _refused(capsys, ["snn", "train", "--resume", str(run), "--arch", str(search)], "--arch")
    assert calls == []
    assert main(["snn", "train", "--resume", str(run), "--arch", str(search), "--lam",
                 "0"]) == 0
    assert main(["snn", "train", "--resume", str(run), "--arch", ARCH, "--channels", "4"]) == 0
    assert [c[0] for c in calls] == ["snn train", "snn train"]


def test_entropy_resume_refuses_another_model_or_config(runs, calls, capsys):
    out = str(runs["entropy"])
    _refused(capsys, ["entropy", "--out", out, "--resume", "--model", "resnet32"],
             "--model (entropy.model 'resnet20' -> 'resnet32')")
    _refused(capsys, ["entropy", "--out", out, "--resume", "--set", "entropy.epochs=1",
                      "--config", "entropy-cifar10"], "--config entropy-cifar10 (")
    _refused(capsys, ["entropy", "--out", out, "--resume", "--force"], "--force")
    assert calls == []
    assert main(["entropy", "--out", out, "--resume", "--model", "resnet20"]) == 0
    assert [c[0] for c in calls] == ["entropy"]


@pytest.mark.parametrize("options", [["--lam", "0"], ["--algo", "random"], ["--seed", "0"],
                                     ["--set", "snn.rounds=3"], ["--force"],
                                     ["--config", "autosnn-digits"]], ids=lambda o: o[0])
def test_snn_search_resume_names_the_option(tmp_path, calls, capsys, options):
    _refused(capsys, ["snn", "search", "--resume", str(tmp_path), *options],
             f"cannot honour {options[0]}; drop it")
    assert calls == []


def test_check_resume_options_directly(runs):
    """The runtime check: the same value passes, another fails, run options are free."""
    from nasforge.errors import NasforgeError
    from nasforge.runtime import check_resume_options

    run = runs["search"]
    check_resume_options(run, [("--algo", ["search.algo=darts"]),
                               ("--device", ["run.device=cpu"])])
    with pytest.raises(NasforgeError, match=r"cannot honour --epochs \(search.epochs 2 -> 5\)"):
        check_resume_options(run, [("--epochs", ["search.epochs=5"])])
