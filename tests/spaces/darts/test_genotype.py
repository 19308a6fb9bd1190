"""Genotype text/JSON forms, known genotypes and validation messages."""

import json

import pytest

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import (
    CellGenotype,
    Genotype,
    format_genotype,
    genotype_from_json,
    genotype_to_json,
    is_darts_cell,
    load_genotype,
    parse_genotype,
    validate_genotype,
)
from nasforge.spaces.darts.known_genotypes import KNOWN_GENOTYPES

DARTS_V2_MULTILINE = """
DARTS_V2 = Genotype(
    normal=[
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),  # node 2
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ],
    normal_concat=range(2, 6),
    reduce=[
        ('max_pool_3x3', 0), ('max_pool_3x3', 1),
        ('skip_connect', 2), ('max_pool_3x3', 1),
        ('max_pool_3x3', 0), ('skip_connect', 2),
        ('skip_connect', 2), ('max_pool_3x3', 1),
    ],
    reduce_concat=[2, 3, 4, 5],
)
"""

# Two ops share edge 0->2, node 3 has no input (inactive), node 4 reads node 2 only.
EXT_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0, 2), ('skip_connect', 0, 2), ('dil_conv_3x3', 1, 4),"
    " ('max_pool_3x3', 2, 4)], normal_concat=[2, 4],"
    " reduce=[('avg_pool_3x3', 1, 5)], reduce_concat=[5])"
)


def ext() -> Genotype:
    return Genotype(
        normal=CellGenotype(
            ops=(
                ("sep_conv_3x3", 0, 2),
                ("skip_connect", 0, 2),
                ("dil_conv_3x3", 1, 4),
                ("max_pool_3x3", 2, 4),
            ),
            concat=(2, 4),
        ),
        reduce=CellGenotype(ops=(("avg_pool_3x3", 1, 5),), concat=(5,)),
    )


def with_normal(ops, concat=(2,)) -> Genotype:
    return Genotype(CellGenotype(tuple(ops), tuple(concat)), ext().reduce)


# --------------------------------------------------------------------------- parsing


def test_darts_v2_round_trip_and_published_text_reproduced():
    g = parse_genotype(KNOWN_GENOTYPES["DARTS_V2"])
    text = format_genotype(g)
    assert parse_genotype(text) == g
    # The pair form printed by DARTS itself comes back character for character.
    assert text == KNOWN_GENOTYPES["DARTS_V2"]


def test_pairs_go_two_per_node_in_order():
    g = load_genotype("DARTS_V2")
    assert g.normal.ops[:4] == (
        ("sep_conv_3x3", 0, 2),
        ("sep_conv_3x3", 1, 2),
        ("sep_conv_3x3", 0, 3),
        ("sep_conv_3x3", 1, 3),
    )
    assert g.normal.ops[-1] == ("dil_conv_3x3", 2, 5)
    assert [node for _, _, node in g.reduce.ops] == [2, 2, 3, 3, 4, 4, 5, 5]
    assert g.normal.concat == (2, 3, 4, 5)


def test_multiline_double_quotes_range_comments_and_assignment_load_unchanged():
    assert parse_genotype(DARTS_V2_MULTILINE) == load_genotype("DARTS_V2")


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_every_known_genotype_loads_and_round_trips(name):
    g = load_genotype(name)
    assert is_darts_cell(g.normal) and is_darts_cell(g.reduce)
    assert g.normal.concat == (2, 3, 4, 5)  # range(2, 6) where published that way
    assert parse_genotype(format_genotype(g)) == g
    validate_genotype(g, nodes=4)


def test_known_genotypes_include_the_darts_paper_cells():
    v1 = load_genotype("DARTS_V1")
    assert v1.normal.ops[-1] == ("skip_connect", 2, 5)
    assert v1.reduce.ops[-1] == ("avg_pool_3x3", 0, 5)
    assert v1 != load_genotype("DARTS_V2")


def test_extcell_round_trip_uses_triples():
    g = parse_genotype(EXT_TEXT)
    assert g == ext()
    assert g.normal.active_nodes() == (2, 4)
    text = format_genotype(g)
    assert "('sep_conv_3x3', 0, 2), ('skip_connect', 0, 2)" in text
    assert parse_genotype(text) == g


