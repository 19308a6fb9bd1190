import csv
import json

from conftest import run_cli
from nasforge.config import load_config
from nasforge.snn.quality import run_snn_quality, sample_architectures

TINY = ["snn.channels=4", "snn.timesteps=2", "snn.epochs=1", "snn.batch_size=128",
        "snn.cutout=0", "snn.crop_pad=0", "snn.flip=false", "run.progress=false"]


def test_samples_are_unique_seeded_and_sized() -> None:
    blocks = ["SCB_k3", "SRB_k3", "skip"]
    archs = sample_architectures(blocks, 5, 30, seed=1)
    assert len(set(archs)) == 30 and archs == sample_architectures(blocks, 5, 30, seed=1)
    assert archs != sample_architectures(blocks, 5, 30, seed=2)
    assert all(len(a.split(",")) == 5 and set(a.split(",")) <= set(blocks) for a in archs)
    assert len(sample_architectures(["skip", "SRB_k3"], 2, 10, seed=0)) == 4  # space of 2^2


def test_quality_trains_each_variant_and_resumes(tmp_path, one_thread) -> None:
    cfg = load_config(None, [*TINY, "snn.samples=2", "snn.variants=[default,v2]"])
    results = run_snn_quality(cfg, tmp_path / "q")
    with (tmp_path / "q" / "quality.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in rows] == ["default", "default", "v2", "v2"]
    assert [len(r["arch"].split(",")) for r in rows] == [5, 5, 8, 8]
    for row in rows:
        run = json.loads((tmp_path / "q" / "runs" / row["variant"] / f"{int(row['index']):03d}"
                          / "results.json").read_text())
        assert run["arch"] == row["arch"] and float(row["test_acc"]) == run["test_acc"]
        assert run["variant"] == (None if row["variant"] == "default" else "v2")
    mean = sum(float(r["test_acc"]) for r in rows[:2]) / 2
    assert abs(results["variants"]["default"]["mean_acc"] - mean) < 1e-9
    assert (tmp_path / "q" / "quality.png").stat().st_size > 1000
    # a second call trains nothing new: it reads the finished runs
    stamp = (tmp_path / "q" / "runs" / "v2" / "001" / "model.pt").stat().st_mtime_ns
    assert run_snn_quality(cfg, tmp_path / "q") == results
    assert (tmp_path / "q" / "runs" / "v2" / "001" / "model.pt").stat().st_mtime_ns == stamp


def test_cli_quality_rejects_unknown_variant(tmp_path) -> None:
    res = run_cli("snn", "quality", "--out", str(tmp_path / "q"), "--variants", "default,v7")
    assert res.returncode == 2 and "v7" in res.stderr and "v1" in res.stderr
