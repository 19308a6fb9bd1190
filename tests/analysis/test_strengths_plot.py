"""Strength heatmaps: the drawn numbers are strengths.json's, kept ops are outlined, PNG written."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from nasforge.analysis.strengths_plot import plot_strengths, strengths_data, strengths_figure
from nasforge.errors import NasforgeError
from nasforge.search.loop import derive_from_run
from nasforge.spaces.darts.genotype import CellGenotype, Genotype, cell_edges

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def btnas_run(search_runs):
    return search_runs["btnas"]


def _kept_pairs(data, cell):
    rows, cols = np.nonzero(data.kept[cell])
    return {(data.rows[e], data.columns[k]) for e, k in zip(rows, cols, strict=True)}


def test_matrices_equal_strengths_json_exactly(btnas_run):
    saved = json.loads((btnas_run / "strengths.json").read_text())
    for source in (btnas_run, btnas_run / "strengths.json", saved):
        data = strengths_data(source)
        for cell in ("normal", "reduce"):
            assert data.cells[cell].tolist() == saved[cell]
        assert data.columns == saved["primitives"] and data.columns[0] == "none"
        assert data.rows == [f"{i}→{j}" for i, j in cell_edges(saved["nodes"])]
        assert data.algo == "btnas" and data.epoch == 0 and data.kept is None


def test_kept_ops_follow_the_rule(btnas_run):
    for rule, options in (("argmax", {}), ("topk", {"k": 5})):
        data = strengths_data(btnas_run, rule=rule, **options)
        genotype = derive_from_run(btnas_run, rule, **options)
        assert data.kept is not None
        for cell in ("normal", "reduce"):
            expected = {(f"{i}→{n}", op) for op, i, n in getattr(genotype, cell).ops}
            assert _kept_pairs(data, cell) == expected
        if rule == "topk":
            assert sum(int(m.sum()) for m in data.kept.values()) == 5
    # a genotype object marks the same cells as its rule
    genotype = derive_from_run(btnas_run, "argmax")
    by_genotype = strengths_data(btnas_run, genotype=genotype)
    by_rule = strengths_data(btnas_run, rule="argmax")
    assert all(np.array_equal(by_genotype.kept[c], by_rule.kept[c]) for c in ("normal", "reduce"))


def test_png_is_written_with_annotations_and_outlines(btnas_run, tmp_path):
    path = plot_strengths(btnas_run, tmp_path / "sub" / "strengths.png", rule="topk", k=6)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(path).shape[0] > 100
    data = strengths_data(btnas_run, rule="topk", k=6)
    fig = strengths_figure(data, title="t")
    edges, ops = data.cells["normal"].shape
    values = [t for ax in fig.axes for t in ax.texts]
    assert len(values) == 2 * edges * ops  # small grid: every value is written
    assert values[0].get_text() == format(data.cells["normal"][0, 0], ".2f")
    outlined = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "kept"]
    assert len(outlined) == 6
    assert sum(p.get_gid() == "none" for ax in fig.axes for p in ax.patches) == 2
    quiet = strengths_figure(data, annotate=False)
    assert not any(ax.texts for ax in quiet.axes)
    assert "btnas" in strengths_figure(data)._suptitle.get_text()


def test_none_is_kept_off_the_colour_scale():
    strengths = {"normal": [[0.9, 0.1, 0.2]] * 2, "reduce": [[0.8, 0.3, 0.4]] * 2,
                 "primitives": ["none", "skip_connect", "sep_conv_3x3"]}
    data = strengths_data(strengths)
    assert data.rows == ["0→2", "1→2"]  # one node inferred from two edges
    assert data.colour_range() == (0.1, 0.4)


def test_bad_inputs_are_user_errors(btnas_run, tmp_path):
    with pytest.raises(NasforgeError, match="either a genotype or a rule"):
        strengths_data(btnas_run, rule="argmax", genotype="DARTS_V2")
    with pytest.raises(NasforgeError, match="need a rule"):
        strengths_data(btnas_run, k=3)
    with pytest.raises(NasforgeError, match="not in this search space"):
        cell = CellGenotype(ops=(("sep_conv_3x3", 0, 5),), concat=(5,))
        strengths_data(btnas_run, genotype=Genotype(cell, cell))
    with pytest.raises(NasforgeError, match="no strengths.json"):
        strengths_data(tmp_path)
