"""``nasforge.runtime``: the layout choice shared by search, train, quality and scoring."""

import torch

from nasforge.runtime import use_channels_last


def test_channels_last_follows_the_setting_on_cpu_and_cuda_only():
    cpu, cuda, meta = torch.device("cpu"), torch.device("cuda"), torch.device("meta")
    assert use_channels_last(True, cpu) and use_channels_last(True, cuda)
    assert not use_channels_last(False, cpu) and not use_channels_last(False, cuda)
    assert not use_channels_last(True, meta)  # other backends keep NCHW
