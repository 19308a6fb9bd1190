"""AutoSNN (thesis chapter 5): PLIF neuron, spiking blocks, macro backbone, spike counts."""

from nasforge.snn.backbone import SNNBackbone, SNNSuperNet, layout, num_tbd, parse_arch
from nasforge.snn.blocks import BLOCKS, SEARCH_BLOCKS, build_block
from nasforge.snn.neuron import plif, reset_net
from nasforge.snn.spikes import count_spikes, describe_snn, spike_counter

__all__ = [
    "BLOCKS", "SEARCH_BLOCKS", "SNNBackbone", "SNNSuperNet", "build_block", "count_spikes",
    "describe_snn", "layout", "num_tbd", "parse_arch", "plif", "reset_net", "spike_counter",
]
