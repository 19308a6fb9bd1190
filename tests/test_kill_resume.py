"""Runs killed with SIGKILL resume to exactly what an uninterrupted run gives (issue 8).

Every killed run is a real ``nasforge`` subprocess; ``--resume`` (or re-running, for
``snn search``) continues it, and the final genotype / architecture / metrics / logs /
checkpoint tensors must equal those of an uninterrupted run with the same seed, wall-clock
fields aside. Kill points: mid-epoch (the test polls for the first checkpoint, then kills),
and deterministic ones through the test hook ``NASFORGE_TEST_KILL_AT`` (nasforge.checkpoint):
halfway through a checkpoint's temporary file, between the proxy and search stages, in the
middle of an evolutionary round. Also: a truncated latest checkpoint (fallback to ``.prev``),
the NaN guard, and a sweep that resumes a killed step.

The references run in this process on one thread; the subprocesses get OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, TINY_TRAIN, assert_same_state
from nasforge.checkpoint import KILL_ENV, load_checkpoint
from nasforge.config import load_config
from nasforge.runtime import read_csv

KILLED = -signal.SIGKILL
WALL_CLOCK = {"seconds", "elapsed"}
PER_PROCESS = {"evaluate_calls"}  # snn search: calls made by this process (replays excluded)
# The real CLI, with the tests' ResNet-8 auxiliary model registered (as tests/proxy do).
LAUNCH = ("import sys\n"
          "from nasforge.proxy.models import AUX_MODELS, cifar_resnet\n"
          "AUX_MODELS._entries.setdefault('resnet8', lambda k, c: cifar_resnet(8, k, c))\n"
          "from nasforge.cli import main\n"
          "sys.exit(main(sys.argv[1:]))\n")

SNN = ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64", "snn.crop_pad=0",
       "snn.flip=false", "snn.cutout=0", "run.progress=false"]
SNN_SEARCH = ["snn.rounds=3", "snn.pool=4", "snn.top_k=2", "snn.mutations=2",
              "snn.crossovers=1", "snn.blocks=[SCB_k3,SRB_k3,skip]", "snn.lams=[-0.08]",
              "run.progress=false"]
ENTROPY = ["entropy.model=resnet8", "entropy.epochs=3", "entropy.milestones=[2,3]",
           "entropy.crop_pad=1", "run.progress=false"]


# --------------------------------------------------------------------------- processes

def _argv(args) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *(str(a) for a in args)]


def _env(kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if kill_at:
        env[KILL_ENV] = kill_at
    return env


def nasforge(*args, kill_at: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
    """Run the CLI; ``kill_at`` sets the test hook; the exit status must be ``code``."""
    res = subprocess.run(_argv(args), env=_env(kill_at), capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == code, f"{args}: exit {res.returncode}\n{res.stderr[-3000:]}"
    return res


def kill_when(args, ready, tmp_path: Path, *, delay: float = 0.0) -> None:
    """Start the CLI, SIGKILL it once ``ready()`` (plus ``delay`` seconds), check it died."""
    with (tmp_path / "killed.err").open("w") as err:
        proc = subprocess.Popen(_argv(args), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err)
        try:
            deadline = time.monotonic() + 600
            while not ready():
                assert proc.poll() is None, "the run ended before it could be killed: " + \
                    (tmp_path / "killed.err").read_text()[-2000:]
                assert time.monotonic() < deadline, "the run never got ready to be killed"
                time.sleep(0.005)
            time.sleep(delay)
        finally:
            if proc.poll() is None:
                proc.kill()  # SIGKILL, to this process only
            proc.wait(timeout=60)
    assert proc.returncode == KILLED, (tmp_path / "killed.err").read_text()[-2000:]


def sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


# --------------------------------------------------------------------------- comparisons

def _clean(obj, run: Path):
    if isinstance(obj, dict):
        return {k: _clean(v, run) for k, v in obj.items() if k not in WALL_CLOCK | PER_PROCESS}
    if isinstance(obj, list):
        return [_clean(v, run) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(run.resolve()), "RUN").replace(str(run), "RUN")
    return obj


def same_json(a: Path, b: Path, name: str, roots: tuple[Path, Path] | None = None) -> None:
    """``roots``: the run directories whose paths the files may name (default a and b)."""
    ra, rb = roots or (a, b)
    assert _clean(json.loads((a / name).read_text()), ra) == \
        _clean(json.loads((b / name).read_text()), rb), name


def same_csv(a: Path, b: Path, name: str) -> None:
    def rows(run: Path) -> list[dict]:
        with (run / name).open(newline="") as fh:
            return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
                    for r in csv.DictReader(fh)]
    assert rows(a) == rows(b), name


def same_bytes(a: Path, b: Path, *names: str) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def same_checkpoint(a: Path, b: Path, name: str = "checkpoint.pt") -> None:
    assert_same_state(load_checkpoint(a / name), load_checkpoint(b / name), name,
                      lambda key: key in WALL_CLOCK)


def same_search(a: Path, b: Path) -> None:
    same_bytes(a, b, "genotype.txt", "strengths.json", "strengths.jsonl")
    same_json(a, b, "results.json")
    same_csv(a, b, "search_log.csv")
    same_checkpoint(a, b)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fixtures

def search_sets(work: Path) -> list[str]:
    """SDARTS-RS: its perturbations come from the global RNG, whose saved state is checked."""
    return [*TINY_SEARCH, f"data.proxy={work / 'proxy64.txt'}", "search.epochs=4",
            "search.algo=sdarts-rs"]


@pytest.fixture(scope="module")
def reference_search(work) -> Path:
    from nasforge.search.loop import run_search

    run_search(load_config(None, search_sets(work)), work / "ref-search")
    return work / "ref-search"


@pytest.fixture(scope="module")
def killed_in_write(work) -> Path:
    """A search SIGKILLed halfway through writing its 2nd checkpoint (epoch 1's)."""
    run = work / "killed-in-write"
    nasforge("search", "--out", run, *sets(search_sets(work)),
             kill_at="checkpoint-write:2", code=KILLED)
    return run


# --------------------------------------------------------------------------- search

def test_search_killed_mid_epoch_resumes_exactly(work, reference_search, tmp_path):
    run = tmp_path / "run"
    kill_when(["search", "--out", run, *sets(search_sets(work))],
              lambda: (run / "checkpoint.pt").exists(), tmp_path, delay=0.05)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] < 3  # killed before the end
    nasforge("search", "--resume", run)
    same_search(run, reference_search)


