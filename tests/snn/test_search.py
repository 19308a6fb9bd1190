import json

import pytest
import torch

from conftest import run_cli
from nasforge.config import load_config
from nasforge.data import read_index_file
from nasforge.errors import NasforgeError
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.search import best_arch, run_snn_search
from nasforge.snn.spikes import count_spikes
from nasforge.snn.supernet import load_supernet, run_supernet

SMALL_SEARCH = ["snn.rounds=2", "snn.pool=6", "snn.top_k=3", "snn.mutations=2",
                "snn.crossovers=2"]


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    root = tmp_path_factory.mktemp("snn-search")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config(None, ["snn.channels=4", "snn.timesteps=2", "snn.epochs=2",
                             "snn.batch_size=64", "snn.lr=0.005", "snn.cutout=0",
                             "snn.blocks=[SCB_k3,SRB_k3,skip]", "run.progress=false"])
    run_supernet(cfg, root / "sn")
    torch.set_num_threads(threads)
    return root / "sn"


def test_scores_are_those_of_the_extracted_network(supernet, tmp_path) -> None:
    results = run_snn_search(supernet, tmp_path / "s", [*SMALL_SEARCH, "snn.lams=[-0.08]"])
    (row,) = results["searches"]
    model, meta = load_supernet(supernet)
    net = model.extract(row["arch"]).eval()
    data = load_snn_data("digits")
    val = read_index_file(supernet / "val.txt", len(data.train))
    batches = snn_batches(data, data.train, 1000, device=torch.device("cpu"), indices=val,
                          shuffle=False)
    ((x, y),) = list(batches.epoch(0))
    with torch.no_grad():
        acc = 100.0 * float((net(x).argmax(1) == y).float().mean())
    spikes = count_spikes(net, x, meta["convention"])["total"]
    assert row["acc"] == pytest.approx(acc)
    assert row["spikes"] == pytest.approx(spikes)
    assert row["fitness"] == pytest.approx(acc * (spikes / meta["n_avg"]) ** -0.08)
    history = json.loads((tmp_path / "s" / "lam-0.08" / "result.json").read_text())["history"]
    assert len({h["arch"] for h in history}) == len(history) <= 12
    assert best_arch(tmp_path / "s") == row["arch"]
    assert (tmp_path / "s" / "lam-0.08" / "arch.txt").read_text().strip() == row["arch"]


def test_new_lambdas_reuse_the_scores(supernet, tmp_path) -> None:
    first = run_snn_search(supernet, tmp_path / "s", [*SMALL_SEARCH, "snn.lams=[0]"])
    assert first["searches"][0]["evaluate_calls"] == first["architectures_scored"]
    again = run_snn_search(supernet, tmp_path / "s", [*SMALL_SEARCH, "snn.lams=[0,-0.5]"])
    lam0, lam5 = again["searches"]
    assert lam0["evaluate_calls"] == 0  # replayed from the saved state and scores
    assert lam0["arch"] == first["searches"][0]["arch"]
    assert lam5["evaluate_calls"] < 12  # many architectures were already scored
    third = run_snn_search(supernet, tmp_path / "s", [*SMALL_SEARCH, "snn.lams=[-0.3]"])
    assert [row["lam"] for row in third["searches"]] == [0.0, -0.5, -0.3]  # earlier kept
    assert best_arch(tmp_path / "s", -0.5) == lam5["arch"]
    with pytest.raises(NasforgeError, match="no search with lam=0.3"):
        best_arch(tmp_path / "s", 0.3)


def test_random_search_uses_its_budget(supernet, tmp_path) -> None:
    results = run_snn_search(supernet, tmp_path / "r", ["snn.search_algo=random",
                                                        "snn.budget=7", "snn.lams=[0]"])
    assert results["algo"] == "random" and results["architectures_scored"] == 7


