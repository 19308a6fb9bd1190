"""Tabular benchmarks: look up the trained accuracy of an architecture instead of training it."""

from nasforge.benchmarks.tabular import (
    PROTOCOL,
    TabularBenchmark,
    cell_from_key,
    cell_key,
    enumerate_cells,
    fixed_reduction_cell,
    genotype_of,
    train_protocol,
)

__all__ = [
    "PROTOCOL",
    "TabularBenchmark",
    "cell_from_key",
    "cell_key",
    "enumerate_cells",
    "fixed_reduction_cell",
    "genotype_of",
    "train_protocol",
]
