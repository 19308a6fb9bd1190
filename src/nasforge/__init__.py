"""nasforge: neural architecture search with proxy data, the DARTS family and AutoSNN."""

__version__ = "0.1.0"

from nasforge.config import Config, load_config  # noqa: E402

# Stage functions, imported on first use so `import nasforge` stays light.
_LAZY = {
    "load_dataset": "nasforge.data",
    "run_search": "nasforge.search.loop",
    "resume_search": "nasforge.search.loop",
    "derive_from_run": "nasforge.search.loop",
    "run_train": "nasforge.train",
    "resume_train": "nasforge.train",
    "load_model": "nasforge.train",
    "evaluate_run": "nasforge.train",
    "describe_genotype": "nasforge.describe",
    "load_genotype": "nasforge.spaces.darts.genotype",
    "parse_genotype": "nasforge.spaces.darts.genotype",
    "run_demo": "nasforge.demo",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasforge' has no attribute '{name}'")


__all__ = ["Config", "__version__", "load_config", *_LAZY]
