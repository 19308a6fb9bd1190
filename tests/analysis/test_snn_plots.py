"""Chapter-5 plots: the drawn numbers are the input's, the diagram follows the backbone layout."""

import random

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection

from nasforge.analysis.snn_plots import (
    MIN_MARKER_AREA,
    accuracy_vs_spikes_figure,
    diagram_boxes,
    layer_spikes_figure,
    marker_area,
    pareto_front,
    plot_accuracy_vs_spikes,
    plot_layer_spikes,
    plot_search_history,
    plot_snn_architecture,
    plot_space_quality,
    round_fitness,
    search_history_figure,
    short_layer_name,
    space_quality_figure,
)
from nasforge.errors import NasforgeError

POINTS = [
    {"label": "CIFARNet-Fang", "acc": 91.4, "spikes": 520_000, "params_m": 11.0, "channels": 128,
     "kind": "hand-crafted", "timesteps": 8},
    {"label": "CIFARNet-Fang", "acc": 89.9, "spikes": 300_000, "params_m": 2.8, "channels": 64,
     "kind": "hand-crafted", "timesteps": 8},
    {"label": "AutoSNN", "acc": 93.1, "spikes": 310_000, "params_m": 5.4, "channels": 128,
     "timesteps": 8},
    {"label": "AutoSNN", "acc": 91.0, "spikes": 108_000, "params_m": 0.4, "channels": 32,
     "timesteps": 8},
    {"label": "AutoSNN", "acc": 90.2, "spikes": 90_000, "params_m": 5.4, "channels": 128,
     "timesteps": 4},
    {"label": "ResNet19-Zheng", "acc": 90.0, "spikes": 900_000, "params_m": 12.6,
     "kind": "hand-crafted", "timesteps": 4},
]


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 0
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def _dominates(q, p):
    return (q["spikes"] <= p["spikes"] and q["acc"] >= p["acc"]
            and (q["spikes"] < p["spikes"] or q["acc"] > p["acc"]))


def test_pareto_front_equals_brute_force():
    rng = random.Random(0)
    for trial in range(60):
        n = rng.randint(0, 25)
        grid = trial % 2 == 0  # small integer grid: many ties and duplicates
        pts = [{"spikes": rng.randint(0, 6) if grid else rng.uniform(0, 1e5),
                "acc": rng.randint(0, 6) if grid else rng.uniform(50, 95)} for _ in range(n)]
        expected = {id(p) for p in pts if not any(_dominates(q, p) for q in pts)}
        front = pareto_front(pts)
        assert {id(p) for p in front} == expected and len(front) == len(expected)
        assert [p["spikes"] for p in front] == sorted(p["spikes"] for p in front)


def test_accuracy_vs_spikes_panels_sizes_and_front(tmp_path):
    fig = accuracy_vs_spikes_figure(POINTS, title="t")
    try:
        assert len(fig.axes) == 2
        assert [ax.get_title() for ax in fig.axes] == ["T = 4", "T = 8"]
        for ax, t in zip(fig.axes, (4, 8), strict=True):
            mine = [p for p in POINTS if p["timesteps"] == t]
            drawn = {}
            for coll in ax.collections:
                if isinstance(coll, PathCollection):
                    sizes = coll.get_sizes()
                    for k, (x, y) in enumerate(coll.get_offsets()):
                        drawn[(float(x), float(y))] = float(sizes[k % len(sizes)])
            assert set(drawn) == {(p["spikes"], p["acc"]) for p in mine}
            for p in mine:
                area = drawn[(p["spikes"], p["acc"])]
                assert area == pytest.approx(max(MIN_MARKER_AREA, marker_area(p["params_m"])))
            # area per million parameters is one constant above the minimum
            big = [p for p in mine if marker_area(p["params_m"]) > MIN_MARKER_AREA]
            ratios = {round(drawn[(p["spikes"], p["acc"])] / p["params_m"], 6) for p in big}
            assert len(ratios) == 1
            step = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
            front = pareto_front(mine)
            assert len(step) == 1
            xs = sorted(set(map(float, step[0].get_xdata())))
            assert xs == sorted({float(p["spikes"]) for p in front})
        # one label keeps one colour in both panels
        colours = {}
        for ax in fig.axes:
            for coll in ax.collections:
                colours.setdefault(coll.get_gid(), set()).add(tuple(coll.get_facecolor()[0][:3]))
        assert all(len(c) == 1 for c in colours.values())
    finally:
        plt.close(fig)
    single = accuracy_vs_spikes_figure([p for p in POINTS if p["timesteps"] == 8])
    assert len(single.axes) == 1 and single.axes[0].get_title() == ""
    plt.close(single)
    assert marker_area(0.01) == MIN_MARKER_AREA
    assert marker_area(10) == pytest.approx(2 * marker_area(5))
    with pytest.raises(NasforgeError, match="kind"):
        accuracy_vs_spikes_figure([{**POINTS[0], "kind": "magic"}])
    _assert_png(plot_accuracy_vs_spikes(POINTS, tmp_path / "sub" / "acc.png", title="Fig 5.12"))


