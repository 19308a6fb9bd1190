"""Search strategies (one file each) and the loop that runs them."""

from nasforge.search import btnas, darts  # noqa: F401  (register the strategies)
from nasforge.search.base import STRATEGIES, SearchStrategy

__all__ = ["STRATEGIES", "SearchStrategy"]
