"""`nasforge snn describe --model NAME`: Table 5.4's baseline rows from `describe` (issue 13).

Parameter counts are the thesis's (Table 5.4, millions on CIFAR-10; the exact counts are
pinned in test_baselines.py). Neurons are counted per image and time step from the layer
lists by hand: every PLIF's output map (the stem's, each conv's, each SRB's two, each
average pool's, each hidden FC's) plus the 10·classes voting neurons of the head.
"""

import json

import pytest
import torch

from nasforge.cli import main
from nasforge.snn.baselines import SNN_MODELS, build_snn_model, describe_snn_model

TABLE_5_4 = {
    "cifarnet-wu": {16: 0.71, 32: 2.83, 64: 11.28, 128: 45.05},
    "cifarnet-fang": {16: 0.16, 32: 0.60, 64: 2.34, 128: 9.23, 256: 36.72},
    "resnet11-lee": {16: 1.16, 32: 4.60, 64: 18.30},  # the thesis prints 1.17 (1.1648)
    "resnet19-zheng": {16: 0.23, 32: 0.93, 64: 3.68, 128: 14.69},
}
ROWS = [(name, c, m) for name, row in TABLE_5_4.items() for c, m in row.items()]

pytestmark = pytest.mark.usefixtures("one_thread")


def _neurons(name: str, c: int, classes: int = 10) -> int:
    """Per image and time step on 32×32 inputs: maps at 32² (a), 16² (b), 8² (d), 4² (e)."""
    a, b, d, e = 1024, 256, 64, 16
    head = 10 * classes
    if name == "cifarnet-wu":  # stem, conv, pool, conv, pool, conv, conv, FC 8C, FC 4C
        return c * a + 2 * c * a + 2 * c * b + 4 * c * b + 4 * c * d + 8 * c * d + 4 * c * d \
            + 8 * c + 4 * c + head
    if name == "cifarnet-fang":  # stem + 2 convs at 32², 3 convs at 16², FC 8C
        return 3 * c * a + 3 * c * b + 8 * c + head
    if name == "resnet11-lee":  # stem, pool, SRBs at 16², 8², 8², 4², FC 16C
        return c * a + c * b + 2 * 2 * c * b + 2 * 4 * c * d + 2 * 8 * c * d \
            + 2 * 8 * c * e + 16 * c + head
    # resnet19-zheng: stem, 3 SRBs at 32², 3 at 16² (2C), 2 at 8² (4C), pool to 4², FC 2C
    return c * a + 3 * 2 * c * a + 3 * 2 * 2 * c * b + 2 * 2 * 4 * c * d + 4 * c * e \
        + 2 * c + head


def test_cli_takes_every_registered_baseline():
    from nasforge.cli import build_parser

    assert sorted(TABLE_5_4) == SNN_MODELS.names()
    for name in SNN_MODELS.names():
        args = build_parser().parse_args(["snn", "describe", "--model", name])
        assert args.model == name and args.arch is None


@pytest.mark.parametrize(("name", "channels", "millions"), ROWS)
def test_describe_gives_table_5_4_parameters_and_neurons(name, channels, millions):
    # parameters and neurons per step do not depend on T: one step keeps the big rows quick
    info = describe_snn_model(name, channels, "cifar10", timesteps=1)
    assert round(info["params_m"], 2) == millions
    with torch.device("meta"):
        built = build_snn_model(name, channels)
    assert info["params"] == sum(p.numel() for p in built.parameters())
    assert info["neurons"] == _neurons(name, channels)


@pytest.mark.parametrize("name", sorted(TABLE_5_4))
def test_cli_describe_model(capsys, name):
    assert main(["snn", "describe", "--model", name, "--channels", "16", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["model"], info["channels"], info["timesteps"]) == (name, 16, 8)
    assert round(info["params_m"], 2) == TABLE_5_4[name][16]
    assert info["neurons"] == _neurons(name, 16)
    assert main(["snn", "describe", "--model", name, "--channels", "16"]) == 0
    line = capsys.readouterr().out
    assert f"params: {TABLE_5_4[name][16]:.2f}M" in line and f"{_neurons(name, 16):,}" in line


def test_cli_describe_model_measures_spikes_on_digits(capsys):
    assert main(["snn", "describe", "--model", "cifarnet-fang", "--channels", "4",
                 "--dataset", "digits", "--timesteps", "2", "--measure", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["data"] == "digits" and info["spikes_per_image"] >= 0
    # digits: 1×8×8 in, maps 8² then 4² (after the first max pool), 2² after the second
    assert info["neurons"] == 3 * 4 * 64 + 3 * 4 * 16 + 8 * 4 + 100


@pytest.mark.parametrize(("args", "words"), [
    (["--channels", "16"], ["--arch", "--model"]),
    (["--model", "cifarnet-wu", "--arch", "SRB_k3,SRB_k3,SRB_k3,SRB_k3,SRB_k3"], ["not both"]),
    (["--model", "cifarnet-wu", "--variant", "v2"], ["--variant"]),
    (["--model", "cifarnet-wu", "--dataset", "mnist"], ["mnist"]),
    (["--model", "vgg"], ["vgg"]),
    (["--model", "cifarnet-wu", "--channels", "100000"], ["values in the first layer"]),
    (["--model", "cifarnet-wu", "--channels", "2000", "--timesteps", "1", "--dataset",
      "digits"], ["cifarnet-wu with C=2000", "up to 50,000,000 parameters"]),
    (["--model", "resnet11-lee", "--timesteps", "0"], ["--timesteps", "1..256"]),
])
def test_cli_describe_model_errors(capsys, args, words):
    assert main(["snn", "describe", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err
