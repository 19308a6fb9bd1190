"""The spiking neuron of AutoSNN: parametric LIF (thesis Eqs. 2.6–2.9, docs/snn.md §Neuron).

SpikingJelly's ``ParametricLIFNode`` implements the recurrence; its defaults differ from the
thesis (sigmoid surrogate, attached reset), so every neuron in nasforge comes from
:func:`plif`, which fixes the thesis's settings in one place.
"""

import contextlib
import contextvars
import importlib.util
import inspect
from collections.abc import Iterator

import torch
from spikingjelly.activation_based import functional, surrogate
from spikingjelly.activation_based.neuron import ParametricLIFNode
from torch import nn

from nasforge.errors import NasforgeError

V_THRESHOLD = 1.0  # the thesis's "V_th = 0" is a typo confirmed by the author (docs/snn.md)
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


def neuron_implementation(device: torch.device | str) -> str:
    """The kernel PLIF layers run with on ``device``, as SpikingJelly reports it.

    SpikingJelly 2.x picks the fastest one available by itself: on CUDA its compiled CUDA
    extension, else its Triton kernel, else the PyTorch reference (the environment variable
    ``SJ_PLIF_CUDA_IMPLEMENTATION=cuda|triton|torch`` forces one); on CPU the reference.
    Older releases take a ``backend`` argument instead (see ``_backend_kwargs``).
    """
    device = torch.device(device)
    try:
        from spikingjelly.activation_based.functional import neuron_implementation as query
    except ImportError:
        return _backend_kwargs(device).get("backend", "torch")
    return str(query("plif", device)["implementation"])


NEURON_KINDS = ("plif", "relu")
_KIND: contextvars.ContextVar[str] = contextvars.ContextVar("nasforge_neuron", default="plif")


@contextlib.contextmanager
def neuron_kind(kind: str) -> Iterator[None]:
    """Build networks whose neurons are ``kind``: ``relu`` gives the DNN version (§5.5.2).

    Every block creates its neurons through :func:`plif`, so swapping them here turns any
    SNN (backbone, super-network, baseline) into the same network with ReLU activations.
    """
    if kind not in NEURON_KINDS:
        raise NasforgeError(f"unknown neuron '{kind}'; choose from: {', '.join(NEURON_KINDS)}")
    token = _KIND.set(kind)
    try:
        yield
    finally:
        _KIND.reset(token)


def plif(device: torch.device | str | None = None) -> nn.Module:
    """A multi-step PLIF layer with the thesis's settings (one learnable decay per layer).

    Inside ``neuron_kind("relu")`` it returns a ReLU instead (the DNN ablation).
    """
    if _KIND.get() == "relu":
        return nn.ReLU()
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
