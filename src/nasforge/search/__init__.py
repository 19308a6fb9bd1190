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
    pcdarts,
    prdarts,
    robustdarts,
    sdarts,
    sgas,
)
from nasforge.search.base import STRATEGIES, SearchStrategy

__all__ = ["STRATEGIES", "SearchStrategy"]
