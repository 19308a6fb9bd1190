"""Build a proxy subset inside a run: score (or read) entropies, select, write the index file.

This is what ``--proxy-method M --proxy-size K`` does before a search, so any search
algorithm can run on an entropy-selected subset in one command.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from nasforge.config import Config
from nasforge.data import Dataset, write_index_file
from nasforge.distributed import current
from nasforge.errors import NasforgeError

ENTROPY_FILE = "entropy.tsv"
PROXY_FILE = "proxy.txt"


def check_proxy_request(cfg: Config, num_train: int) -> None:
    """Refuse, before any work, a proxy request that :func:`build_proxy` would refuse late:
    an unknown selector or auxiliary model, a size the training split cannot give, a bad
    entropy list, or k-center / forgetting without the files ``nasforge entropy`` writes
    beside the entropy list."""
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.models import AUX_MODELS
    from nasforge.proxy.selectors import SELECTORS, resolve_size

    p = cfg.proxy
    SELECTORS.get(p.method)
    resolve_size(p.size, num_train)
    if not p.entropy:
        if p.method != "random":
            AUX_MODELS.get(cfg.entropy.model)
        return
    read_entropy_list(p.entropy, num_train)
    from nasforge.proxy.scoring import FEATURES, FORGETTING, run_dir_for

    needs = {"k-center": FEATURES, "forgetting": FORGETTING}.get(p.method)
    side = run_dir_for(p.entropy)
    if needs and not (side / needs).is_file():
        raise NasforgeError(f"proxy method {p.method} needs {side / needs}, which `nasforge "
                            f"entropy` writes beside the entropy list {p.entropy}; score the "
                            "data with `nasforge entropy` or choose another method")


def build_proxy(cfg: Config, data: Dataset, run_dir: Path, *, resume: bool = False
                ) -> tuple[Path, dict]:
    """Select ``cfg.proxy.size`` training examples with ``cfg.proxy.method`` into run_dir.

    Entropies come from ``cfg.proxy.entropy`` when given, else the auxiliary model of
    ``cfg.entropy`` is trained and scores the data (its files land in the run directory);
    ``random`` needs no entropies. Returns the index file and a cost/summary record.
    ``resume`` continues the entropy scoring of a search that was killed during it.
    """
    from nasforge.proxy.histogram import bin_width_for
    from nasforge.proxy.selectors import select

    p = cfg.proxy
    t0 = time.perf_counter()
    n = len(data.train)
    features = forgetting = None
    scored = False
    if not p.entropy and p.method == "random":
        entropy = torch.zeros(n, dtype=torch.float64)
    else:
        from nasforge.proxy.entropy import load_features, read_entropy_list, read_forgetting
        from nasforge.proxy.scoring import FEATURES, FORGETTING, run_dir_for, score_entropy

        path = Path(p.entropy) if p.entropy else run_dir / ENTROPY_FILE
        if not p.entropy:
            score_entropy(cfg, path, force=True, resume=resume)
            scored = True
        entropy = read_entropy_list(path, n).entropy
        side = run_dir_for(path)  # nasforge entropy's side files
        if p.method == "k-center" and (side / FEATURES).is_file():
            features = load_features(side / FEATURES)
        if p.method == "forgetting" and (side / FORGETTING).is_file():
            forgetting = read_forgetting(side / FORGETTING)
    indices = select(p.method, p.size, entropy=entropy, labels=data.train.y, seed=cfg.run.seed,
                     bin_width=bin_width_for(cfg.data.dataset, p.bin_width), beta=p.beta,
                     class_balanced=p.class_balanced, features=features, forgetting=forgetting)
    path = run_dir / PROXY_FILE
    current().main_only(lambda: write_index_file(path, indices))  # data-parallel: rank 0
    return path, {"method": p.method, "size": len(indices), "scored_entropy": scored,
                  "seconds": time.perf_counter() - t0}
