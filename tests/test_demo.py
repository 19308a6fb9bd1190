"""The README's main job, run exactly as a user runs it (about five minutes on 2 cores)."""

import json

from PIL import Image  # noqa: F401  (matplotlib's dependency; validates the PNGs)

from nasforge.analysis.report import build_report
from nasforge.demo import run_demo
from nasforge.search.loop import derive_from_run
from nasforge.spaces.darts.genotype import parse_genotype


def test_demo_end_to_end_reaches_90_percent(tmp_path):
    out = tmp_path / "demo"
    results = run_demo(out, progress=False)
    saved = json.loads((out / "results.json").read_text())
    assert saved["test_acc"] == results["test_acc"] >= 90.0
    genotype = parse_genotype(saved["genotype"])
    # BtNAS + top-k (k=14) + ActAll: exactly 14 ops over both cells, every node active
    assert saved["algo"] == "btnas" and saved["rule"] == {"rule": "topk", "k": 14,
                                                          "act_all": True}
    assert len(genotype.normal.ops) + len(genotype.reduce.ops) == 14
    assert genotype.normal.concat == genotype.reduce.concat == (2, 3, 4, 5)
    assert genotype == derive_from_run(out / "search", "topk", k=14, act_all=True)
    assert saved["proxy"] == {"method": "p1", "size": 629}
    assert saved["params_m"] > 0
    assert set(saved["seconds"]) == {"search", "train", "total"}
    # AutoSNN part: two searches on one super-network, every top-1 and the baseline retrained
    snn = saved["snn"]
    assert [row["lam"] for row in snn["searches"]] == [0.0, -0.08]
    assert snn["n_avg"] > 0
    assert set(snn["trained"]) == {"lam+0", "lam-0.08", "cifarnet-fang"}
    for name, row in snn["trained"].items():
        assert row["test_acc"] >= 70.0 and row["spikes"] > row["spikes_neurons"] > 0, name
    assert snn["trained"]["lam-0.08"]["arch"] == snn["searches"][1]["arch"]
    assert snn["trained"]["cifarnet-fang"]["arch"] is None
    for name in ("pareto.png", "layers.png", "search.png", "arch.png"):
        with Image.open(out / "snn" / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert snn["searches"][1]["arch"] in report_text(out)
    for name in ("normal.png", "reduce.png", "curves.png", "entropy.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    report = (out / "report.md").read_text()
    assert f"{results['test_acc']:.2f}%" in report and saved["genotype"] in report
    assert (out / "train" / "model.pt").is_file()
    assert (out / "search" / "strengths.json").is_file()
    # `nasforge report` on the demo folder: one page with a section per stage's run
    html_path, md_path = build_report(out)
    page = md_path.read_text()
    assert "## Demo summary" in page and "## search: search" in page
    assert "## train: train" in page and "### Retrain curves" in page
    assert saved["genotype"] in page
    html = html_path.read_text()
    assert "<img" in html and "data:image/png;base64," in html and 'src="http' not in html


def report_text(out):
    return (out / "report.md").read_text()


def test_demo_darts_slice_derives_a_darts_cell(tmp_path):
    results = run_demo(tmp_path / "demo", progress=False, algo="darts", snn=False)
    assert "snn" not in results and not (tmp_path / "demo" / "snn").exists()
    genotype = parse_genotype(results["genotype"])
    assert results["algo"] == "darts" and results["rule"]["rule"] == "argmax"
    assert len(genotype.normal.ops) == len(genotype.reduce.ops) == 8
    assert results["test_acc"] >= 90.0
