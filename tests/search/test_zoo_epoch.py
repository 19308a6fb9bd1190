"""Every registered search algorithm completes one epoch on digits and yields a genotype."""

import pytest

from conftest import TINY_SEARCH
from nasforge.config import load_config
from nasforge.search import STRATEGIES
from nasforge.search.loop import run_search
from nasforge.spaces.darts.genotype import parse_genotype

SPACE_OF = {"fairdarts": "darts-no-none", "drnas": "darts-no-none"}
RULE_OF = {"fairdarts": ["search.rule=threshold", "search.threshold=0.5"]}


@pytest.mark.parametrize("algo", STRATEGIES.names())
def test_one_epoch_on_digits(algo, proxy_file, tmp_path, one_thread):
    extra = [f"search.space={SPACE_OF.get(algo, 'darts')}", *RULE_OF.get(algo, [])]
    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy_file}", "search.epochs=1",
                             f"search.algo={algo}", "search.warmup_epochs=0", *extra])
    results = run_search(cfg, tmp_path / algo)
    assert results["algo"] == algo and results["cost"]["epochs"] == 1
    assert 0.0 <= results["val_acc"] <= 100.0
    genotype = parse_genotype(results["genotype"])
    assert genotype.normal.ops and genotype.reduce.ops
