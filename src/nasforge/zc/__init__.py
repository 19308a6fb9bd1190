"""Zero-cost proxies: score untrained architectures from one batch (docs/zero-cost.md).

- :mod:`nasforge.zc.proxies`: the registry :data:`~nasforge.zc.proxies.PROXIES` (synflow,
  naswot, grad_norm, snip, grasp, fisher, jacob_cov, params, flops).
- :mod:`nasforge.zc.sample`: seeded random architectures of the cell spaces (darts,
  extcell-K, 1shot1-ssN, tabular-digits, snn) and the networks to score them in.
- :mod:`nasforge.zc.score`: :func:`~nasforge.zc.score.score_architectures`,
  :func:`~nasforge.zc.score.correlations`, :func:`~nasforge.zc.score.zc_score` and
  :func:`~nasforge.zc.score.zc_eval`.
- :mod:`nasforge.zc.evaluate`: the same correlation against NAS-Bench-101
  (:func:`~nasforge.zc.evaluate.zc_eval_nb101`) and trained SNNs
  (:func:`~nasforge.zc.evaluate.zc_eval_snn`).
"""

from nasforge.zc.proxies import PROXIES, Proxy
from nasforge.zc.sample import NetSettings, Sample, build_network, sample_architectures
from nasforge.zc.score import (
    correlations,
    format_table,
    load_batch,
    score_architectures,
    zc_eval,
    zc_score,
)

__all__ = [
    "PROXIES",
    "NetSettings",
    "Proxy",
    "Sample",
    "build_network",
    "correlations",
    "format_table",
    "load_batch",
    "sample_architectures",
    "score_architectures",
    "zc_eval",
    "zc_score",
]