def test_search_killed_during_a_checkpoint_write_resumes_exactly(killed_in_write,
                                                                 reference_search, tmp_path):
    run = shutil.copytree(killed_in_write, tmp_path / "run")
    assert [p.name for p in run.glob(".checkpoint.pt.*.tmp")]  # the half-written file
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 0
    assert len(read_csv(run / "search_log.csv")) == 2  # epoch 1 was logged, not saved
    nasforge("search", "--resume", run)
    assert not list(run.glob(".*.tmp"))
    same_search(run, reference_search)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(work, reference_search,
                                                                     tmp_path):
    run = tmp_path / "run"
    nasforge("search", "--out", run, *sets(search_sets(work)), kill_at="checkpoint-write:3",
             code=KILLED)
    latest = run / "checkpoint.pt"
    assert load_checkpoint(latest)["epoch"] == 1
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    res = nasforge("search", "--resume", run)
    warnings = [line for line in res.stderr.splitlines() if line.startswith("nasforge: ")]
    assert len(warnings) == 1, res.stderr
    assert re.fullmatch(r"nasforge: warning: checkpoint \S+checkpoint\.pt is corrupt or "
                        r"truncated \(.+\), set aside as checkpoint\.pt\.corrupt; using the "
                        r"previous good one, checkpoint\.pt\.prev \(epoch 0\)", warnings[0])
    assert (run / "checkpoint.pt.corrupt").exists()
    same_search(run, reference_search)


