"""Tabular benchmarks: look up the trained accuracy of an architecture instead of training it."""

from nasforge.benchmarks.tabular import (
    PROTOCOL,
    PROTOCOLS,
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
    "PROTOCOLS",
    "TabularBenchmark",
    "cell_from_key",
    "cell_key",
    "enumerate_cells",
    "fixed_reduction_cell",
    "genotype_of",
    "train_protocol",
]
