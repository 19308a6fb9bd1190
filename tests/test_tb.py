"""TensorBoard event files mirroring a CSV log (CsvLog(..., tensorboard=True))."""

import pytest

from nasforge.runtime import CsvLog
from nasforge.tb import scalar_tag

pytest.importorskip("tensorboard")


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]}


def row(epoch: int) -> dict:
    return {"epoch": epoch, "lr": 0.1, "train_loss": 2.0 - epoch, "train_acc": "",
            "val_acc": 10.0 * epoch, "seconds": 1.5 * epoch}


def test_rows_become_scalars_and_resume_drops_later_epochs(tmp_path):
    log = CsvLog(tmp_path / "search_log.csv", tensorboard=True)
    for epoch in range(3):
        log.write(row(epoch))
    del log
    folder = tmp_path / "tb" / "search_log"
    got = scalars(folder)
    assert got["loss/train"] == [(0, 2.0), (1, 1.0), (2, 0.0)]
    assert got["acc/val"] == [(0, 0.0), (1, 10.0), (2, 20.0)]
    assert "acc/train" not in got and {"lr", "seconds"} <= set(got)  # empty cells skipped

    log = CsvLog(tmp_path / "search_log.csv", resume_after=0, tensorboard=True)
    log.write(row(1))
    del log
    assert scalars(folder)["loss/train"] == [(0, 2.0), (1, 1.0)]
    assert [r["epoch"] for r in CsvLog(tmp_path / "search_log.csv", resume_after=1).read()] \
        == ["0", "1"]


def test_fresh_log_replaces_events_and_env_turns_it_off(tmp_path, monkeypatch):
    CsvLog(tmp_path / "a.csv", tensorboard=True).write(row(0))
    CsvLog(tmp_path / "a.csv", tensorboard=True).write(row(5))
    assert scalars(tmp_path / "tb" / "a")["lr"] == [(5, 0.1)]
    monkeypatch.setenv("NASFORGE_TENSORBOARD", "0")
    CsvLog(tmp_path / "b.csv", tensorboard=True).write(row(0))
    CsvLog(tmp_path / "c.csv").write(row(0))
    assert not (tmp_path / "tb" / "b").exists() and not (tmp_path / "tb" / "c").exists()
    assert (tmp_path / "b.csv").exists()


def test_tags():
    assert [scalar_tag(c) for c in ("train_loss", "val_acc", "lr", "nb101_test_error")] == [
        "loss/train", "acc/val", "lr", "nb101_test_error"]
