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
)
from nasforge.search.base import STRATEGIES, SearchStrategy
from nasforge.search.oneshot import ONESHOT_STRATEGIES

__all__ = ["ONESHOT_STRATEGIES", "STRATEGIES", "SearchStrategy"]
