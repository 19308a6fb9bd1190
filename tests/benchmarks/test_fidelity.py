"""Super-network fidelity (benchmarks/fidelity.py): every tabulated cell through a searched
super-network, ranked against the table."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import kendalltau

from conftest import TINY_SEARCH
from nasforge.benchmarks.fidelity import one_hot, plot_fidelity, supernet_fidelity
from nasforge.benchmarks.tabular import (
    TabularBenchmark,
    cell_from_key,
    cell_key,
    enumerate_cells,
    fixed_reduction_cell,
)
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.spaces import SPACES


@pytest.fixture(scope="module")
def tab_run(tmp_path_factory):
    """A 1-epoch DARTS search in the tabular-digits space on 64 digits."""
    from nasforge.config import load_config
    from nasforge.search.loop import run_search

    root = tmp_path_factory.mktemp("fidelity")
    proxy = root / "proxy.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config(None, [*TINY_SEARCH, "search.space=tabular-digits", "search.epochs=1",
                             f"data.proxy={proxy}"])
    run_search(cfg, root / "darts")
    torch.set_num_threads(threads)
    return root / "darts"


@pytest.fixture(scope="module")
def full(tab_run):
    """Every one of the 243 cells (computed once for the module)."""
    return supernet_fidelity(tab_run, "tabular-digits", split="val")


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """A 13-cell slice of tabular-digits as a table file, for the quicker checks."""
    import gzip
    import json

    from nasforge.benchmarks.tabular import DATA_DIR

    with gzip.open(DATA_DIR / "tabular_digits.json.gz", "rt") as fh:
        data = json.load(fh)
    keys = sorted(data["records"])[::20]
    data["records"] = {k: data["records"][k] for k in keys}
    path = tmp_path_factory.mktemp("table") / "small.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(data, fh)
    return path


def test_one_hot_marks_exactly_the_cells_edges_and_ops():
    prims = tuple(SPACES.get("tabular-digits").primitives)
    for cell in enumerate_cells()[::40] + [fixed_reduction_cell()]:
        w = one_hot(cell, prims, 2)
        assert w.shape == (5, len(prims)) and float(w.sum()) == 4.0
        back = {(prims[int(k)], inp, node) for (inp, node), row in
                zip([(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)], w, strict=True)
                for k in row.nonzero().flatten()}
        assert back == set(cell.ops)


def test_fidelity_scores_every_tabulated_cell(full):
    res = full
    table = TabularBenchmark.load("tabular-digits")
    assert res["cells"] == len(res["rows"]) == 243
    assert {r["key"] for r in res["rows"]} == set(table.keys())
    for r in res["rows"][:5]:
        assert r["test_acc"] == pytest.approx(table.query(r["key"])["test_acc_mean"])
        assert 0.0 <= r["supernet_acc"] <= 100.0
    # τ is the rank agreement of the two columns, recomputed independently
    sup = [r["supernet_acc"] for r in res["rows"]]
    tab = [r["test_acc"] for r in res["rows"]]
    assert res["kendall_tau"] == pytest.approx(kendalltau(sup, tab).statistic)
    best = max(res["rows"], key=lambda r: (r["supernet_acc"], r["val_acc"]))
    assert res["supernet_best"]["key"] == best["key"]
    # the 180 val images: every accuracy is a whole number of images
    assert all(abs(a * 180 / 100 - round(a * 180 / 100)) < 1e-6 for a in sup)


def test_fidelity_accuracy_equals_a_dense_forward_of_the_one_hot_cell(tab_run, small_table):
    """Sparse evaluation (only the chosen op runs) equals the plain weighted sum."""
    from nasforge.checkpoint import load_checkpoint
    from nasforge.config import load_config
    from nasforge.data import load_dataset
    from nasforge.spaces.darts.search_network import SearchNetwork

    res = supernet_fidelity(tab_run, str(small_table), split="val", bn="running")
    assert res["cells"] == 13
    cfg = load_config(tab_run / "config.yaml")
    s = cfg.search
    data = load_dataset("digits")
    space = SPACES.get("tabular-digits")
    net = SearchNetwork(s.channels, 10, s.layers, s.nodes, in_channels=1,
                        primitives=space.primitives, op_mask=space.op_mask(s.nodes))
    net.load_state_dict(load_checkpoint(tab_run / "checkpoint.pt")["network"])
    net.eval()
    prims = tuple(space.primitives)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (data.val.x.float() / 255.0 - mean) / std
    row = res["rows"][7]
    w = {"normal": one_hot(cell_from_key(row["key"]), prims, 2),
         "reduce": one_hot(fixed_reduction_cell(), prims, 2)}
    with torch.no_grad():
        acc = 100.0 * float((net(x, w).argmax(1) == data.val.y).float().mean())
    assert row["supernet_acc"] == pytest.approx(acc, abs=1e-6)


def test_bn_modes_and_splits_are_checked(tab_run):
    with pytest.raises(NasforgeError, match="bn 'fancy' is not allowed"):
        supernet_fidelity(tab_run, "tabular-digits", bn="fancy")
    with pytest.raises(NasforgeError, match="split 'train' is not allowed"):
        supernet_fidelity(tab_run, "tabular-digits", split="train")


def test_runs_outside_the_tabular_space_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(NasforgeError, match="not a search run directory"):
        supernet_fidelity(run)
    (run / "config.yaml").write_text("search:\n  space: darts\n")
    with pytest.raises(NasforgeError, match="searched the 'darts' space"):
        supernet_fidelity(run)


def test_plot_writes_one_panel_per_run(full, tmp_path):
    res = full
    out = plot_fidelity([res, res], tmp_path / "fid.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cell_key(cell_from_key(res["rows"][0]["key"])) == res["rows"][0]["key"]


def test_cli_prints_tau_and_writes_json_and_plot(tab_run, small_table, tmp_path):
    import json

    from conftest import run_cli

    out, png = tmp_path / "fid.json", tmp_path / "fid.png"
    res = run_cli("bench", "fidelity", str(tab_run), "--bench", str(small_table),
                  "--out", str(out), "--plot", str(png), "--no-progress")
    assert res.returncode == 0, res.stderr
    saved = json.loads(out.read_text())
    assert len(saved) == 1 and len(saved[0]["rows"]) == 13
    assert f"Kendall tau {saved[0]['kendall_tau']:.3f}" in res.stdout
    from nasforge.cli.bench import _ordinal

    assert f"at the table's {_ordinal(saved[0]['supernet_best']['percentile'])} percentile" \
        in res.stdout
    assert [_ordinal(v) for v in (1, 2, 3, 4, 11, 12, 13, 21.4, 22.6, 61, 100)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "23rd", "61st", "100th"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    again = run_cli("bench", "fidelity", str(tab_run), "--bench", str(small_table),
                    "--out", str(out), "--no-progress")
    assert again.returncode == 2 and "already exists" in again.stderr
