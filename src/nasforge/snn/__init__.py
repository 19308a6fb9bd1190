"""AutoSNN (thesis chapter 5): PLIF neuron, spiking blocks, macro backbone, spike counts, energy."""

from nasforge.snn.backbone import SNNBackbone, SNNSuperNet, layout, num_tbd, parse_arch
from nasforge.snn.blocks import BLOCKS, SEARCH_BLOCKS, build_block
from nasforge.snn.energy import PROFILES, energy_counter, measure_energy
from nasforge.snn.neuron import plif, reset_net
from nasforge.snn.spikes import count_spikes, describe_snn, spike_counter

__all__ = [
    "BLOCKS", "PROFILES", "SEARCH_BLOCKS", "SNNBackbone", "SNNSuperNet", "build_block",
    "count_spikes", "describe_snn", "energy_counter", "layout", "measure_energy", "num_tbd",
    "parse_arch", "plif", "reset_net", "spike_counter",
]
