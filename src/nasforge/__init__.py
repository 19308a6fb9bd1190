"""nasforge: neural architecture search with proxy data, the DARTS family and AutoSNN."""

__version__ = "0.1.0"

from nasforge.config import Config, load_config  # noqa: E402


def load_model(run_dir, *, device="cpu"):
    """The trained network of a ``nasforge train`` run directory, in eval mode."""
    from nasforge.train import load_model as _load

    return _load(run_dir, device=device)


__all__ = ["Config", "load_config", "load_model", "__version__"]