def test_scores_of_another_supernet_are_refused(supernet, tmp_path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "evaluations.json").write_text(json.dumps({"supernet": "/x", "scores": {}}))
    (tmp_path / "s" / "search.json").write_text(json.dumps({"supernet": "/x"}))
    with pytest.raises(NasforgeError, match="another super-network"):
        run_snn_search(supernet, tmp_path / "s", SMALL_SEARCH)


def test_cli_search_and_train_from_search_dir(supernet, tmp_path) -> None:
    out = tmp_path / "s"
    res = run_cli("snn", "search", "--supernet", str(supernet), "--out", str(out),
                  "--lam", "-0.08", "--lam=0", "--set", "snn.rounds=1", "--set", "snn.pool=4",
                  "--set", "snn.mutations=2", "--set", "snn.crossovers=2", "--no-progress")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["lam=-0.08", "lam=+0"]
    summary = json.loads((out / "results.json").read_text())
    assert summary["architectures_scored"] == 4
    res = run_cli("snn", "train", "--arch", str(out), "--lam", "0", "--out",
                  str(tmp_path / "t"), "--channels", "4", "--timesteps", "2", "--epochs", "1",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    trained = json.loads((tmp_path / "t" / "results.json").read_text())
    assert trained["arch"] == summary["searches"][1]["arch"]
    # the pictures read these run directories
    from PIL import Image

    for args in (("snn-pareto", str(tmp_path / "t")), ("snn-layers", str(tmp_path / "t")),
                 ("snn-search", str(out), "--lam", "-0.08"), ("snn-arch", "--arch", str(out))):
        png = tmp_path / f"{args[0]}.png"
        res = run_cli("plot", *args, "--out", str(png))
        assert res.returncode == 0 and res.stdout.strip() == str(png), res.stderr
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) > 100
    res = run_cli("plot", "snn-pareto", str(out), "--out", str(tmp_path / "x.png"))
    assert res.returncode == 2 and "snn train" in res.stderr
    bad = run_cli("snn", "search", "--supernet", str(supernet), "--out", str(tmp_path / "b"),
                  "--lam", "abc")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "abc" in bad.stderr


def test_dnn_space_searches_with_lambda_zero_only(tmp_path, one_thread) -> None:
    cfg = load_config(None, ["snn.channels=2", "snn.epochs=1", "snn.batch_size=128",
                             "snn.neuron=relu", "snn.blocks=[SCB_k3,skip]",
                             "run.progress=false"])
    run_supernet(cfg, tmp_path / "dnn")
    with pytest.raises(NasforgeError, match="--lam 0"):
        run_snn_search(tmp_path / "dnn", tmp_path / "s", ["snn.lams=[-0.08]"])
    results = run_snn_search(tmp_path / "dnn", tmp_path / "s2",
                             [*SMALL_SEARCH, "snn.lams=[0]", "snn.pool=4"])
    (row,) = results["searches"]
    assert row["spikes"] == 0.0 and row["fitness"] == row["acc"]
    assert len(row["arch"].split(",")) == 5 and set(row["arch"].split(",")) <= {"SCB_k3", "skip"}


def test_search_scores_energy_as_the_extracted_network_measures_it(supernet, tmp_path) -> None:
    from nasforge.snn.energy import measure_energy

    results = run_snn_search(supernet, tmp_path / "s", [*SMALL_SEARCH, "snn.lams=[0]",
                                                        "snn.energy_profile=45nm-fp16"])
    (row,) = results["searches"]
    assert results["energy_profile"] == "45nm-fp16"
    net = load_supernet(supernet)[0].extract(row["arch"]).eval()
    data = load_snn_data("digits")
    val = read_index_file(supernet / "val.txt", len(data.train))
    ((x, _y),) = list(snn_batches(data, data.train, 1000, device=torch.device("cpu"),
                                  indices=val, shuffle=False).epoch(0))
    assert row["energy"] == pytest.approx(measure_energy(net, x, "45nm-fp16")["energy_uj"])
    history = (tmp_path / "s" / "lam+0" / "history.csv").read_text().splitlines()
    assert history[0] == "index,round,arch,acc,spikes,fitness,energy"