def test_json_round_trip_and_json_text():
    for g in (ext(), load_genotype("PC_DARTS")):
        d = genotype_to_json(g)
        assert json.loads(json.dumps(d)) == d
        assert genotype_from_json(d) == g
        assert parse_genotype(json.dumps(d, indent=2)) == g
    assert genotype_to_json(ext())["normal"][0] == ["sep_conv_3x3", 0, 2]
    assert genotype_to_json(ext())["normal_concat"] == [2, 4]


def test_format_uses_triples_when_one_cell_is_not_darts():
    darts = load_genotype("DARTS_V2")
    mixed = Genotype(darts.normal, ext().reduce)
    text = format_genotype(mixed)
    assert "('sep_conv_3x3', 0, 2)" in text
    assert parse_genotype(text) == mixed


def test_darts_cell_out_of_node_order_still_round_trips():
    ops = list(load_genotype("DARTS_V2").normal.ops)
    ops[0], ops[2] = ops[2], ops[0]  # node 3's op listed first
    g = Genotype(CellGenotype(tuple(ops), (2, 3, 4, 5)), load_genotype("DARTS_V2").reduce)
    assert is_darts_cell(g.normal)
    assert parse_genotype(format_genotype(g)) == g


def test_is_darts_cell():
    g = load_genotype("DARTS_V2")
    assert is_darts_cell(g.normal)
    assert not is_darts_cell(g.normal, nodes=5)
    assert not is_darts_cell(CellGenotype(g.normal.ops, (2, 3, 4)))
    assert not is_darts_cell(ext().normal)


# --------------------------------------------------------------------------- malformed text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Genotype(normal=[('skip_connect', 0)", "invalid syntax"),
        ("__import__('os').system('echo hacked')", "expected Genotype(...)"),
        ("Genotype(normal=open('x'), normal_concat=[2], reduce=[], reduce_concat=[2])", "literal"),
        ("Genotype(normal=[('skip_connect', 0)], normal_concat=[2])", "missing reduce"),
        (
            "Genotype(normal=[('skip_connect', 0)], normal_concat=[2],"
            " reduce=[('skip_connect', 0)], reduce_concat=[2], extra=1)",
            "unexpected field 'extra'",
        ),
        (
            "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1, 2)], normal_concat=[2],"
            " reduce=[], reduce_concat=[])",
            "mixes",
        ),
        (
            "Genotype(normal=[('skip_connect', 0)], normal_concat=[2],"
            " reduce=[('skip_connect', 0)], reduce_concat=[2])",
            "two per node",
        ),
        (
            "Genotype(normal=[('skip_connect', '0', 2)], normal_concat=[2],"
            " reduce=[], reduce_concat=[])",
            "normal entry 0",
        ),
        ('{"normal": [["skip_connect", 0, 2]], "normal_concat": [2]', "invalid JSON"),
    ],
)
def test_malformed_text_is_one_line_error(text, reason):
    with pytest.raises(NasforgeError) as err:
        parse_genotype(text)
    msg = str(err.value)
    assert msg.startswith("cannot parse genotype: ")
    assert reason in msg
    assert "\n" not in msg


def test_parse_error_quotes_a_short_excerpt():
    text = "Genotype(" + "('skip_connect', 0), " * 50
    msg = str(pytest.raises(NasforgeError, parse_genotype, text).value)
    assert "in 'Genotype(('skip_connect'" in msg and len(msg) < 200


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("ops", "concat", "message"),
    [
        ([("sep_conv_7x7", 0, 2)], (2,), "unknown op 'sep_conv_7x7' in normal cell; allowed: "),
        ([("none", 0, 2)], (2,), "'none' cannot be a chosen op"),
        (
            [("sep_conv_3x3", 0, 2), ("sep_conv_3x3", 0, 4), ("skip_connect", 4, 3)],
            (2, 3, 4),
            "op 'skip_connect' into node 3 reads node 4, which is not an earlier node",
        ),
        ([("skip_connect", 2, 2)], (2,), "reads node 2, which is not an earlier node"),
        ([("skip_connect", -1, 2)], (2,), "reads node -1, which is not an earlier node"),
        (
            [("skip_connect", 2, 3), ("sep_conv_3x3", 3, 4)],
            (3, 4),
            "normal cell: no intermediate node is reachable from the cell inputs",
        ),
        ([("skip_connect", 0, 1)], (2,), "goes into node 1"),
        ([("skip_connect", 0, 2)], (2, 5), "normal_concat lists node 5, which has no input"),
        ([("skip_connect", 0, 2)], (2, 2), "normal_concat lists node 2 2 times"),
        ([("skip_connect", 0, 2)], (), "normal_concat is empty"),
        ([], (), "normal cell has no active node"),
    ],
)
def test_validation_messages(ops, concat, message):
    with pytest.raises(NasforgeError) as err:
        validate_genotype(with_normal(ops, concat))
    assert message in str(err.value)


