"""Search strategies (one file each) and the loop that runs them."""

# Importing a strategy's module registers it in STRATEGIES.
from nasforge.search import (  # noqa: F401
    btnas,
    darts,
    darts_elu,
    drnas,
    ecodarts,
    enas,
    fairdarts,
    gdas,
    oneshot_darts,
    oneshot_enas,
    oneshot_gdas,
    pcdarts,
    prdarts,
    random_search,
    random_ws,
    robustdarts,
    sdarts,
    sgas,
    zc_evolution,
    zc_random,
)
from nasforge.search.base import STRATEGIES, SearchStrategy
from nasforge.search.oneshot import ONESHOT_STRATEGIES

__all__ = ["ONESHOT_STRATEGIES", "STRATEGIES", "SearchStrategy", "algorithm_options"]


def algorithm_options(algo: str | None = None) -> list[dict]:
    """Each algorithm's own settings (``nasforge config options``): one row per key with
    its group, default and help, for ``algo`` (cell or 1shot1 strategy of that name) or for
    every algorithm. The settings every search reads are ``SearchCore``'s."""
    import dataclasses

    from nasforge.config import SEARCH_OPTION_GROUPS

    names = sorted(set(STRATEGIES.names()) | set(ONESHOT_STRATEGIES.names()))
    if algo is not None and algo not in names:
        STRATEGIES.get(algo)  # the registry's one-line error with the allowed names
    rows = []
    for group in SEARCH_OPTION_GROUPS:
        users = [n for n in names if any(
            group in r.get(n).options for r in (STRATEGIES, ONESHOT_STRATEGIES) if n in r)]
        if algo is not None and algo not in users:
            continue
        for f in dataclasses.fields(group):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            rows.append({"group": group.__name__, "key": f"search.{f.name}",
                         "default": default, "help": f.metadata.get("help", ""),
                         "algorithms": users})
    return rows