def test_pareto_front_of_fig51_points():
    eight = [p for p in POINTS if p["timesteps"] == 8]
    assert [p["spikes"] for p in pareto_front(eight)] == [108_000, 310_000]


PROFILES = {
    "proposed": {"per_layer": {"stem.neuron": 12000.0, "body.0.body.1": 8000.0,
                               "body.1": 2500.0, "head.neuron": 40.0},
                 "rates": {"stem.neuron": 0.2, "body.0.body.1": 0.15, "body.1": 0.3,
                           "head.neuron": 0.05}},
    "variant 1": {"per_layer": {"stem.neuron": 11000.0, "body.0.body.1": 9000.0,
                                "body.1": 3000.0, "gap.neuron": 300.0, "head.neuron": 60.0},
                  "rates": {"stem.neuron": 0.18, "body.0.body.1": 0.16, "body.1": 0.35,
                            "gap.neuron": 0.4, "head.neuron": 0.06}},
}


def test_layer_spikes_bar_heights_and_rates(tmp_path):
    fig = layer_spikes_figure(PROFILES)
    try:
        ax_sp, ax_rate = fig.axes
        for label, profile in PROFILES.items():
            container = next(c for c in ax_sp.containers if c.get_label() == label)
            heights = [bar.get_height() for bar in container.patches]
            assert heights == list(profile["per_layer"].values())
            centres = [bar.get_x() + bar.get_width() / 2 for bar in container.patches]
            assert [round(c) for c in centres] == list(range(len(heights)))
            line = next(ln for ln in ax_rate.get_lines() if ln.get_label() == label)
            assert list(line.get_ydata()) == list(profile["rates"].values())
        ticks = [t.get_text() for t in ax_sp.get_xticklabels()]
        assert ticks == ["stem", "b0.1", "b1", "head/gap", "head"]
        assert ax_sp.get_xlabel() == "layer (forward order)"
    finally:
        plt.close(fig)
    _assert_png(plot_layer_spikes(PROFILES, tmp_path / "layers.png", title="Fig 5.4"))


def test_short_layer_names():
    assert short_layer_name("body.0.body.1") == "b0.1"
    assert short_layer_name("body.2.out") == "b2.out"
    assert short_layer_name("body.7.1") == "b7.1"
    assert short_layer_name("stem.neuron") == "stem"
    assert short_layer_name("stem.extra.2.something.long").endswith("…")


def test_space_quality(tmp_path):
    rng = random.Random(1)
    spaces = {name: [(rng.uniform(5e4, 3e5), rng.uniform(70, 90)) for _ in range(30)]
              for name in ("proposed", "variant 1", "variant 2")}
    fig = space_quality_figure(spaces)
    try:
        ax_sc, ax_cdf = fig.axes
        for name, pairs in spaces.items():
            coll = next(c for c in ax_sc.collections if c.get_gid() == name)
            assert [tuple(map(float, o)) for o in coll.get_offsets()] == pairs
            line = next(ln for ln in ax_cdf.get_lines() if ln.get_gid() == name)
            ys = list(line.get_ydata())
            assert ys[0] == 0.0 and ys[-1] == 1.0 and ys == sorted(ys)
            assert list(line.get_xdata())[1:] == sorted(a for _, a in pairs)
    finally:
        plt.close(fig)
    _assert_png(plot_space_quality(spaces, tmp_path / "quality.png", title="Fig 5.8"))


ARCH = ["SRB_k5", "SRB_k5", "skip", "SRB_k3", "SRB_k5"]
HEAD = [("FC", "head"), ("PLIF", "head"), ("Voting", "head")]


