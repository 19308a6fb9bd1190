import json

import pytest

from conftest import TINY_SEARCH, run_cli
from nasforge.cli import main


def _one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nasforge: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, fragments", [
    (["search", "--out", "X", "--set", "search.epochs=0"], ["search.epochs must be >= 1"]),
    (["search", "--out", "X", "--set", "search.epoch=2"], ["unknown config key 'search.epoch'"]),
    (["search", "--out", "X", "--set", "search.w_lr=fast"], ["search.w_lr must be float"]),
    (["search", "--out", "X", "--set", "search.order=third"], ["first, second"]),
    (["search", "--out", "X", "--config", "nope"], ["config 'nope'"]),
    (["search", "--algo", "nope", "--out", "X"], ["invalid choice: 'nope'"]),
    (["search", "--out", "X", "--dataset", "mnist"], ["unknown dataset 'mnist'", "digits"]),
    (["search"], ["--out RUN_DIR is required"]),
    (["describe", "--genotype", "Genotype(normal=[('conv_9x9', 0)]"], ["cannot parse"]),
    (["describe", "--genotype", "NOT_A_GENOTYPE"], ["DARTS_V2"]),
    (["describe", "--genotype", "DARTS_V2", "--dataset", "mnist"], ["mnist"]),
    (["derive", "/nonexistent/run"], ["no strengths.json"]),
    (["data", "info", "cifar10", "--data-root", "/nonexistent"],
     ["/nonexistent/cifar-10-batches-py", "cifar.html"]),
    (["evaluate", "/nonexistent/run"], ["not a nasforge run directory"]),
    (["train", "--genotype", "DARTS_V2"], ["--out RUN_DIR are required"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, argv, *fragments)


def test_bad_genotypes_name_the_problem(capsys, tmp_path):
    bad_op = ("Genotype(normal=[('sep_conv_7x7', 0), ('skip_connect', 1)], normal_concat=[2], "
              "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])")
    _one_line_error(capsys, ["describe", "--genotype", bad_op], "sep_conv_7x7")
    bad_input = ("Genotype(normal=[('sep_conv_3x3', 0, 2), ('skip_connect', 3, 2)], "
                 "normal_concat=[2], reduce=[('max_pool_3x3', 0, 2)], reduce_concat=[2])")
    _one_line_error(capsys, ["describe", "--genotype", bad_input], "node 3")


def test_existing_run_dir_is_not_overwritten(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    _one_line_error(capsys, ["search", "--out", str(out)], "--resume", "--force")
    assert (out / "keep.txt").read_text() == "x"


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = run_cli("search", "--out", str(tmp_path / "r"), "--set", "search.layers=1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "nasforge: error: search.layers must be >= 3; got 1"
    debug = run_cli("--debug", "search", "--out", str(tmp_path / "r"), "--set",
                    "search.layers=1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_describe_darts_v2_json(capsys):
    assert main(["describe", "--genotype", "DARTS_V2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert round(info["params_m"], 2) == 3.35
    assert set(info) >= {"params_m", "flops_m"}


def test_data_info_and_config_show(capsys):
    assert main(["data", "info", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train"] + info["val"] + info["test"] == 1797 and info["num_classes"] == 10
    assert main(["config", "show", "--config", "demo", "--set", "search.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 3\n" in out and "dataset: digits" in out


def test_search_derive_train_evaluate_through_the_cli(capsys, tmp_path, proxy_file):
    run = tmp_path / "search"
    sets = [a for s in [*TINY_SEARCH, "search.epochs=1"] for a in ("--set", s)]
    assert main(["search", "--algo", "darts", "--dataset", "digits", "--proxy",
                 str(proxy_file), "--seed", "3", *sets, "--out", str(run)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (run / "genotype.txt").read_text().strip()
    assert main(["derive", str(run), "--out", str(tmp_path / "g.txt")]) == 0
    assert capsys.readouterr().out.strip() == printed
    assert (tmp_path / "g.txt").read_text().strip() == printed
    train = tmp_path / "train"
    assert main(["train", "--genotype", str(run), "--no-progress", "--set", "train.epochs=1",
                 "--set", "train.channels=4", "--set", "train.layers=3", "--set",
                 "train.crop_pad=1", "--out", str(train)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(train), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    saved = json.loads((train / "results.json").read_text())
    assert measured["acc"] == pytest.approx(saved["test_acc"])


# ---------------------------------------------------------------- proxy data commands

ENTROPY_TINY = ["entropy.model=resnet8", "entropy.epochs=2", "entropy.milestones=[1,2]",
                "entropy.crop_pad=1", "run.device=cpu"]


@pytest.fixture(scope="module")
def resnet8():
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet

    AUX_MODELS._entries["resnet8"] = lambda k, c: cifar_resnet(8, k, c)
    yield
    del AUX_MODELS._entries["resnet8"]


@pytest.fixture(scope="module")
def entropy_list(tmp_path_factory, resnet8):
    out = tmp_path_factory.mktemp("entropy") / "digits.tsv"
    sets = [a for s in ENTROPY_TINY for a in ("--set", s)]
    assert main(["entropy", "--dataset", "digits", "--no-progress", *sets,
                 "--out", str(out)]) == 0
    return out


def test_entropy_then_select_then_plots(capsys, tmp_path, entropy_list):
    from nasforge.data import read_index_file
    from nasforge.proxy.entropy import read_entropy_list

    listing = read_entropy_list(entropy_list)
    n = len(listing.entropy)
    assert n == 1258 and torch_equal_range(listing.index, n)
    capsys.readouterr()
    picks = {}
    for method in ("p1", "bottom-k", "k-center", "forgetting"):
        out = tmp_path / f"{method}.txt"
        extra = []
        if method == "k-center":
            extra = ["--features", str(entropy_list) + ".run/features.npy"]
        if method == "forgetting":
            extra = ["--forgetting", str(entropy_list) + ".run/forgetting.tsv"]
        assert main(["select", "--entropy", str(entropy_list), "--method", method, "--size",
                     "0.1", "--seed", "1", *extra, "--out", str(out)]) == 0
        assert f"selected 126 examples with {method}" in capsys.readouterr().out
        picks[method] = read_index_file(out, n)
        assert len(set(picks[method].tolist())) == 126
    # bottom-k is exactly the 126 lowest entropies (ties to the lower index)
    order = sorted(range(n), key=lambda i: (float(listing.entropy[i]), i))[:126]
    assert sorted(picks["bottom-k"].tolist()) == sorted(order)
    sel = ["--selection", str(tmp_path / "p1.txt"), "--selection", str(tmp_path / "bottom-k.txt")]
    assert main(["plot", "entropy", "--entropy", str(entropy_list), *sel,
                 "--out", str(tmp_path / "h.png")]) == 0
    assert main(["plot", "classes", "--entropy", str(entropy_list), *sel,
                 "--out", str(tmp_path / "c.png")]) == 0
    assert main(["plot", "tsne", "--features", str(entropy_list) + ".run/features.npy", *sel,
                 "--out", str(tmp_path / "t.png")]) == 0
    for name in ("h.png", "c.png", "t.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def torch_equal_range(index, n):
    return [int(i) for i in index] == list(range(n))


def test_search_with_proxy_method_uses_the_given_entropy_list(capsys, tmp_path, entropy_list):
    from nasforge.data import read_index_file
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.selectors import select

    run = tmp_path / "run"
    sets = [a for s in [*TINY_SEARCH, "search.epochs=1"] for a in ("--set", s)]
    assert main(["search", "--dataset", "digits", "--proxy-method", "p1", "--proxy-size", "64",
                 "--proxy-entropy", str(entropy_list), "--seed", "2", *sets,
                 "--out", str(run)]) == 0
    listing = read_entropy_list(entropy_list)
    expected = select("p1", 64, entropy=listing.entropy, labels=listing.label, seed=2,
                      bin_width=0.5)
    used = read_index_file(run / "proxy.txt", 1258)
    assert used.tolist() == expected.tolist()
    results = json.loads((run / "results.json").read_text())
    assert results["cost"]["train_examples"] == 64
    assert results["cost"]["examples_seen"] == 64  # one epoch over both halves


@pytest.mark.parametrize("argv, fragments", [
    (["select", "--entropy", "E", "--method", "p9", "--size", "10", "--out", "o.txt"],
     ["unknown selection method 'p9'", "p1"]),
    (["select", "--entropy", "E", "--method", "p1", "--size", "5000", "--out", "o.txt"],
     ["size", "5000", "more than the 1258"]),
    (["select", "--entropy", "E", "--method", "p1", "--size", "-3", "--out", "o.txt"],
     ["size", "-3", "allowed"]),
    (["select", "--entropy", "E", "--method", "beta", "--beta", "1.5", "--size", "9",
      "--out", "o.txt"], ["beta 1.5", "0 <= beta <= 1"]),
    (["select", "--entropy", "missing.tsv", "--method", "p1", "--size", "9", "--out", "o.txt"],
     ["missing.tsv"]),
    (["select", "--entropy", "E", "--method", "k-center", "--size", "9", "--out", "o.txt"],
     ["--features"]),
    (["bench", "query", "DARTS_V2"], ["not in the tabular-digits space"]),
])
def test_proxy_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, entropy_list, argv,
                                            fragments):
    monkeypatch.chdir(tmp_path)
    argv = [str(entropy_list) if a == "E" else a for a in argv]
    capsys.readouterr()
    _one_line_error(capsys, argv, *fragments)
    assert not (tmp_path / "o.txt").exists()


def test_entropy_list_with_nan_is_rejected(capsys, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\t0.5\t1\n1\tnan\t2\n")
    _one_line_error(capsys, ["select", "--entropy", str(bad), "--method", "p1", "--size", "1",
                             "--out", str(tmp_path / "o.txt")], "bad.tsv")
    assert not (tmp_path / "o.txt").exists()


def test_bench_query_by_key_and_by_genotype_agree(capsys):
    from nasforge.benchmarks import TabularBenchmark, genotype_of
    from nasforge.benchmarks.tabular import cell_from_key
    from nasforge.spaces.darts.genotype import format_genotype

    key = "sep_conv_3x3~0|skip_connect~1+max_pool_3x3~0|sep_conv_3x3~2"
    expected = TabularBenchmark.load().query(key)
    assert main(["bench", "query", key, "--json"]) == 0
    by_key = json.loads(capsys.readouterr().out)
    text = format_genotype(genotype_of(cell_from_key(key)))
    assert main(["bench", "query", text, "--json"]) == 0
    by_genotype = json.loads(capsys.readouterr().out)
    assert by_key == by_genotype
    assert by_key["test_acc_mean"] == pytest.approx(expected["test_acc_mean"])
    assert by_key["test_acc_mean"] == pytest.approx(sum(by_key["test_acc"]) / 2)


def test_plot_strengths_and_landscape_of_a_btnas_run(capsys, tmp_path, proxy_file):
    run = tmp_path / "run"
    sets = [a for s in [*TINY_SEARCH, "search.epochs=1", "search.batch_size=64"]
            for a in ("--set", s)]
    assert main(["search", "--algo", "btnas", "--proxy", str(proxy_file), *sets,
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["plot", "strengths", str(run), "--rule", "topk", "--k", "6",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "landscape", str(run), "--points", "3", "--batches", "1",
                 "--json", str(tmp_path / "l.json"), "--out", str(tmp_path / "l.png")]) == 0
    grid = json.loads((tmp_path / "l.json").read_text())
    grid = grid[0] if isinstance(grid, list) else next(iter(grid.values()))
    assert len(grid["loss"]) == 3 and all(len(row) == 3 for row in grid["loss"])
    assert grid["loss"][1][1] == pytest.approx(grid["theta_loss"])
    capsys.readouterr()
    _one_line_error(capsys, ["plot", "strengths", str(run), "--k", "6",
                             "--out", str(tmp_path / "x.png")], "--k and --act-all need --rule")
