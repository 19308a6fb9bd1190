"""docs/design.md (issue 15 item 7): the design notes live in the repository, their links
resolve, and the worked examples of its extension points do what the page says."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_SEARCH

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
OUTSIDE_NOTES = re.compile(r"DESIGN\.md|ALGORITHMS\.md|\bDESIGN §|/work/shared")


def test_no_source_file_cites_notes_outside_the_repository():
    cited = []
    for folder in ("src", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in {".py", ".yaml", ".md", ".txt"} or not path.is_file():
                continue
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE_NOTES.search(line):
                    cited.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not cited, "\n".join(cited)


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    without_code = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", without_code, re.M)}


def test_the_design_page_links_resolve():
    text = DESIGN.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S))
    assert len(links) > 20
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = DESIGN if not target else (DESIGN.parent / target).resolve()
        assert path.is_file(), f"design.md links to a missing file: {link}"
        if anchor:
            assert anchor in _anchors(path.read_text()), f"design.md: no anchor {link}"


def test_the_design_page_names_modules_and_registries_that_exist():
    import nasforge

    package = Path(nasforge.__file__).parent
    text = DESIGN.read_text()
    example = "src/nasforge/search/sigmoid_darts.py"  # the file section 4.1 asks you to add
    for module in set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text)) - {example}:
        found = (ROOT / module).is_file() or any(package.rglob(module))
        assert found, module
    table = text[text.index("| registry | module |"):text.index("Two ways to add an entry")]
    for name, module in re.findall(r"\| `([A-Z_]+)` \| `([\w/]+)\.py` \|", table):
        import importlib

        mod = importlib.import_module("nasforge." + module.replace("/", "."))
        assert hasattr(mod, name), (name, module)
        assert type(getattr(mod, name)).__name__ == "Registry", name


def _extension_examples() -> str:
    """The code blocks of section 4 that register something, in order."""
    text = DESIGN.read_text()
    section = text[text.index("## 4. Extension points"):text.index("## 5.")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    chosen = [b for b in blocks if ".register(" in b]
    assert len(chosen) == 5
    return "\n".join(chosen)


CHECKS = """
import json, sys
import torch
from nasforge import load_config, run_search, derive_from_run, load_dataset
from nasforge.spaces.darts.genotype import cell_edges

tiny, proxy, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
facts = {}

cfg = load_config(None, [*tiny, f"data.proxy={proxy}", "search.epochs=1",
                         "search.algo=sigmoid-darts"])
run_search(cfg, f"{out}/sigmoid")
from nasforge.search.loop import read_strengths
saved = read_strengths(f"{out}/sigmoid")
normal = saved["normal"]
facts["sigmoid_in_unit_interval"] = bool(((normal > 0) & (normal < 1)).all())
facts["sigmoid_rows_sum"] = normal.sum(1).tolist()

facts["middle"] = select("middle", 2, entropy=torch.tensor([0.1, 2.0, 0.9, 1.1, 3.0])).tolist()

ds = load_dataset("stripes")
x0 = ds.train.x[ds.train.y == 0][0, 0]
facts["stripes"] = [ds.num_classes, ds.size, len(ds.train), len(ds.val), len(ds.test),
                    x0[:, 0].tolist(), x0[0, :].tolist()]
run_search(load_config(None, [*tiny, "data.dataset=stripes", "search.epochs=1"]),
           f"{out}/stripes")
facts["stripes_search"] = json.load(open(f"{out}/stripes/results.json"))["genotype"]

genotype = derive_from_run(f"{out}/sigmoid", "one-input")
prims, nodes = saved["primitives"], saved["nodes"]
strengths = saved
best = []
for node in range(2, 2 + nodes):
    pairs = [(float(strengths["normal"][e, k]), prims[k], i)
             for e, (i, j) in enumerate(cell_edges(nodes)) if j == node
             for k in range(len(prims)) if prims[k] != "none"]
    best.append(list(max(pairs)[1:]) + [node])
facts["one_input"] = [list(op) for op in genotype.normal.ops]
facts["one_input_expected"] = best

net = SNNBackbone("SDB_k3,SRB_k3,skip,SDB_k3,SRB_k5", channels=8, timesteps=2,
                  num_classes=10, in_size=8, in_channels=1)
block = spiking_depthwise(8, 16, 2)
facts["sdb_params"] = sum(p.numel() for p in block.parameters())
facts["sdb_shape"] = list(block(torch.rand(2, 3, 8, 8, 8)).shape)
facts["rates_shape"] = list(net(torch.rand(4, 1, 8, 8)).shape)
facts["spikes"] = count_spikes(net, torch.rand(4, 1, 8, 8))["total"]
print("FACTS " + json.dumps(facts))
"""


@pytest.fixture(scope="module")
def example_facts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("design")
    proxy = tmp / "proxy.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 1200, 7)[:160]))
    script = tmp / "examples.py"
    script.write_text(_extension_examples() + "\n" +
                      "from nasforge.snn import SNNBackbone, count_spikes\n" + CHECKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(script), json.dumps(TINY_SEARCH), str(proxy),
                          str(tmp / "runs")], capture_output=True, text=True, env=env,
                         timeout=600, cwd=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("FACTS "))
    return json.loads(line.removeprefix("FACTS "))


def test_the_algorithm_example_searches_with_sigmoid_weights(example_facts):
    assert example_facts["sigmoid_in_unit_interval"]
    # independent sigmoids near 0.5 each, not a softmax: an edge's weights sum to about K/2
    assert all(abs(s - 4.0) < 0.1 for s in example_facts["sigmoid_rows_sum"])


def test_the_selector_example_keeps_the_median_neighbours(example_facts):
    assert example_facts["middle"] == [2, 3]


def test_the_data_set_example_loads_and_searches(example_facts):
    classes, size, train, val, test, column, row = example_facts["stripes"]
    assert (classes, size, train, val, test) == (2, 8, 256, 64, 128)
    assert column == [255] * 8 and row == [255, 0] * 4  # class 0: vertical stripes
    assert example_facts["stripes_search"]


def test_the_rule_example_keeps_one_input_per_node(example_facts):
    assert example_facts["one_input"] == example_facts["one_input_expected"]
    assert [op[2] for op in example_facts["one_input"]] == [2, 3]  # TINY_SEARCH: 2 nodes


def test_the_block_example_is_a_spiking_block(example_facts):
    # depthwise 3x3 (8·9) + BN(8) + 1x1 (8·16) + BN(16) + two PLIF decays
    assert example_facts["sdb_params"] == 8 * 9 + 2 * 8 + 8 * 16 + 2 * 16 + 2
    assert example_facts["sdb_shape"] == [2, 3, 16, 4, 4]
    assert example_facts["rates_shape"] == [4, 10]
    assert example_facts["spikes"] > 0


def test_the_readme_code_map_names_real_functions():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| stage | function | file |"):]
    table = table[:table.index("\n\n")]
    rows = [r for r in table.splitlines()[2:] if r.startswith("|")]
    assert len(rows) >= 12
    package = ROOT / "src" / "nasforge"
    for row in rows:
        _, functions, files = (cell.strip() for cell in row.split("|")[1:4])
        names = re.findall(r"`(\w+)`", functions.split("(")[0])
        sources = "".join((package / f).read_text()
                          for f in re.findall(r"`([\w/]+\.py)`", files))
        for name in names:
            assert re.search(rf"^def {name}\(", sources, re.M), (name, files)
