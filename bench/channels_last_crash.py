"""Minimal repro: torch 2.13.0+cpu crashes in the backward of a 1×1 stride-2 convolution in
channels_last (segmentation fault or "double free or corruption"), and the workaround.

    .venv/bin/python bench/channels_last_crash.py          # the workaround: prints ok
    .venv/bin/python bench/channels_last_crash.py --crash  # the crash (kills the process)

Found behind the crash of the ImageNet-stem search in channels_last
(tests/search/test_loop.py::test_imagenet_search_reads_jpeg_folders_with_the_three_conv_stem):
the factorized reduce of the first cell convolves the 56×56 stem output 1×1 with stride 2.
Small inputs (batch 1, or 28×28) do not crash. FactorizedReduce (spaces/darts/ops.py) now
convolves every other pixel with stride 1 instead, which is the same computation.
"""

import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(2)
x = torch.randn(2, 12, 56, 56).contiguous(memory_format=torch.channels_last).requires_grad_()
w = torch.randn(2, 12, 1, 1).contiguous(memory_format=torch.channels_last).requires_grad_()
for _ in range(3):
    # with --crash the stride-2 conv; else the same values from every other pixel
    crash = "--crash" in sys.argv
    y = F.conv2d(x, w, stride=2) if crash else F.conv2d(x[:, :, ::2, ::2], w)
    y.square().sum().backward()
print("ok", torch.__version__)