def test_unknown_op_lists_allowed_ops_without_none():
    msg = str(pytest.raises(NasforgeError, validate_genotype, with_normal([("conv", 0, 2)])).value)
    assert "sep_conv_3x3" in msg and "'none'" not in msg and "none," not in msg


def test_node_limit_applies_only_when_given():
    g = with_normal([("skip_connect", 0, 2), ("skip_connect", 2, 7)], (7,))
    validate_genotype(g)
    with pytest.raises(NasforgeError, match=r"normal cell: node 7 is outside 2\.\.5"):
        validate_genotype(g, nodes=4)
    cell = CellGenotype((("skip_connect", 0, 2),), (2,))
    validate_genotype(Genotype(cell, cell), nodes=1)


def test_reduce_concat_message_names_the_cell():
    g = Genotype(ext().normal, CellGenotype((("skip_connect", 0, 2),), (2, 5)))
    with pytest.raises(NasforgeError, match="reduce_concat lists node 5, which has no input"):
        validate_genotype(g)


def test_custom_primitives():
    g = with_normal([("noise", 0, 2)])
    with pytest.raises(NasforgeError, match="unknown op 'noise'"):
        validate_genotype(g)
    prims = ("sep_conv_3x3", "noise", "avg_pool_3x3")
    validate_genotype(g, primitives=prims)
    text = format_genotype(g)
    assert parse_genotype(text, primitives=prims) == g
    with pytest.raises(NasforgeError, match="unknown op 'noise'"):
        parse_genotype(text)


def test_parse_validates():
    text = EXT_TEXT.replace("('max_pool_3x3', 2, 4)", "('max_pool_3x3', 5, 4)")
    with pytest.raises(NasforgeError, match="reads node 5, which is not an earlier node"):
        parse_genotype(text)


def test_an_op_reading_a_node_without_input_is_a_valid_dead_op():
    """Top-k ExtCells may keep such an op: it stays in the genotype (k ops), carries nothing."""
    g = with_normal([("sep_conv_3x3", 0, 2), ("skip_connect", 3, 4)], (2, 4))
    validate_genotype(g)


# --------------------------------------------------------------------------- loading


def test_load_from_text_file_json_file_name_and_text(tmp_path):
    text_file = tmp_path / "cell.txt"
    text_file.write_text(DARTS_V2_MULTILINE)
    json_file = tmp_path / "cell.json"
    json_file.write_text(json.dumps(genotype_to_json(ext())))
    assert load_genotype(text_file) == load_genotype("DARTS_V2")
    assert load_genotype(str(json_file)) == ext()
    assert load_genotype(EXT_TEXT) == ext()


def test_load_unknown_name_lists_known_names(tmp_path):
    for source in ("darts_v2", str(tmp_path / "missing.json")):
        msg = str(pytest.raises(NasforgeError, load_genotype, source).value)
        assert "not a file" in msg and "DARTS_V2" in msg and "PDARTS" in msg


def test_load_bad_text_reports_parse_error():
    with pytest.raises(NasforgeError, match="cannot parse genotype"):
        load_genotype("Genotype(normal=[")
    with pytest.raises(NasforgeError, match="cannot parse genotype"):
        load_genotype("x" * 5000 + "(")  # too long to be a file name
