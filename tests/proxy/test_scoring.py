import json
import math

import pytest
import torch

from nasforge.config import load_config
from nasforge.data import load_dataset
from nasforge.errors import NasforgeError
from nasforge.proxy.entropy import load_features, read_entropy_list, read_forgetting
from nasforge.proxy.models import AUX_MODELS, cifar_resnet
from nasforge.proxy.scoring import resume_entropy, run_dir_for, score_entropy, step_lr
from nasforge.proxy.simclr import color_jitter, nt_xent, random_resized_crop
from nasforge.runtime import read_csv

# ResNet-8 (n = 1) keeps the tests to seconds; the recipe is the same for ResNet-20.
TINY = ["entropy.model=resnet8", "entropy.epochs=3", "entropy.milestones=[2,3]",
        "entropy.crop_pad=1", "run.progress=false", "run.device=cpu"]
DIGITS_TRAIN = 1258


@pytest.fixture(scope="module", autouse=True)
def resnet8():
    AUX_MODELS._entries["resnet8"] = lambda k, c: cifar_resnet(8, k, c)
    yield
    del AUX_MODELS._entries["resnet8"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    out = tmp_path_factory.mktemp("scored") / "digits.tsv"
    results = score_entropy(load_config(None, TINY), out)
    return out, results


def test_step_lr_divides_by_ten_at_each_milestone():
    assert [step_lr(0.1, e, (2, 4)) for e in range(6)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_scoring_writes_every_example_in_dataset_order(scored):
    out, results = scored
    labels = load_dataset("digits").train.y
    listing = read_entropy_list(out, DIGITS_TRAIN)
    assert out.read_text().splitlines()[5].split("\t")[0] == "5"
    assert torch.equal(listing.label, labels)
    assert ((listing.entropy >= 0) & (listing.entropy <= math.log(10) + 1e-9)).all()
    run = run_dir_for(out)
    assert sorted(p.name for p in run.iterdir() if not p.name.endswith(".prev")) == [
        ".nasforge", "checkpoint.pt", "config.yaml", "features.npy", "forgetting.tsv", "model.pt",
        "results.json", "tb", "train_log.csv"]
    assert sorted(p.name for p in (run / "tb" / "train_log").iterdir())[0].startswith(
        "events.out.tfevents.")
    assert load_features(run / "features.npy", DIGITS_TRAIN).shape == (DIGITS_TRAIN, 64)
    forgetting = read_forgetting(run / "forgetting.tsv", DIGITS_TRAIN)
    assert int(forgetting.min()) >= 0 and int(forgetting.max()) <= 3
    assert [r["lr"] for r in read_csv(run / "train_log.csv")] == ["0.1", "0.1",
                                                                   "0.010000000000000002"]
    assert json.loads((run / "results.json").read_text()) == results
    assert results["trained"] and results["epochs"] == {"supervised": 3}
    assert 0 <= results["test_acc"] <= 100 and results["examples"] == DIGITS_TRAIN


def test_existing_outputs_need_force(scored, tmp_path):
    out, _ = scored
    with pytest.raises(NasforgeError, match="already exists; pass --force"):
        score_entropy(load_config(None, TINY), out)


def test_checkpoint_scores_without_training_and_matches(scored, tmp_path):
    out, trained = scored
    cfg = load_config(None, TINY)
    again = tmp_path / "again.tsv"
    results = score_entropy(cfg, again, checkpoint=str(run_dir_for(out) / "model.pt"))
    assert again.read_text() == out.read_text()
    assert results["test_acc"] == trained["test_acc"] and not results["trained"]
    assert results["forgetting"] is None and "no forgetting" in results["note"]
    assert not (run_dir_for(again) / "forgetting.tsv").exists()
    assert not (run_dir_for(again) / "train_log.csv").exists()
    raw = tmp_path / "raw.pt"  # a plain state_dict, as other code bases save it
    model = torch.load(run_dir_for(out) / "model.pt", weights_only=True)["state_dict"]
    torch.save({f"module.{k}": v for k, v in model.items()}, raw)
    score_entropy(cfg, tmp_path / "raw.tsv", checkpoint=str(raw))
    assert (tmp_path / "raw.tsv").read_text() == out.read_text()


def test_checkpoint_errors(scored, tmp_path):
    out, _ = scored
    model_pt = str(run_dir_for(out) / "model.pt")
    with pytest.raises(NasforgeError, match="holds a resnet8, not a resnet20"):
        score_entropy(load_config(None, [*TINY, "entropy.model=resnet20"]), tmp_path / "a.tsv",
                      checkpoint=model_pt)
    torch.save(cifar_resnet(14, 10, 1).state_dict(), tmp_path / "deep.pt")
    with pytest.raises(NasforgeError, match="does not fit resnet8 with 10 classes"):
        score_entropy(load_config(None, TINY), tmp_path / "b.tsv",
                      checkpoint=str(tmp_path / "deep.pt"))
    with pytest.raises(NasforgeError, match="not found"):
        score_entropy(load_config(None, TINY), tmp_path / "c.tsv",
                      checkpoint=str(tmp_path / "none.pt"))


def test_resume_after_a_crash_gives_the_identical_list(scored, tmp_path, monkeypatch):
    out, full = scored
    import nasforge.runtime as runtime  # record_epoch writes each epoch's checkpoint

    real_save = runtime.save_checkpoint
    calls = []

    def crash_on_second_epoch(state, path):
        calls.append(state.get("epoch"))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while writing epoch 1's checkpoint
        return real_save(state, path)

    monkeypatch.setattr(runtime, "save_checkpoint", crash_on_second_epoch)
    part = tmp_path / "part.tsv"
    with pytest.raises(KeyboardInterrupt):
        score_entropy(load_config(None, TINY), part)
    monkeypatch.setattr(runtime, "save_checkpoint", real_save)
    assert not part.exists()
    resumed = resume_entropy(part)
    assert part.read_text() == out.read_text()
    assert resumed["test_acc"] == full["test_acc"]
    for name in ("forgetting.tsv",):
        assert (run_dir_for(part) / name).read_text() == (run_dir_for(out) / name).read_text()
    assert [r["epoch"] for r in read_csv(run_dir_for(part) / "train_log.csv")] == ["0", "1", "2"]


def test_simclr_mode_end_to_end(tmp_path):
    cfg = load_config(None, [*TINY, "entropy.pretrain=simclr", "entropy.simclr_epochs=1",
                             "entropy.linear_epochs=2", "entropy.batch_size=256"])
    out = tmp_path / "simclr.tsv"
    results = score_entropy(cfg, out)
    listing = read_entropy_list(out, DIGITS_TRAIN)
    assert ((listing.entropy >= 0) & (listing.entropy <= math.log(10) + 1e-9)).all()
    assert results["epochs"] == {"simclr": 1, "linear": 2} and results["pretrain"] == "simclr"
    log = read_csv(run_dir_for(out) / "train_log.csv")
    assert [r["phase"] for r in log] == ["simclr", "linear", "linear"]
    assert log[0]["train_acc"] == "" and float(log[2]["train_acc"]) > 0
    forgetting = read_forgetting(run_dir_for(out) / "forgetting.tsv", DIGITS_TRAIN)
    assert int(forgetting.max()) <= 2  # counted over the 2 linear epochs only


def test_simclr_needs_a_positive_temperature(tmp_path):
    cfg = load_config(None, [*TINY, "entropy.pretrain=simclr", "entropy.simclr_temperature=0"])
    with pytest.raises(NasforgeError, match="simclr_temperature must be > 0"):
        score_entropy(cfg, tmp_path / "x.tsv")


def test_nt_xent_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    terms = []
    for i in range(6):
        j = (i + 3) % 6
        sims = [math.exp(float(z[i] @ z[k]) / 0.5) for k in range(6) if k != i]
        terms.append(-math.log(math.exp(float(z[i] @ z[j]) / 0.5) / sum(sims)))
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(sum(terms) / 6, rel=1e-5)


def test_views_are_deterministic_and_stay_in_range():
    x = torch.rand(4, 3, 8, 8)

    def views(seed):
        g = torch.Generator().manual_seed(seed)
        return color_jitter(random_resized_crop(x, g), g)

    a, b = views(1), views(1)
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, views(2))
