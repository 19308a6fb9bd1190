"""Cell diagrams: valid PNGs with one arrow per op and per concatenated node."""

import matplotlib.image as mpimg

from nasforge.analysis.cell_plot import cell_figure, count_arrows, draw_cell, draw_genotype
from nasforge.spaces.darts.genotype import CellGenotype, load_genotype

# Three ops on edge 0->2, node 3 inactive, node 5 active but not concatenated.
EXT = CellGenotype(
    ops=(
        ("sep_conv_3x3", 0, 2),
        ("skip_connect", 0, 2),
        ("max_pool_3x3", 0, 2),
        ("dil_conv_5x5", 1, 4),
        ("avg_pool_3x3", 2, 4),
        ("noise", 4, 5),
    ),
    concat=(2, 4),
)


def test_draw_cell_writes_a_png(tmp_path):
    path = draw_cell(EXT, tmp_path / "sub" / "ext.png", title="ExtCell")
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_one_arrow_per_op_and_concat_node():
    for cell in (EXT, load_genotype("DARTS_V2").normal):
        fig = cell_figure(cell, title="t")
        assert count_arrows(fig) == len(cell.ops) + len(cell.concat)


def test_inactive_nodes_are_not_drawn():
    fig = cell_figure(EXT)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"2", "4", "5"} <= labels and "3" not in labels
    # Each op is labelled, shared edges included.
    assert sum(t.get_text() == "sep_conv_3x3" for t in fig.axes[0].texts) == 1
    assert {"skip_connect", "max_pool_3x3", "noise"} <= labels


def test_draw_genotype(tmp_path):
    paths = draw_genotype(load_genotype("PDARTS"), tmp_path, prefix="pdarts_")
    assert set(paths) == {"normal", "reduce"}
    assert paths["normal"] == tmp_path / "pdarts_normal.png"
    for path in paths.values():
        assert mpimg.imread(path).shape[2] in (3, 4)
