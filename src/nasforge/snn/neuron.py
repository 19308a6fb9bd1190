"""The spiking neuron of AutoSNN: parametric LIF (thesis Eqs. 2.6–2.9, DESIGN §6).

SpikingJelly's ``ParametricLIFNode`` implements the recurrence; its defaults differ from the
thesis (sigmoid surrogate, attached reset), so every neuron in nasforge comes from
:func:`plif`, which fixes the thesis's settings in one place.
"""

import importlib.util
import inspect

import torch
from spikingjelly.activation_based import functional, surrogate
from spikingjelly.activation_based.neuron import ParametricLIFNode
from torch import nn

V_THRESHOLD = 1.0  # the thesis's "V_th = 0" is a typo confirmed by the author (DESIGN §6)
V_RESET = 0.0
INIT_TAU = 2.0
ATAN_ALPHA = 2.0


def _backend_kwargs(device: torch.device | str | None) -> dict[str, str]:
    """Pick a kernel where the installed SpikingJelly lets us choose one.

    SpikingJelly 2.x selects its kernel (torch reference on CPU, fused on CUDA) by itself
    and takes no ``backend`` argument; older releases do, and there 'cupy' is fastest on CUDA.
    """
    if "backend" not in inspect.signature(ParametricLIFNode.__init__).parameters:
        return {}
    on_cuda = device is not None and torch.device(device).type == "cuda"
    has_cupy = importlib.util.find_spec("cupy") is not None
    return {"backend": "cupy" if on_cuda and has_cupy else "torch"}


def plif(device: torch.device | str | None = None) -> ParametricLIFNode:
    """A multi-step PLIF layer with the thesis's settings (one learnable decay per layer)."""
    return ParametricLIFNode(
        init_tau=INIT_TAU,
        decay_input=True,
        v_threshold=V_THRESHOLD,
        v_reset=V_RESET,
        surrogate_function=surrogate.ATan(alpha=ATAN_ALPHA),
        detach_reset=True,
        step_mode="m",
        **_backend_kwargs(device),
    )


def is_neuron(module: nn.Module) -> bool:
    """True for the spiking layers whose outputs are counted as spikes."""
    return isinstance(module, ParametricLIFNode)


def reset_net(model: nn.Module) -> None:
    """Clear every neuron's membrane state; call after each batch (the thesis does)."""
    functional.reset_net(model)
