"""AutoSNN search evaluation: what counting energy (SOPs and MACs per layer) costs.

``snn search`` scores every architecture with its energy (``nasforge.snn.energy``'s
per-layer hooks count the nonzero inputs of every conv and linear layer). This times one
eval-mode forward of a super-network path over a batch, with and without the energy
counter, in alternating rounds, and prints the median of each and their ratio (the
counter's overhead, measured in the same run). No assertions about wall-clock time.

    .venv/bin/python bench/bench_energy_count.py [--channels 16 --timesteps 8 --batch 64]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_snn_step import snn_bench_setup  # noqa: E402

from nasforge.snn.energy import energy_counter  # noqa: E402
from nasforge.snn.neuron import reset_net  # noqa: E402


def main() -> None:
    args, device, model, path, x = snn_bench_setup(
        __doc__.splitlines()[0], batch=64, steps=3, rounds=5,
        steps_help="timed forwards per round")
    model.eval()

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
