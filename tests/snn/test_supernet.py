from collections import Counter

import pytest
import torch

from nasforge.checkpoint import load_checkpoint
from nasforge.config import load_config
from nasforge.data import read_index_file
from nasforge.errors import NasforgeError
from nasforge.runtime import read_csv
from nasforge.snn.backbone import SpikePool
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.neuron import is_neuron, reset_net
from nasforge.snn.supernet import (
    build_supernet,
    load_supernet,
    path_sampler,
    resume_supernet,
    run_supernet,
    sample_path,
)

TINY_SNN = ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64", "snn.crop_pad=0",
            "snn.flip=false", "snn.cutout=0", "run.progress=false"]


def test_paths_depend_on_seed_and_epoch_only_and_are_uniform() -> None:
    blocks = ["a", "b", "c", "d", "e"]
    one = [sample_path(path_sampler(blocks, 5, 3, 7), blocks, 5) for _ in range(3)]
    two = [sample_path(path_sampler(blocks, 5, 3, 7), blocks, 5) for _ in range(3)]
    assert one == two
    rng = path_sampler(blocks, 5, 3, 8)
    draws = Counter(b for _ in range(2000) for b in sample_path(rng, blocks, 5))
    assert set(draws) == set(blocks)
    assert all(abs(n / 10000 - 0.2) < 0.02 for n in draws.values())


def _independent_spikes(model, batches, paths) -> float:
    """Spikes per image by hand: sum every neuron's and max-pool's outputs over all steps."""
    total, images = 0.0, 0
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: outputs.append(o.detach()))
               for m in model.modules()
               if is_neuron(m) or (isinstance(m, SpikePool) and m.kind == "max")]
    model.train()
    with torch.no_grad():
        for step, (x, _y) in enumerate(batches.epoch(0)):
            outputs.clear()
            model(x, paths[step])
            reset_net(model)
            total += sum(float(o.sum()) for o in outputs)
            images += len(x)
    for h in handles:
        h.remove()
    return total / images


def test_n_avg_is_measured_on_the_sampled_paths_and_round_trips(tmp_path, one_thread) -> None:
    # lr = 0 freezes the weights (batch norm uses batch statistics in training mode), so the
    # epoch's spikes can be recomputed independently afterwards.
    cfg = load_config(None, [*TINY_SNN, "snn.epochs=1", "snn.lr=0.0"])
    results = run_supernet(cfg, tmp_path / "sn")
    state = load_checkpoint(tmp_path / "sn" / "checkpoint.pt")
    assert state["n_avg"] == pytest.approx(results["n_avg"]) and results["n_avg"] > 0
    model, meta = load_supernet(tmp_path / "sn")
    assert meta["n_avg"] == state["n_avg"] and meta["finished"]
    data = load_snn_data("digits")
    train_idx = read_index_file(tmp_path / "sn" / "train.txt", len(data.train))
    batches = snn_batches(data, data.train, 64, device=torch.device("cpu"), indices=train_idx,
                          seed=cfg.run.seed)
    rng = path_sampler(cfg.snn.blocks, 5, cfg.run.seed, 0)
    paths = [sample_path(rng, cfg.snn.blocks, 5) for _ in range(len(batches))]
    assert _independent_spikes(model, batches, paths) == pytest.approx(results["n_avg"])


def test_split_is_8_to_2_and_saved(tmp_path, one_thread) -> None:
    cfg = load_config(None, [*TINY_SNN, "snn.epochs=1"])
    results = run_supernet(cfg, tmp_path / "sn")
    n = results["train_examples"] + results["val_examples"]
    assert n == len(load_snn_data("digits").train)
    assert results["val_examples"] == round(0.2 * n)
    train = set(read_index_file(tmp_path / "sn" / "train.txt", n).tolist())
    assert train.isdisjoint(read_index_file(tmp_path / "sn" / "val.txt", n).tolist())
    assert len(read_csv(tmp_path / "sn" / "supernet_log.csv")) == 1


def test_resume_equals_uninterrupted(tmp_path, one_thread) -> None:
    full = run_supernet(load_config(None, [*TINY_SNN, "snn.epochs=2"]), tmp_path / "full")
    run_supernet(load_config(None, [*TINY_SNN, "snn.epochs=1"]), tmp_path / "cut")
    cfg_path = tmp_path / "cut" / "config.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("epochs: 1\n", "epochs: 2\n", 1))
    resumed = resume_supernet(tmp_path / "cut")
    assert resumed["n_avg"] == full["n_avg"]
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(read_csv(tmp_path / "cut" / "supernet_log.csv")) == 2


def test_relu_supernet_has_no_neurons_and_one_step(tmp_path) -> None:
    spec = {"channels": 4, "timesteps": 1, "num_classes": 10, "in_size": 8, "in_channels": 1,
            "variant": None, "space": "default", "candidates": ["SCB_k3", "skip"],
            "neuron": "relu", "dataset": "digits"}
    dnn = build_supernet(spec)
    snn = build_supernet({**spec, "neuron": "plif"})
    assert not any(is_neuron(m) for m in dnn.modules())
    plif_params = sum(p.numel() for m in snn.modules() if is_neuron(m) for p in m.parameters())
    assert sum(p.numel() for p in dnn.parameters()) == \
        sum(p.numel() for p in snn.parameters()) - plif_params
    x = torch.randn(3, 1, 8, 8)
    out = dnn(x, ["SCB_k3"] * 5)
    assert out.shape == (3, 10) and (out >= 0).all()


def test_missing_supernet_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(NasforgeError, match="snn supernet --out"):
        load_supernet(tmp_path)
