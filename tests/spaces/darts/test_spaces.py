import pytest
import torch

from conftest import TINY_SEARCH
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.search.loop import run_search
from nasforge.spaces.darts.genotype import PRIMITIVES, parse_genotype
from nasforge.spaces.darts.ops import OPS
from nasforge.spaces.darts.spaces import SPACES


def test_registered_spaces_and_their_ops():
    assert SPACES.get("darts").primitives == PRIMITIVES
    assert SPACES.get("s2").primitives == ("sep_conv_3x3", "skip_connect")
    assert SPACES.get("s3").primitives == ("none", "sep_conv_3x3", "skip_connect")
    assert SPACES.get("s4").primitives == ("sep_conv_3x3", "noise")
    for name in SPACES.names():
        assert all(op in OPS for op in SPACES.get(name).primitives)
    with pytest.raises(NasforgeError, match="unknown search space 's9'"):
        SPACES.get("s9")


def test_noise_op_ignores_its_input_and_is_standard_normal():
    torch.manual_seed(0)
    op = OPS["noise"](8, 1, False)
    x = torch.full((16, 8, 6, 6), 7.0)
    y = op(x)
    assert y.shape == x.shape
    assert abs(float(y.mean())) < 0.05 and abs(float(y.std()) - 1) < 0.05
    assert OPS["noise"](8, 2, False)(x).shape == (16, 8, 3, 3)


@pytest.mark.parametrize("space, rule", [("s2", "argmax"), ("s4", "topk")])
def test_search_in_a_restricted_space_uses_only_its_ops(tmp_path, proxy_file, space, rule):
    extra = ["search.rule=topk", "search.k=10"] if rule == "topk" else []
    cfg = load_config(None, [*TINY_SEARCH, "search.epochs=1", f"search.space={space}",
                             "search.nodes=4", "search.algo=btnas", *extra,
                             f"data.proxy={proxy_file}"])
    res = run_search(cfg, tmp_path / "run")
    allowed = SPACES.get(space).primitives
    g = parse_genotype(res["genotype"], primitives=allowed)
    ops = {op for cell in (g.normal, g.reduce) for op, _, _ in cell.ops}
    assert ops <= set(allowed) - {"none"}
    if rule == "topk":
        assert len(g.normal.ops) + len(g.reduce.ops) == 10
