"""The DARTS cell space: ops, genotypes, the search super-network and evaluation networks."""
