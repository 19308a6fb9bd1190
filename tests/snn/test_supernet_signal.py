"""The super-network's own budget, no cutout, per-path BN recalibration, rank correlation."""

import json

import pytest
import torch
from torch import nn

from nasforge.config import load_config
from nasforge.data import read_index_file
from nasforge.errors import NasforgeError
from nasforge.runtime import read_csv
from nasforge.snn import supernet as supernet_module
from nasforge.snn.backbone import SNNSuperNet
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.neuron import reset_net
from nasforge.snn.rank import rank_correlation, tau
from nasforge.snn.search import run_snn_search, score_path
from nasforge.snn.spikes import count_spikes
from nasforge.snn.supernet import (
    load_supernet,
    recalibrated_bn,
    recalibration_batches,
    run_supernet,
)

TINY = ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64", "snn.crop_pad=0",
        "snn.flip=false", "snn.blocks=[SCB_k3,SRB_k3,skip]", "run.progress=false"]
PATH = ["SRB_k3", "SCB_k3", "skip", "SRB_k3", "SCB_k3"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var, m.num_batches_tracked)]


def _stale_supernet() -> SNNSuperNet:
    torch.manual_seed(0)
    model = SNNSuperNet(4, 2, 10, 8, 1, candidates=("SCB_k3", "SRB_k3", "skip"))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # shared statistics that fit no single path
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 3)
            m.num_batches_tracked.fill_(7)
    return model.eval()


