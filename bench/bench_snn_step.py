"""AutoSNN super-network train step: multi-step (nasforge) against a single-step loop over T.

Both run the same super-network, path, weights and batch: forward, MSE loss on the voting
layer's firing rates, backward, Adam step, neuron reset. nasforge's forward is multi-step
(convs/BN once over T·N, SpikingJelly's fused multi-step neuron); the baseline
(``bench/snn_single_step.py``) loops over t and runs every layer on one time step, as the
authors' single-step code does. Rounds alternate the two; medians are reported with the
ratio. Before timing, the two are checked to give the same rates in eval mode. No
assertions about wall-clock time.

    .venv/bin/python bench/bench_snn_step.py [--channels 16 --timesteps 8 --batch 32]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snn_single_step import single_step_forward  # noqa: E402

from nasforge.snn.backbone import SNNSuperNet  # noqa: E402
from nasforge.snn.blocks import SEARCH_BLOCKS  # noqa: E402
from nasforge.snn.epoch import rate_loss  # noqa: E402
from nasforge.snn.neuron import neuron_implementation, reset_net  # noqa: E402


def snn_bench_setup(description: str, *, batch: int, steps: int, rounds: int,
                    steps_help: str) -> tuple[argparse.Namespace, torch.device, SNNSuperNet,
                                              list[str], torch.Tensor]:
    """The SNN benchmarks' common part: their options (with these defaults), then a seeded
    super-network, a random path through it and a random batch on ``--device``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SNNSuperNet(args.channels, args.timesteps, 10, args.resolution).to(device)
    rng = random.Random(0)
    path = [rng.choice(SEARCH_BLOCKS) for _ in range(model.num_tbd)]
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    return args, device, model, path, x


def main() -> None:
    args, device, model, path, x = snn_bench_setup(
        __doc__.splitlines()[0], batch=32, steps=2, rounds=2, steps_help="timed steps per round")
    y = torch.randint(0, 10, (args.batch,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    model.eval()
    with torch.no_grad():
        multi = model(x, path)
        reset_net(model)
        single = single_step_forward(model, x, path)
        reset_net(model)
    same = torch.allclose(multi, single, atol=1e-6)

    forwards = {"multi-step (nasforge)": lambda: model(x, path),
                "single-step loop over T": lambda: single_step_forward(model, x, path)}

    def train_steps(forward, n: int) -> float:
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            rate_loss(forward().float(), y).backward()
            optimizer.step()
            reset_net(model)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / n

    for forward in forwards.values():  # warm-up
        train_steps(forward, 1)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(args.rounds):
        for name, forward in forwards.items():
            times[name].append(train_steps(forward, args.steps))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    base = med["single-step loop over T"]
    neuron = neuron_implementation(device)
    print(f"AutoSNN super-network train step, C={args.channels}, T={args.timesteps}, batch "
          f"{args.batch}, {args.resolution}x{args.resolution}, path {','.join(path)}, "
          f"{device}, neuron kernel {neuron}, torch {torch.__version__}, {args.threads} "
          f"threads, median of {args.rounds} rounds of {args.steps} steps")
    print(f"eval-mode rates of the two formulations agree: {same}")
    print(f"{'formulation':<28}{'s/step':>9}{'img/s':>9}{'x single-step':>15}")
    for name, t in med.items():
        print(f"{name:<28}{t:>9.4f}{args.batch / t:>9.1f}{base / t:>15.2f}")


if __name__ == "__main__":
    main()
