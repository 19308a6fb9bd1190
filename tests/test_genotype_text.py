"""Genotype options take published text, a file, a run directory or a known name (issue 13).

Full published genotype texts are longer than a file name may be (255 bytes); they used to
be tried as a path first and `describe`/`train` exited 2 with "File name too long". The
texts below are copied from the authors' repositories (quark0/darts cnn/genotypes.py,
yuhuixu1993/PC-DARTS genotypes.py, chenxin061/pdarts genotypes.py), as printed there.
"""

import json

import pytest

from conftest import TINY_TRAIN
from nasforge.cli import main
from nasforge.spaces.darts.genotype import format_genotype, parse_genotype
from nasforge.spaces.darts.known_genotypes import KNOWN_GENOTYPES

PUBLISHED = {
    "DARTS_V1": "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "DARTS_V2": "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "PC_DARTS": "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",  # noqa: E501
    "PDARTS": "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))",  # noqa: E501
}
# An ExtCell (chapter 4): 10 ops as (op, input, node) triples, nodes with 1–4 inputs.
EXTCELL = ("Genotype(normal=[('sep_conv_3x3', 0, 2), ('sep_conv_3x3', 1, 2), "
           "('skip_connect', 0, 3), ('sep_conv_5x5', 1, 3), ('dil_conv_3x3', 2, 3), "
           "('sep_conv_3x3', 1, 4), ('skip_connect', 0, 5), ('sep_conv_3x3', 1, 5), "
           "('dil_conv_5x5', 3, 5), ('sep_conv_3x3', 4, 5)], normal_concat=[2, 3, 4, 5], "
           "reduce=[('max_pool_3x3', 0, 2), ('max_pool_3x3', 1, 2), ('skip_connect', 2, 3), "
           "('max_pool_3x3', 1, 3), ('avg_pool_3x3', 0, 4), ('sep_conv_5x5', 3, 4), "
           "('skip_connect', 2, 5), ('max_pool_3x3', 1, 5), ('dil_conv_3x3', 4, 5), "
           "('sep_conv_3x3', 0, 5)], reduce_concat=[2, 3, 4, 5])")
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["--dataset", "digits", "--channels", "4", "--layers", "5", "--json"]


def _describe(capsys, genotype: str) -> dict:
    assert main(["describe", "--genotype", genotype, *SMALL]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_known_names_are_the_published_texts(name):
    assert len(PUBLISHED[name].encode()) > 255  # too long for a file name: the old failure
    assert parse_genotype(KNOWN_GENOTYPES[name]) == parse_genotype(PUBLISHED[name])


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_describe_takes_published_text_like_its_name(capsys, name):
    """Text, known name, file and run directory describe the same network."""
    assert _describe(capsys, PUBLISHED[name]) == _describe(capsys, name)


def test_describe_takes_text_file_and_run_dir_alike(capsys, tmp_path):
    by_text = _describe(capsys, EXTCELL)
    assert by_text["params"] > 0
    (tmp_path / "cell.txt").write_text(EXTCELL + "\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "genotype.txt").write_text(format_genotype(parse_genotype(EXTCELL)) + "\n")
    assert _describe(capsys, str(tmp_path / "cell.txt")) == by_text
    assert _describe(capsys, str(run)) == by_text
    # a directory without genotype.txt is still a one-line user error
    assert main(["describe", "--genotype", str(tmp_path)]) == 2
    assert "without genotype.txt" in capsys.readouterr().err


def test_describe_long_text_that_is_no_genotype_is_a_parse_error(capsys):
    text = "Genotype(normal=[" + ", ".join(["('conv_9x9', 0)"] * 40) + "])"
    assert len(text) > 255
    assert main(["describe", "--genotype", text]) == 2
    err = capsys.readouterr().err
    assert "cannot parse" in err or "conv_9x9" in err
    assert "File name too long" not in err


def test_train_takes_published_text(capsys, tmp_path, monkeypatch):
    """`train --genotype TEXT` hands the published cell to the trainer (the training itself
    is tested in test_train.py; here it is replaced by a recorder to keep this test fast)."""
    import nasforge.train

    seen = {}

    def record(cfg, genotype, out, force=False):
        seen.update(genotype=genotype, out=out, epochs=cfg.train.epochs)
        return {"test_acc": 12.5, "params_m": 0.1}

    monkeypatch.setattr(nasforge.train, "run_train", record)
    sets = [arg for kv in [*TINY_TRAIN, "train.epochs=1"] for arg in ("--set", kv)]
    out = str(tmp_path / "train")
    rc = main(["train", "--genotype", PUBLISHED["PC_DARTS"], "--out", out, *sets])
    assert rc == 0, capsys.readouterr().err
    assert seen == {"genotype": parse_genotype(PUBLISHED["PC_DARTS"]), "out": out, "epochs": 1}
    assert "test accuracy: 12.50%" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["plot", "snn-arch"], ["snn", "train"]])
def test_snn_arch_text_is_not_tried_as_a_directory(capsys, tmp_path, command):
    """`--arch` (text or search directory) with text longer than a file name may be."""
    arch = ",".join(["SRB_k3"] * 60)
    assert len(arch) > 255
    assert main([*command, "--arch", arch, "--out", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert "File name too long" not in err and "60" in err, err
