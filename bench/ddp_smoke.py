"""Smallest DistributedDataParallel check: process group, DDP training steps, all_reduce.

Run under torchrun (``bench/gpu_check.sh`` does, with one GPU and NCCL):

    torchrun --nproc_per_node=1 bench/ddp_smoke.py --backend nccl
    torchrun --nproc_per_node=2 bench/ddp_smoke.py --backend gloo --device cpu

Each rank trains a small conv net wrapped in ``DistributedDataParallel`` for a few SGD
steps on its own random data, then checks that (1) ``all_reduce`` sums the ranks' numbers
correctly, (2) the loss is finite and (3) every rank ends with identical weights (DDP
averaged the gradients). Rank 0 prints PASS or FAIL; the exit status is 1 on failure.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="nccl", choices=["nccl", "gloo"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if "RANK" not in os.environ:
        print("FAIL ddp: run me under torchrun", file=sys.stderr)
        return 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # same initial weights on every rank (DDP broadcasts them anyway)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda"
                                  else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    gen = torch.Generator(device="cpu").manual_seed(100 + rank)  # different data per rank
    loss = torch.zeros((), device=device)
    for _ in range(args.steps):
        x = torch.randn(16, 3, 16, 16, generator=gen).to(device)
        y = torch.randint(0, 10, (16,), generator=gen).to(device)
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()

    value = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(value)
    sum_ok = abs(value.item() - world * (world + 1) / 2) < 1e-6
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    same = bool((hi - lo).abs().max() == 0)
    finite = bool(torch.isfinite(loss))
    ok = torch.tensor([int(sum_ok and same and finite)], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    passed = bool(ok.item())
    if rank == 0:
        print(f"{'PASS' if passed else 'FAIL'} ddp: backend {args.backend}, {world} rank(s) on "
              f"{device.type}, {args.steps} DDP steps, final loss {loss.item():.4f}, "
              f"all_reduce sum {'ok' if sum_ok else 'WRONG'}, weights identical across ranks "
              f"{same}")
    dist.destroy_process_group()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