def test_search_by_energy_within_a_budget(supernet, tmp_path) -> None:
    first = run_snn_search(supernet, tmp_path / "a", [*SMALL_SEARCH, "snn.lams=[0]"])
    scores = json.loads((tmp_path / "a" / "evaluations.json").read_text())["scores"]
    energies = sorted(v[2] for v in scores.values())
    budget = energies[len(energies) // 2]
    results = run_snn_search(supernet, tmp_path / "b", [
        *SMALL_SEARCH, "snn.lams=[0]", "snn.energy_lam=-2", f"snn.max_energy={budget}"])
    (row,) = results["searches"]
    result = json.loads((tmp_path / "b" / "lam+0" / "result.json").read_text())
    assert row["energy"] <= budget and row["over_budget"] == len(result["over_budget"]) > 0
    assert all(r["energy"] <= budget for r in result["history"])
    assert all(r["energy"] > budget for r in result["over_budget"])
    e_avg = result["e_avg"]
    for r in result["history"]:
        assert r["fitness"] == pytest.approx(r["acc"] * (r["energy"] / e_avg) ** -2)
    assert first["searches"][0]["fitness"] == first["searches"][0]["acc"]  # default: no energy
    with pytest.raises(NasforgeError, match="fits the energy budget"):
        run_snn_search(supernet, tmp_path / "c", [*SMALL_SEARCH, "snn.lams=[0]",
                                                  f"snn.max_energy={energies[0] / 2}"])
    # the failed search's scores survive a --force re-run with a larger budget: the same
    # result as a fresh search, with fewer calls to evaluate
    within = [*SMALL_SEARCH, "snn.lams=[0]", "snn.energy_lam=-2", f"snn.max_energy={budget}"]
    with pytest.raises(NasforgeError, match="other settings"):
        run_snn_search(supernet, tmp_path / "c", within)
    run_snn_search(supernet, tmp_path / "c", within, force=True)
    redone = json.loads((tmp_path / "c" / "lam+0" / "result.json").read_text())
    assert redone["history"] == result["history"]
    assert redone["over_budget"] == result["over_budget"]
    assert redone["evaluate_calls"] < result["evaluate_calls"]
    # a setting that changes the scores keeps nothing
    run_snn_search(supernet, tmp_path / "c", [*SMALL_SEARCH, "snn.lams=[0]",
                                              "snn.bn_recalibrate_batches=1"], force=True)
    rescored = json.loads((tmp_path / "c" / "lam+0" / "result.json").read_text())
    assert rescored["evaluate_calls"] == len(rescored["history"])
    png = tmp_path / "energy.png"
    res = run_cli("plot", "snn-energy", str(tmp_path / "b"), "--out", str(png))
    assert res.returncode == 0 and res.stdout.strip() == str(png), res.stderr


def test_warm_start_by_proxy_is_seeded(supernet, tmp_path) -> None:
    warm = [*SMALL_SEARCH, "snn.lams=[0]", "snn.warm_start=10", "snn.warm_proxy=synflow"]
    one = run_snn_search(supernet, tmp_path / "a", warm)
    two = run_snn_search(supernet, tmp_path / "b", warm)
    ra, rb = (json.loads((tmp_path / d / "lam+0" / "result.json").read_text()) for d in "ab")
    assert ra["history"] == rb["history"] and ra["warm_scores"] == rb["warm_scores"]
    assert one["searches"] == [{**two["searches"][0], "dir": "lam+0"}]
    scores = ra["warm_scores"]
    assert len(scores) == 10
    first_round = [r["arch"] for r in ra["history"] if r["round"] == 1]
    assert first_round == sorted(scores, key=lambda a: -scores[a])[:6]
    with pytest.raises(NasforgeError, match="random search takes none"):
        run_snn_search(supernet, tmp_path / "c", [*warm, "snn.search_algo=random"])
    with pytest.raises(NasforgeError, match=r"warm_start \(6\) must exceed snn.pool"):
        run_snn_search(supernet, tmp_path / "d", [*warm, "snn.warm_start=6"])
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
