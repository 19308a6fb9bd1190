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
