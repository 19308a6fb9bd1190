import json

import pytest
import torch

from conftest import run_cli
from nasforge.checkpoint import load_checkpoint
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.runtime import read_csv
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.neuron import is_neuron
from nasforge.snn.spikes import count_spikes
from nasforge.snn.train import load_snn_model, resume_snn_train, run_snn_train

TINY = ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64", "snn.cutout=2",
        "snn.crop_pad=1", "snn.lr=0.005", "run.progress=false"]
ARCH = "snn.arch=SRB_k3,skip,SCB_k5,SRB_k5,SCB_k3"


def test_results_match_an_independent_measurement(tmp_path, one_thread) -> None:
    results = run_snn_train(load_config(None, [*TINY, ARCH, "snn.epochs=2"]), tmp_path / "t")
    model = load_snn_model(tmp_path / "t")
    data = load_snn_data("digits")
    ((x, y),) = list(snn_batches(data, data.test, 1000, device=torch.device("cpu"),
                                 shuffle=False).epoch(0))
    with torch.no_grad():
        acc = 100.0 * float((model(x).argmax(1) == y).float().mean())
    assert results["test_acc"] == pytest.approx(acc)
    assert results["spikes"] == pytest.approx(count_spikes(model, x, "thesis")["total"])
    assert results["spikes_neurons"] == pytest.approx(count_spikes(model, x, "neurons")["total"])
    assert results["spikes"] > results["spikes_neurons"] > 0  # max-pool outputs counted again
    assert results["params_m"] * 1e6 == sum(p.numel() for p in model.parameters())
    profile = json.loads((tmp_path / "t" / "spikes.json").read_text())
    assert sum(profile["per_layer"].values()) == pytest.approx(results["spikes"])
    assert all(0.0 <= r <= 1.0 for r in profile["rates"].values())
    assert len(read_csv(tmp_path / "t" / "train_log.csv")) == 2


def test_resume_equals_uninterrupted(tmp_path, one_thread) -> None:
    full = run_snn_train(load_config(None, [*TINY, ARCH, "snn.epochs=2"]), tmp_path / "full")
    run_snn_train(load_config(None, [*TINY, ARCH, "snn.epochs=1"]), tmp_path / "cut")
    path = tmp_path / "cut" / "config.yaml"
    path.write_text(path.read_text().replace("epochs: 1\n", "epochs: 2\n", 1))
    resumed = resume_snn_train(tmp_path / "cut")
    assert resumed["test_acc"] == full["test_acc"] and resumed["spikes"] == full["spikes"]
    a = load_checkpoint(tmp_path / "full" / "model.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "cut" / "model.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_baseline_and_dnn_version(tmp_path, one_thread) -> None:
    fang = run_snn_train(load_config(None, [*TINY, "snn.model=cifarnet-fang", "snn.epochs=1"]),
                         tmp_path / "fang")
    assert fang["kind"] == "hand-crafted" and fang["label"] == "cifarnet-fang"
    dnn = run_snn_train(load_config(None, [*TINY, ARCH, "snn.epochs=1", "snn.neuron=relu"]),
                        tmp_path / "dnn")
    assert not any(is_neuron(m) for m in load_snn_model(tmp_path / "dnn").modules())
    assert dnn["spikes"] is None and dnn["spikes_neurons"] is None
    assert not (tmp_path / "dnn" / "spikes.json").exists()


def test_exactly_one_network_and_no_run_dir_on_bad_arch(tmp_path) -> None:
    with pytest.raises(NasforgeError, match="exactly one"):
        run_snn_train(load_config(None, TINY), tmp_path / "a")
    with pytest.raises(NasforgeError, match="exactly one"):
        run_snn_train(load_config(None, [*TINY, ARCH, "snn.model=cifarnet-wu"]), tmp_path / "a")
    res = run_cli("snn", "train", "--arch", "SRB_k3,SRB_k9,skip,skip,skip", "--out",
                  str(tmp_path / "b"))
    assert res.returncode == 2 and "SRB_k9" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "b").exists()
    res = run_cli("snn", "train", "--model", "vgg", "--out", str(tmp_path / "c"))
    assert res.returncode == 2 and "cifarnet-fang" in res.stderr


def test_cli_train_prints_the_measurements(tmp_path) -> None:
    res = run_cli("snn", "train", "--model", "cifarnet-fang", "--channels", "4",
                  "--timesteps", "2", "--epochs", "1", "--out", str(tmp_path / "t"),
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    assert f"{results['test_acc']:.2f}%" in res.stdout
    assert f"{results['spikes']:,.0f} spikes" in res.stdout


def test_dvs_frames_train_end_to_end(tmp_path, one_thread) -> None:
    from data.test_dvs import cifar_tree  # the raw-format writer of the data tests
    from nasforge.data.dvs import CIFAR10_DVS_CLASSES

    cifar_tree(tmp_path / "root", {name: 3 for name in CIFAR10_DVS_CLASSES})
    cfg = load_config(None, [*TINY, ARCH, "snn.epochs=1", "snn.channels=2",
                             "data.dataset=cifar10-dvs", f"data.root={tmp_path / 'root'}"])
    results = run_snn_train(cfg, tmp_path / "t")
    assert results["examples"] == 10  # one test file per class (9:1 per class, 3 files each)
    model = load_snn_model(tmp_path / "t")
    assert model.in_size == 128 and model.in_channels == 2
    data = load_snn_data("cifar10-dvs", str(tmp_path / "root"), timesteps=2)
    ((x, y),) = list(snn_batches(data, data.test, 100, device=torch.device("cpu"),
                                 shuffle=False).epoch(0))
    assert x.shape == (2, 10, 2, 128, 128)
    with torch.no_grad():
        acc = 100.0 * float((model(x).argmax(1) == y).float().mean())
    assert results["test_acc"] == pytest.approx(acc)


def test_tiny_imagenet_folders_train_with_the_64px_stem(tmp_path, one_thread) -> None:
    from data.test_folders import tiny_tree  # writes a small JPEG tree in the official layout

    tiny_tree(tmp_path / "root")
    cfg = load_config(None, [*TINY, "snn.model=cifarnet-fang", "snn.epochs=1",
                             "snn.channels=2", "snn.batch_size=4", "snn.cutout=16",
                             "data.dataset=tiny-imagenet", f"data.root={tmp_path / 'root'}"])
    results = run_snn_train(cfg, tmp_path / "t")
    model = load_snn_model(tmp_path / "t")
    assert model.in_size == 64 and len(model.stem.extra) == 3  # maxpool, conv-BN, PLIF
    data = load_snn_data("tiny-imagenet", str(tmp_path / "root"))
    assert data.in_size == 64 and results["examples"] == len(data.test)
    assert results["spikes"] > 0 and 0.0 <= results["test_acc"] <= 100.0
