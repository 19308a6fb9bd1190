"""The stage skeleton (nasforge.skeleton) on a toy stage: a kill at any point resumes to exactly
the uninterrupted result, the NaN guard stops with the stage's hint and keeps the last good
checkpoint, checkpoints are written atomically, and the log holds one row per epoch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_same_state
from nasforge import runtime
from nasforge.checkpoint import KILL_ENV, load_checkpoint
from nasforge.distributed import DUMP_ENV, Dist
from nasforge.errors import NasforgeError, NumericalError
from nasforge.outputs import create_run_dir
from nasforge.skeleton import Epoch, EpochRun, Stage, run_stage

EPOCHS = 4
HINT = "nasforge toy --resume RUN --set toy.lr=0.01"


class Toy(Stage):
    """Three steps per epoch, each a draw from torch's global stream (so an exact resume
    needs the saved random state), a per-epoch history line, and an optional NaN."""

    kind = "toy"
    log_name = "toy_log.csv"
    desc = "toy"
    save_rng = True

    def __init__(self, out: Path, *, nan_at: int | None = None, crash_at: int | None = None,
                 rng: bool = True, replicas: bool = True) -> None:
        self.out, self.nan_at, self.crash_at = out, nan_at, crash_at
        self.save_rng = rng
        self.with_replicas = replicas
        self.w = torch.zeros(3)
        self.opened: list[tuple[int, bool]] = []

    def restore(self, state: dict, path: Path) -> None:
        if state.get("kind") != "toy":
            raise NasforgeError(f"{path} is not a checkpoint of a toy run")
        self.w = state["w"].clone()

    def replicas(self, start: int) -> dict | None:
        return {"w": self.w.clone(), "start": start} if self.with_replicas else None

    def open_files(self, start: int, resume: bool) -> None:
        self.opened.append((start, resume))
        history = self.out / "history.jsonl"
        if history.exists():
            kept = [ln for ln in history.read_text().splitlines()
                    if json.loads(ln)["epoch"] < start]
            history.write_text("".join(ln + "\n" for ln in kept))

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        if epoch == self.crash_at:
            raise RuntimeError("killed")  # a kill in the middle of the epoch
        for _ in range(3):
            self.w += torch.randn(3)
            run.tick()
        loss = float("nan") if epoch == self.nan_at else float(self.w.square().sum())
        run.check(loss)
        line = json.dumps({"epoch": epoch, "w": self.w.tolist()}) + "\n"
        return Epoch(row={"epoch": epoch, "loss": loss}, postfix={"loss": f"{loss:.3f}"},
                     append=(self.out / "history.jsonl", line))

    def checkpoint(self, epoch: int) -> dict:
        return {"w": self.w.clone()}

    def finish(self, elapsed: float) -> dict:
        return {"w": self.w.tolist(), "elapsed": elapsed}


def run_toy(out: Path, *, resume: bool = False, epochs: int = EPOCHS, **toy) -> dict:
    """What a stage's prepare does, then the skeleton: a fresh run directory, the seed."""
    if not resume:
        create_run_dir(out)
    runtime.seed_everything(0)
    return run_stage(Toy(out, **toy), dist=Dist(), run_dir=out, epochs=epochs, steps=3,
                     resume=resume, progress=False, resume_hint=HINT)