def test_search_killed_in_and_between_the_proxy_and_search_stages(work, tmp_path):
    """--proxy-method: killed while scoring entropies (inside the auxiliary model's 2nd
    checkpoint write), resumed and killed again once the proxy is built, before the search
    has started; the last resume ends exactly like an uninterrupted run."""
    from nasforge.search.loop import run_search

    stage_sets = [*TINY_SEARCH, "search.epochs=2", "proxy.method=p1", "proxy.size=64",
                  *[s for s in ENTROPY if s != "entropy.epochs=3"], "entropy.epochs=2"]
    reference = tmp_path / "reference"
    run_search(load_config(None, stage_sets), reference)
    run = tmp_path / "run"
    argv = ["search", "--out", run, "--proxy-method", "p1", "--proxy-size", "64",
            *sets([s for s in stage_sets if not s.startswith("proxy.")])]
    nasforge(*argv, kill_at="checkpoint-write:2", code=KILLED)
    assert load_checkpoint(run / "entropy.tsv.run" / "checkpoint.pt")["epoch"] == 0
    assert not (run / "proxy.txt").exists()
    nasforge("search", "--resume", run, kill_at="proxy-built", code=KILLED)
    assert (run / "proxy.txt").exists() and not (run / "checkpoint.pt").exists()
    nasforge("search", "--resume", run)
    same_search(run, reference)
    same_bytes(run, reference, "entropy.tsv", "proxy.txt")
    same_json(run / "entropy.tsv.run", reference / "entropy.tsv.run", "results.json",
              roots=(run, reference))
    same_csv(run / "entropy.tsv.run", reference / "entropy.tsv.run", "train_log.csv")


# --------------------------------------------------------------------------- NaN guard

def test_a_nan_stops_with_one_line_keeps_the_checkpoint_and_resume_continues(
        killed_in_write, reference_search, tmp_path):
    run = shutil.copytree(killed_in_write, tmp_path / "run")
    saved = sha(run / "checkpoint.pt")
    res = nasforge("search", "--resume", run, "--set", "search.w_lr=1e30", code=2)
    line = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"nasforge: error: non-finite (loss|validation loss) at epoch 1( step \d+)? of "
        rf"{re.escape(str(run))}; last good checkpoint: {re.escape(str(run))}/checkpoint\.pt "
        rf"\(epoch 0\); resume with a lower learning rate: nasforge search --resume "
        rf"{re.escape(str(run))} --set search\.w_lr=1e\+29", line), line
    assert sha(run / "checkpoint.pt") == saved  # the NaN epoch saved nothing
    assert [r["epoch"] for r in read_csv(run / "search_log.csv")] == ["0"]
    nasforge("search", "--resume", run, "--set", "search.epochs=9", code=2)  # not an lr
    nasforge("search", "--resume", run, "--set", "search.w_lr=0.025")  # the way on
    same_search(run, reference_search)  # nothing of the NaN epoch was kept


# --------------------------------------------------------------------------- sweep

def test_a_sweep_resumes_a_killed_step_instead_of_restarting_it(work, killed_in_write,
                                                              reference_search, tmp_path):
    from nasforge.sweep import execute_trial

    trial = tmp_path / "trial"
    run = shutil.copytree(killed_in_write, trial / "search")
    record = execute_trial({
        "name": "trial", "dir": str(trial), "cwd": str(tmp_path), "threads": 1, "gpus": 0,
        "steps": [{"name": "search", "results_file": "results.json", "needs_force": True,
                   "command": ["search"],
                   "argv": ["search", *sets(search_sets(work)), "--out", str(run)]}]})
    assert record["status"] == "done", (trial / "trial.log").read_text()[-2000:]
    assert f"$ nasforge search --resume {run}" in (trial / "trial.log").read_text()
    same_search(run, reference_search)


# --------------------------------------------------------------------------- retraining

