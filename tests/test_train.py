import pytest
import torch

import nasforge
from conftest import TINY_TRAIN
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.runtime import read_csv
from nasforge.spaces.darts.genotype import load_genotype
from nasforge.train import epoch_lr, evaluate_run, load_model, resume_train, run_train

GENOTYPE = load_genotype("DARTS_V2")


def test_lr_schedules():
    cos = load_config(None, ["train.epochs=10", "train.lr=0.025"])
    assert epoch_lr(cos, 0) == pytest.approx(0.025)
    assert epoch_lr(cos, 5) == pytest.approx(0.0125)
    lin = load_config("train-imagenet", ["train.epochs=10"])
    assert lin.train.label_smoothing == 0.1 and lin.train.warmup_epochs == 5
    assert [round(epoch_lr(lin, e), 4) for e in range(10)] == [
        0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_train_saves_a_model_that_reloads_and_reevaluates(tmp_path):
    out = tmp_path / "train"
    results = run_train(load_config(None, TINY_TRAIN), GENOTYPE, out)
    assert [int(r["epoch"]) for r in read_csv(out / "train_log.csv")] == [0, 1]
    assert 0 <= results["test_acc"] <= 100 and results["params_m"] > 0
    model = nasforge.load_model(out)
    assert not model.training
    assert sum(p.numel() for n, p in model.named_parameters() if "auxiliary" not in n) == \
        round(results["params_m"] * 1e6)
    again = evaluate_run(out, device="cpu")
    assert again["acc"] == pytest.approx(results["test_acc"])
    assert again["examples"] == 359
    logits, aux = model(torch.zeros(2, 1, 8, 8))
    assert logits.shape == (2, 10) and aux is None


def test_drop_path_and_aux_head_are_used_in_training(tmp_path):
    cfg = load_config(None, [*TINY_TRAIN, "train.epochs=1", "train.drop_path=0.0"])
    a = run_train(cfg, GENOTYPE, tmp_path / "a")
    cfg_aux = load_config(None, [*TINY_TRAIN, "train.epochs=1", "train.auxiliary_weight=0"])
    b = run_train(cfg_aux, GENOTYPE, tmp_path / "b")
    assert a["test_loss"] != b["test_loss"]


def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = load_config(None, TINY_TRAIN)
    full = run_train(cfg, GENOTYPE, tmp_path / "full")

    import nasforge.runtime as runtime  # record_epoch writes each epoch's checkpoint

    real_save = runtime.save_checkpoint
    calls = []

    def crash_on_second_epoch(state, path):
        calls.append(state.get("epoch"))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while writing epoch 1's checkpoint
        return real_save(state, path)

    monkeypatch.setattr(runtime, "save_checkpoint", crash_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, GENOTYPE, tmp_path / "part")
    monkeypatch.setattr(runtime, "save_checkpoint", real_save)
    assert not (tmp_path / "part" / "results.json").exists()
    resumed = resume_train(tmp_path / "part")
    assert resumed["test_acc"] == full["test_acc"]
    assert resumed["test_loss"] == full["test_loss"]
    a = load_model(tmp_path / "full").state_dict()
    b = load_model(tmp_path / "part").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_errors(tmp_path):
    with pytest.raises(NasforgeError, match="no trained model"):
        load_model(tmp_path)