def _recalibrated_by_hand(net: nn.Module, batches) -> nn.Module:
    """The independent computation: statistics reset, then averaged over ``batches`` in
    train mode (momentum None); returned in eval mode."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for x, _ in batches:
            net(x)
            reset_net(net)
    return net.eval()


def test_recalibration_equals_an_independent_computation_and_restores() -> None:
    model = _stale_supernet()
    before = _bn_buffers(model)
    batches = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    x = torch.randn(20, 1, 8, 8)
    # independently: the extracted network, statistics reset and averaged over the batches
    net = _recalibrated_by_hand(model.extract(PATH), batches)
    with torch.no_grad():
        expected = net(x)
        reset_net(net)
        with recalibrated_bn(model, batches, lambda b: model(b, PATH)):
            assert not model.training
            got = model(x, PATH)
            reset_net(model)
            inside = _bn_buffers(model)
            stale = model(x, ["SCB_k3"] * 5)  # a path that was not recalibrated: reset stats
            reset_net(model)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(before, inside, strict=True))
    assert stale.shape == got.shape
    after = _bn_buffers(model)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not model.training


def test_recalibration_batches_are_fixed_and_unaugmented() -> None:
    data = load_snn_data("digits")
    idx = torch.arange(100)
    one = recalibration_batches(data, idx, 16, 3, 0, "cpu")
    two = recalibration_batches(data, idx, 16, 3, 0, "cpu")
    assert len(one) == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(one, two, strict=True))
    assert recalibration_batches(data, idx, 16, 0, 0, "cpu") == []


@pytest.fixture(scope="module")
def tiny_supernet(tmp_path_factory):
    root = tmp_path_factory.mktemp("snn-signal")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config(None, [*TINY, "snn.epochs=5", "snn.supernet_epochs=2", "snn.lr=0.005",
                             "snn.cutout=16"])
    seen = []
    real = supernet_module.static_augment
    supernet_module.static_augment = lambda *a: seen.append(a[1:]) or real(*a)
    try:
        results = run_supernet(cfg, root / "sn")
    finally:
        supernet_module.static_augment = real
        torch.set_num_threads(threads)
    return root / "sn", results, seen


def test_supernet_has_its_own_budget_and_no_cutout(tiny_supernet) -> None:
    path, results, seen = tiny_supernet
    assert results["epochs"] == 2 and len(read_csv(path / "supernet_log.csv")) == 2
    assert seen == [(0, False, 0)]  # (crop_pad, flip, cutout): snn.cutout=16 is retraining's
    _, meta = load_supernet(path)
    assert meta["finished"] and meta["spec"]["bn"] == "per-step"


def test_search_scores_with_recalibration(tiny_supernet, tmp_path) -> None:
    path, _, _ = tiny_supernet
    small = ["snn.rounds=1", "snn.pool=4", "snn.top_k=2", "snn.mutations=1",
             "snn.crossovers=1", "snn.lams=[0]"]
    results = run_snn_search(path, tmp_path / "s", [*small, "snn.bn_recalibrate_batches=2"])
    (row,) = results["searches"]
    # the score is that of an independent recalibrated evaluation of the extracted network
    model, meta = load_supernet(path)
    data = load_snn_data("digits")
    train_idx = read_index_file(path / "train.txt", len(data.train))
    seed = load_config(None, TINY).run.seed
    batches = recalibration_batches(data, train_idx, 64, 2, seed, "cpu")
    net = _recalibrated_by_hand(model.extract(row["arch"]), batches)
    val = read_index_file(path / "val.txt", len(data.train))
    val_batches = snn_batches(data, data.train, 1000, device=torch.device("cpu"), indices=val,
                              shuffle=False)
    ((x, y),) = list(val_batches.epoch(0))
    with torch.no_grad():
        acc = 100.0 * float((net(x).argmax(1) == y).float().mean())
    assert row["acc"] == pytest.approx(acc)
    assert row["spikes"] == pytest.approx(count_spikes(net, x, meta["convention"])["total"])
    plain = score_path(model, row["arch"].split(","), val_batches, [], count="thesis",
                       timesteps=2)
    assert plain != (row["acc"], row["spikes"])  # the shared statistics score differently
    saved = json.loads((tmp_path / "s" / "evaluations.json").read_text())
    assert saved["scoring"]["bn_recalibrate_batches"] == 2
    with pytest.raises(NasforgeError, match="other (scoring )?settings"):
        run_snn_search(path, tmp_path / "s", small)


def test_kendall_tau() -> None:
    assert tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(NasforgeError):
        tau([1.0], [2.0])


def test_rank_correlation_end_to_end(tiny_supernet, tmp_path) -> None:
    path, _, _ = tiny_supernet
    results = rank_correlation(path, tmp_path / "r", num_paths=3, recalibrate=(0, 2),
                               train_overrides=("snn.epochs=1",))
    rows = results["paths"]
    assert rows[0]["arch"] == "skip,skip,skip,skip,skip" and len(rows) == 3
    for i, row in enumerate(rows):
        trained = json.loads((tmp_path / "r" / f"train-{i}" / "results.json").read_text())
        assert trained["arch"] == row["arch"] and row["standalone_acc"] == trained["test_acc"]
    expected = tau([r["supernet_acc_recal2"] for r in rows], [r["standalone_acc"] for r in rows])
    assert results["kendall_tau"]["2"] == pytest.approx(expected, nan_ok=True)
    stamp = (tmp_path / "r" / "train-1" / "results.json").stat().st_mtime_ns
    again = rank_correlation(path, tmp_path / "r", num_paths=3, recalibrate=(0, 2),
                             train_overrides=("snn.epochs=1",))
    assert (tmp_path / "r" / "train-1" / "results.json").stat().st_mtime_ns == stamp
    assert again["paths"] == rows
    assert "Kendall" in (tmp_path / "r" / "rank.md").read_text()


def test_cli_epochs_is_the_supernets_budget(tmp_path) -> None:
    from nasforge.cli import main
    from nasforge.runtime import load_run_config

    out = tmp_path / "sn"
    assert main(["snn", "supernet", "--config", "autosnn-digits", "--epochs", "1",
                 "--channels", "2", "--timesteps", "2", "--set", "snn.batch_size=256",
                 "--out", str(out), "--no-progress"]) == 0
    cfg = load_run_config(out)
    assert cfg.snn.supernet_epochs == 1 and cfg.snn.epochs == 20  # retraining's stays
    assert len(read_csv(out / "supernet_log.csv")) == 1