def rows(out: Path) -> list[dict]:
    with (out / "toy_log.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def assert_same_run(a: Path, b: Path) -> None:
    """Same log (wall-clock aside), history and checkpoint."""
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows(a)] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in rows(b)]
    assert (a / "history.jsonl").read_text() == (b / "history.jsonl").read_text()
    assert_same_state(load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt"),
                      "checkpoint", skip=lambda key: key == "elapsed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("toy") / "full"
    return out, run_toy(out)


def test_an_uninterrupted_run_logs_every_epoch_and_checkpoints_the_last(reference):
    out, results = reference
    log = rows(out)
    assert [r["epoch"] for r in log] == [str(e) for e in range(EPOCHS)]
    assert list(log[0]) == ["epoch", "loss", "seconds"]  # the skeleton appends seconds
    seconds = [float(r["seconds"]) for r in log]
    assert seconds == sorted(seconds) and results["elapsed"] == pytest.approx(seconds[-1])
    state = load_checkpoint(out / "checkpoint.pt")
    assert set(state) == {"kind", "epoch", "w", "rng", "elapsed"}
    assert state["kind"] == "toy" and state["epoch"] == EPOCHS - 1
    assert torch.equal(state["w"], torch.tensor(results["w"]))
    history = [json.loads(ln) for ln in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    assert float(log[-1]["loss"]) == pytest.approx(sum(x * x for x in history[-1]["w"]))
    # the same seed gives the same numbers; the draws really come from the global stream
    torch.manual_seed(0)
    w = torch.zeros(3)
    for _ in range(3 * EPOCHS):
        w += torch.randn(3)
    assert torch.equal(w, state["w"])


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(reference, tmp_path):
    out = tmp_path / "part"
    with pytest.raises(RuntimeError, match="killed"):
        run_toy(out, crash_at=2)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    torch.randn(100)  # the resumed process's stream is elsewhere: the checkpoint restores it
    results = run_toy(out, resume=True)
    assert results["w"] == reference[1]["w"]
    assert_same_run(out, reference[0])


def test_without_the_saved_random_state_a_resume_would_differ(reference, tmp_path):
    out = tmp_path / "part"
    with pytest.raises(RuntimeError):
        run_toy(out, crash_at=2, rng=False)
    assert "rng" not in load_checkpoint(out / "checkpoint.pt")
    assert run_toy(out, resume=True, rng=False)["w"] != reference[1]["w"]


def test_a_row_written_before_a_failed_checkpoint_is_dropped_on_resume(reference, tmp_path,
                                                                      monkeypatch):
    """A kill between the log row and the checkpoint leaves a row of an unsaved epoch."""
    real_save = runtime.save_checkpoint
    calls = []

    def fail_third(state, path):
        calls.append(state["epoch"])
        if len(calls) == 3:
            raise OSError("disk gone")
        return real_save(state, path)

    out = tmp_path / "part"
    monkeypatch.setattr(runtime, "save_checkpoint", fail_third)
    with pytest.raises(OSError):
        run_toy(out)
    monkeypatch.setattr(runtime, "save_checkpoint", real_save)
    assert [r["epoch"] for r in rows(out)] == ["0", "1", "2"]  # epoch 2's row, no checkpoint
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    stage = Toy(out)
    runtime.seed_everything(0)
    run_stage(stage, dist=Dist(), run_dir=out, epochs=EPOCHS, steps=3, resume=True,
              progress=False, resume_hint=HINT)
    assert stage.opened == [(2, True)]  # the stage tidies its own files from the resumed epoch
    assert_same_run(out, reference[0])


def test_a_kill_halfway_through_a_checkpoint_write_keeps_the_previous_one(reference, tmp_path):
    """SIGKILL while the 2nd checkpoint's temporary file is half written (a real process)."""
    out = tmp_path / "part"
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "import test_skeleton; test_skeleton.run_toy(Path(sys.argv[2]))")
    env = {**os.environ, KILL_ENV: "checkpoint-write:2"}
    proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert list(out.glob(".checkpoint.pt.*.tmp"))  # the half-written file
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 0
    run_toy(out, resume=True)
    assert not list(out.glob(".checkpoint.pt.*.tmp"))
    assert_same_run(out, reference[0])


def test_the_nan_guard_names_the_epoch_checkpoint_and_the_stage_hint(tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(NumericalError) as err:
        run_toy(out, nan_at=2)
    ckpt = out / "checkpoint.pt"
    assert str(err.value) == (f"non-finite loss at epoch 2 of {out}; last good checkpoint: "
                              f"{ckpt} (epoch 1); resume with a lower learning rate: {HINT}")
    # nothing of the NaN epoch was written
    assert load_checkpoint(ckpt)["epoch"] == 1
    assert [r["epoch"] for r in rows(out)] == ["0", "1"]
    assert len((out / "history.jsonl").read_text().splitlines()) == 2


def test_a_nan_in_the_first_epoch_says_to_start_again(tmp_path):
    out = tmp_path / "nan0"
    with pytest.raises(NumericalError) as err:
        run_toy(out, nan_at=0)
    assert str(err.value) == (f"non-finite loss at epoch 0 of {out}; no checkpoint yet (the "
                              "first epoch failed); start it again with --set toy.lr=0.01")
    assert not (out / "checkpoint.pt").exists()


def test_a_foreign_checkpoint_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "foreign"
    run_toy(out, epochs=1)
    state = load_checkpoint(out / "checkpoint.pt")
    runtime.save_checkpoint({**state, "kind": "other"}, out / "checkpoint.pt")
    before = (out / "toy_log.csv").read_text()
    with pytest.raises(NasforgeError, match="is not a checkpoint of a toy run"):
        run_toy(out, resume=True)
    assert (out / "toy_log.csv").read_text() == before


def test_a_finished_run_resumes_to_its_results_without_another_epoch(reference, tmp_path):
    out = tmp_path / "done"
    first = run_toy(out)
    again = run_toy(out, resume=True)
    assert again == first  # elapsed included: nothing ran
    assert len(rows(out)) == EPOCHS


def test_replicas_are_checked_at_the_start_and_after_each_epoch(tmp_path, monkeypatch):
    """A world of one checks nothing across ranks but dumps what it would compare
    (NASFORGE_REPLICA_DUMP); a stage without replicas (never data-parallel) dumps nothing."""
    seen = []
    monkeypatch.setattr(Dist, "check_replicas",
                        lambda self, name, state, where: seen.append((name, where, state)))
    run_toy(tmp_path / "a", epochs=2)
    assert [(name, where) for name, where, _ in seen] == [
        ("toy", "the start"), ("toy", "epoch 0"), ("toy", "epoch 1")]
    assert [s["start"] for _, _, s in seen] == [0, 0, 0]
    assert torch.equal(seen[-1][2]["w"],
                       load_checkpoint(tmp_path / "a" / "checkpoint.pt")["w"])
    seen.clear()
    monkeypatch.setenv(DUMP_ENV, str(tmp_path / "dump"))
    run_toy(tmp_path / "b", epochs=2, replicas=False)
    assert seen == []
