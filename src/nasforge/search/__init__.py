"""Search strategies (one file each) and the loop that runs them."""

from nasforge.search import darts  # noqa: F401  (registers the strategy)
from nasforge.search.base import STRATEGIES, SearchStrategy

__all__ = ["STRATEGIES", "SearchStrategy"]
