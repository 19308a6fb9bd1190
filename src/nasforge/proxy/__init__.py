"""Proxy data (thesis chapter 3): per-example scores of a training split and the subsets
chosen from them.

Names resolve on first use, so importing one submodule (e.g. a selector reading an entropy
list) never pulls in the training stack, and submodules can import each other freely.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AUX_MODELS": "nasforge.proxy.models",
    "CifarResNet": "nasforge.proxy.models",
    "EntropyList": "nasforge.proxy.entropy",
    "ForgettingCounter": "nasforge.proxy.entropy",
    "count_forgetting": "nasforge.proxy.entropy",
    "entropy_from_logits": "nasforge.proxy.entropy",
    "load_features": "nasforge.proxy.entropy",
    "read_entropy_list": "nasforge.proxy.entropy",
    "read_forgetting": "nasforge.proxy.entropy",
    "save_features": "nasforge.proxy.entropy",
    "write_entropy_list": "nasforge.proxy.entropy",
    "write_forgetting": "nasforge.proxy.entropy",
    "resume_entropy": "nasforge.proxy.scoring",
    "score_entropy": "nasforge.proxy.scoring",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasforge.proxy' has no attribute '{name}'")


__all__ = sorted(_LAZY)