def test_train_killed_mid_epoch_resumes_exactly(work, tmp_path):
    """Drop-path draws from the global RNG (from epoch 1 on: its probability ramps up from
    0), so a kill in epoch 2 also checks the RNG state saved with epoch 1's checkpoint."""
    from nasforge.spaces.darts.genotype import load_genotype
    from nasforge.train import run_train

    train_sets = [*TINY_TRAIN, "train.epochs=3", "train.batch_size=128", "train.drop_path=0.3"]
    reference = tmp_path / "reference"
    run_train(load_config(None, train_sets), load_genotype("DARTS_V2"), reference)
    run = tmp_path / "run"
    kill_when(["train", "--genotype", "DARTS_V2", "--out", run, *sets(train_sets)],
              lambda: (run / "checkpoint.pt.prev").exists(), tmp_path, delay=0.3)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    nasforge("train", "--resume", run)
    same_json(run, reference, "results.json")
    same_csv(run, reference, "train_log.csv")
    same_bytes(run, reference, "genotype.txt")
    same_checkpoint(run, reference)
    same_checkpoint(run, reference, "model.pt")


# --------------------------------------------------------------------------- entropy

def test_entropy_scoring_killed_mid_epoch_resumes_exactly(work, tmp_path):
    from nasforge.proxy.scoring import score_entropy

    reference = tmp_path / "reference" / "digits.tsv"
    score_entropy(load_config(None, ENTROPY), reference)
    out = tmp_path / "run" / "digits.tsv"
    kill_when(["entropy", "--out", out, *sets(ENTROPY)],
              lambda: (tmp_path / "run" / "digits.tsv.run" / "checkpoint.pt").exists(),
              tmp_path, delay=0.05)
    assert not out.exists()
    nasforge("entropy", "--out", out, "--resume")
    same_bytes(out.parent, reference.parent, "digits.tsv")
    run, ref = out.parent / "digits.tsv.run", reference.parent / "digits.tsv.run"
    same_bytes(run, ref, "forgetting.tsv", "features.npy")
    same_json(run, ref, "results.json", roots=(out.parent, reference.parent))
    same_csv(run, ref, "train_log.csv")
    same_checkpoint(run, ref)
    same_checkpoint(run, ref, "model.pt")


# --------------------------------------------------------------------------- AutoSNN

@pytest.fixture(scope="module")
def reference_supernet(work) -> Path:
    from nasforge.snn.supernet import run_supernet

    run_supernet(load_config(None, [*SNN, f"data.proxy={work / 'proxy256.txt'}",
                                    "snn.epochs=3"]), work / "ref-supernet")
    return work / "ref-supernet"


def test_snn_supernet_killed_mid_run_resumes_exactly(work, reference_supernet, tmp_path):
    run = tmp_path / "run"
    nasforge("snn", "supernet", "--out", run,
             *sets([*SNN, f"data.proxy={work / 'proxy256.txt'}", "snn.epochs=3"]),
             kill_at="checkpoint-write:2", code=KILLED)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 0
    nasforge("snn", "supernet", "--resume", run)
    same_json(run, reference_supernet, "results.json")
    same_csv(run, reference_supernet, "supernet_log.csv")
    same_bytes(run, reference_supernet, "train.txt", "val.txt")
    same_checkpoint(run, reference_supernet)


def test_snn_search_killed_mid_round_resumes_exactly(reference_supernet, tmp_path):
    from nasforge.snn.search import run_snn_search

    reference = tmp_path / "reference"
    run_snn_search(reference_supernet, reference, SNN_SEARCH)
    run = tmp_path / "run"
    argv = ["snn", "search", "--supernet", reference_supernet, "--out", run, *sets(SNN_SEARCH)]
    nasforge(*argv, kill_at="snn-evaluate:6", code=KILLED)  # round 2's 2nd evaluation
    state = json.loads((run / "lam-0.08" / "state.json").read_text())
    assert state["round"] == 1
    nasforge("snn", "search", "--resume", run, "--lam", "0", code=2)  # settings are saved
    nasforge("snn", "search", "--resume", run)  # as re-running the same command would
    same_json(run, reference, "results.json")
    same_json(run / "lam-0.08", reference / "lam-0.08", "result.json")
    same_csv(run / "lam-0.08", reference / "lam-0.08", "history.csv")
    same_bytes(run / "lam-0.08", reference / "lam-0.08", "arch.txt")
