"""AutoSNN search evaluation: what counting energy (SOPs and MACs per layer) costs.

``snn search`` scores every architecture with its energy (``nasforge.snn.energy``'s
per-layer hooks count the nonzero inputs of every conv and linear layer). This times one
eval-mode forward of a super-network path over a batch, with and without the energy
counter, in alternating rounds, and prints the median of each and their ratio (the
counter's overhead, measured in the same run). No assertions about wall-clock time.

    .venv/bin/python bench/bench_energy_count.py [--channels 16 --timesteps 8 --batch 64]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time

import torch

from nasforge.snn.backbone import SNNSuperNet
from nasforge.snn.blocks import SEARCH_BLOCKS
from nasforge.snn.energy import energy_counter
from nasforge.snn.neuron import reset_net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed forwards per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SNNSuperNet(args.channels, args.timesteps, 10, args.resolution).to(device).eval()
    rng = random.Random(0)
    path = [rng.choice(SEARCH_BLOCKS) for _ in range(model.num_tbd)]
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)

    def forwards(count: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.no_grad(), energy_counter(model) if count else contextlib.nullcontext():
            for _ in range(args.steps):
                model(x, path)
                reset_net(model)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / args.steps

    forwards(False), forwards(True)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for count in (False, True):
            times[count].append(forwards(count))
    plain, counted = statistics.median(times[False]), statistics.median(times[True])
    print(f"AutoSNN super-network eval forward, C={args.channels}, T={args.timesteps}, batch "
          f"{args.batch}, {args.resolution}x{args.resolution}, {device}, torch "
          f"{torch.__version__}, {args.threads} threads, median of {args.rounds} rounds of "
          f"{args.steps} forwards")
    print(f"{'forward':<26}{'s':>9}{'img/s':>9}{'x plain':>9}")
    for name, t in (("plain", plain), ("counting energy", counted)):
        print(f"{name:<26}{t:>9.4f}{args.batch / t:>9.1f}{t / plain:>9.2f}")


if __name__ == "__main__":
    main()
