"""Each algorithm's settings are declared as its own option group and read only by it.

``SearchConfig`` joins :class:`~nasforge.config.SearchCore` and one dataclass per algorithm
family (``nasforge.config.SEARCH_OPTION_GROUPS``); every strategy names the groups it reads
in ``options``. The static check below reads each strategy's source: a strategy that starts
reading another algorithm's setting without declaring it fails here.
"""

import dataclasses
import inspect
import re

import pytest

from nasforge.config import SEARCH_OPTION_GROUPS, SearchConfig, SearchCore, load_config
from nasforge.search import ONESHOT_STRATEGIES, STRATEGIES
from nasforge.search.base import SearchStrategy

CORE = {f.name for f in dataclasses.fields(SearchCore)}
GROUP_OF = {f.name: g for g in SEARCH_OPTION_GROUPS for f in dataclasses.fields(g)}
CLASSES = {f"{reg}:{name}": r.get(name) for reg, r in (("cell", STRATEGIES),
                                                       ("1shot1", ONESHOT_STRATEGIES))
           for name in r.names()}


def test_every_search_key_is_core_or_in_exactly_one_group():
    names = [f.name for f in dataclasses.fields(SearchConfig)]
    grouped = [f.name for g in SEARCH_OPTION_GROUPS for f in dataclasses.fields(g)]
    assert len(grouped) == len(set(grouped)) and not CORE & set(grouped)
    assert sorted(names) == sorted(CORE | set(grouped))


def _reads(cls: type) -> set[str]:
    """Option names read as ``cfg.X``, ``self.cfg.X`` or ``s.X`` in the files of a strategy
    and of the strategies it extends (each algorithm's file is its own)."""
    found = set()
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, SearchStrategy)) \
                or klass is SearchStrategy:
            continue
        source = inspect.getsource(inspect.getmodule(klass))
        found |= set(re.findall(r"\b(?:cfg|s|search)\.(\w+)", source))
    return found & set(GROUP_OF)


@pytest.mark.parametrize("key", sorted(CLASSES))
def test_a_strategy_reads_only_core_settings_and_its_declared_groups(key):
    cls = CLASSES[key]
    declared = set(cls.options)
    assert all(g in SEARCH_OPTION_GROUPS for g in declared)
    undeclared = {n: GROUP_OF[n].__name__ for n in _reads(cls) if GROUP_OF[n] not in declared}
    assert not undeclared, f"{key} reads {undeclared} without naming the group in options"


def test_every_group_belongs_to_some_algorithm():
    claimed = {g for cls in CLASSES.values() for g in cls.options}
    assert claimed == set(SEARCH_OPTION_GROUPS)


def test_the_keys_users_type_stay_flat():
    cfg = load_config(None, ["search.tau_max=2", "search.partial_k=2", "search.controller_lr=0.1"])
    assert (cfg.search.tau_max, cfg.search.partial_k, cfg.search.controller_lr) == (2.0, 2, 0.1)
    assert SearchConfig(kl_weight=0.5, algo="btnas").kl_weight == 0.5


def test_config_options_lists_an_algorithms_keys_with_defaults():
    from conftest import run_cli

    proc = run_cli("config", "options", "--algo", "gdas")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "TemperatureOptions (gdas, prdarts):",
        "  search.tau_max = 10.0  GDAS/PR-DARTS: initial temperature",
        "  search.tau_min = 0.1  GDAS/PR-DARTS: final temperature"]
    assert "darts has no settings of its own" in run_cli("config", "options", "--algo",
                                                         "darts").stdout
    bad = run_cli("config", "options", "--algo", "nope")
    assert bad.returncode == 2 and "unknown search algorithm 'nope'" in bad.stderr