def test_diagram_boxes_default_and_variants():
    assert diagram_boxes(ARCH) == [
        ("Input", "io"), ("Stem", "stem"),
        ("SRB_k5", "SRB"), ("MaxPool", "pool"),
        ("SRB_k5", "SRB"), ("skip", "skip"), ("MaxPool", "pool"),
        ("SRB_k3", "SRB"), ("SRB_k5", "SRB"), ("MaxPool", "pool"),
        *HEAD,
    ]
    assert diagram_boxes(",".join(ARCH)) == diagram_boxes(ARCH)
    v1 = diagram_boxes(ARCH, variant="v1")
    assert v1[-4] == ("GAP+PLIF", "pool") and v1[:-4] == diagram_boxes(ARCH)[:-3]
    v3 = diagram_boxes(ARCH, variant="v3")
    assert [t for t, _ in v3].count("AvgPool+PLIF") == 3 and ("MaxPool", "pool") not in v3
    eight = ["SCB_k3", "SRB_k3", "skip", "SIB_k3_e1", "SRB_k5", "SCB_k5", "skip", "SRB_k3"]
    for kwargs in ({"variant": "v2"}, {"space": "v2-8tbd"}, {"variant": "v2", "space": "v2-8tbd"}):
        boxes = diagram_boxes(eight, **kwargs)
        assert all(t != "MaxPool" and k != "pool" for t, k in boxes)
        assert [t for t, _ in boxes[2:-3]] == eight
        assert ("SIB_k3_e1", "SIB") in boxes and ("SCB_k3", "SCB") in boxes


def test_diagram_rejects_wrong_arch():
    with pytest.raises(NasforgeError, match="needs 5 blocks, got 4") as err:
        diagram_boxes(ARCH[:4])
    assert "\n" not in str(err.value)
    with pytest.raises(NasforgeError, match="needs 8 blocks"):
        diagram_boxes(ARCH, space="v2-8tbd")
    with pytest.raises(NasforgeError, match="unknown SNN block"):
        diagram_boxes(["SRB_k7", *ARCH[1:]])
    with pytest.raises(NasforgeError, match="unknown variant"):
        diagram_boxes(ARCH, variant="v9")


def test_architecture_png(tmp_path):
    _assert_png(plot_snn_architecture(ARCH, tmp_path / "arch.png", title="Fig 5.11"))
    _assert_png(plot_snn_architecture(ARCH, tmp_path / "v1.png", variant="v1"))


HISTORY = [
    {"arch": "SRB_k5,skip,SRB_k3,SCB_k3,skip", "acc": 80.0, "spikes": 9e4, "fitness": 0.70,
     "round": 1},
    {"arch": "SCB_k3,SCB_k3,SCB_k3,SCB_k3,SCB_k3", "acc": 82.0, "spikes": 1.4e5,
     "fitness": 0.72, "round": 1},
    {"arch": "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", "acc": 85.0, "spikes": 1.1e5, "fitness": 0.80,
     "round": 2},
    {"arch": "skip,skip,skip,skip,skip", "acc": 40.0, "spikes": 2e4, "fitness": 0.30,
     "round": 2},
    {"arch": "SRB_k3,SRB_k3,SRB_k3,SRB_k3,SRB_k3", "acc": 84.0, "spikes": 1.5e5, "fitness": 0.75,
     "round": 3},
]


def test_search_history(tmp_path):
    rounds, best, mean = round_fitness(HISTORY)
    assert rounds == [1, 2, 3]
    assert best == [0.72, 0.80, 0.80]
    assert mean == pytest.approx([0.71, 0.55, 0.75])
    fig = search_history_figure(HISTORY)
    try:
        assert len(fig.axes) == 3  # two panels and the round colorbar
        star = next(c for c in fig.axes[0].collections if c.get_gid() == "best")
        assert tuple(map(float, star.get_offsets()[0])) == (1.1e5, 85.0)
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert texts == ["SRB_k5, SRB_k5, skip, SRB_k3, SRB_k5"]
        lines = {ln.get_gid(): list(ln.get_ydata()) for ln in fig.axes[1].get_lines()}
        assert lines["best"] == best and lines["mean"] == pytest.approx(mean)
    finally:
        plt.close(fig)
    fig = search_history_figure(HISTORY, best="SRB_k3, SRB_k3,SRB_k3,SRB_k3,SRB_k3")
    star = next(c for c in fig.axes[0].collections if c.get_gid() == "best")
    assert tuple(map(float, star.get_offsets()[0])) == (1.5e5, 84.0)
    plt.close(fig)
    with pytest.raises(NasforgeError, match="not in the search history"):
        search_history_figure(HISTORY, best="skip,skip")
    with pytest.raises(NasforgeError, match="empty"):
        search_history_figure([])
    _assert_png(plot_search_history(HISTORY, tmp_path / "history.png", best=HISTORY[2]["arch"]))
