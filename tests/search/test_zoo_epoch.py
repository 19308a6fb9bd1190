"""Every registered search algorithm completes one epoch on digits, yields a valid genotype
and resumes to the uninterrupted result. The per-algorithm test files test mechanisms only;
the one-epoch and resume checks for every algorithm live here."""

import pytest
import torch

from conftest import TINY_SEARCH, assert_resume_matches
from nasforge.config import load_config
from nasforge.search import STRATEGIES
from nasforge.search.loop import read_strengths, run_search
from nasforge.spaces.darts.genotype import parse_genotype, validate_genotype

SPACE_OF = {"fairdarts": "darts-no-none", "drnas": "darts-no-none"}
RULE_OF = {"fairdarts": ["search.rule=threshold", "search.threshold=0.5"]}
SIMPLEX = {"gdas", "prdarts"}  # saved strengths are probabilities over each edge's ops


# zero-cost searches (zc-*) train nothing, so have no epoch: tests/search/test_zc_search.py
@pytest.mark.parametrize("algo", [a for a in STRATEGIES.names()
                                  if not getattr(STRATEGIES.get(a), "zero_cost", False)])
def test_one_epoch_on_digits(algo, proxy_file, tmp_path, one_thread):
    extra = [f"search.space={SPACE_OF.get(algo, 'darts')}", *RULE_OF.get(algo, [])]
    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy_file}", "search.epochs=1",
                             f"search.algo={algo}", "search.warmup_epochs=0",
                             "search.samples=2", *extra])  # samples: random, random-ws
    results = run_search(cfg, tmp_path / algo)
    assert results["algo"] == algo and results["cost"]["epochs"] == 1
    assert 0.0 <= results["val_acc"] <= 100.0
    genotype = parse_genotype(results["genotype"])
    assert genotype.normal.ops and genotype.reduce.ops
    validate_genotype(genotype, nodes=2)
    if algo in SIMPLEX:
        saved = read_strengths(tmp_path / algo)
        for cell in ("normal", "reduce"):
            assert torch.allclose(saved[cell].sum(-1), torch.ones(5))


# random search has no epochs to stop between: tests/search/test_random_search.py kills it
@pytest.mark.parametrize("algo", [a for a in STRATEGIES.names()
                                  if not hasattr(STRATEGIES.get(a), "run_standalone")])
def test_every_algorithm_resumes_to_the_uninterrupted_result(algo, small_proxy, tmp_path,
                                                             one_thread):
    """Stopped after epoch 1 of 2 and resumed, every algorithm ends with the strengths,
    genotype and log of an uninterrupted run (its sampler, perturbation and controller
    state all travel in the checkpoint). SGAS decides an edge after each epoch."""
    extra = [f"search.space={SPACE_OF.get(algo, 'darts')}", *RULE_OF.get(algo, [])]
    if algo == "sgas":
        extra += ["search.decision_start=0", "search.decision_every=1"]
    assert_resume_matches(tmp_path, [*TINY_SEARCH, f"data.proxy={small_proxy}",
                                     f"search.algo={algo}", *extra])
