"""DARTS super-network search step: nasforge against baselines timed in the same run.

One step = one first-order architecture step + one weight step (SGD, clip 5) on random
data, as ``nasforge bench step`` times it. Timed here, interleaved round by round (the
median over rounds is reported, so a busy machine hurts every row alike):

- ``reference``: the straightforward formulation (``bench/darts_reference.py``: every op
  of every edge, ``none`` included, computed in a Python loop, weights multiplied and
  summed), driven by the same DARTS strategy and optimisers as nasforge's network;
- ``nasforge`` in the NCHW layout (its search's layout on CPU) and in channels_last (its
  layout on CUDA);
- ``NNI``: NNI 3.0's DARTS super-network (``bench/nni_darts_step.py``), when a Python with
  NNI is available (``--nni-python``; the current interpreter is tried first). NNI's
  architecture step back-propagates into the weights too, as its DartsLightningModule does.

Prints a table with images/s and the ratios against the reference and NNI; makes no
assertions about wall-clock time. Defaults: the thesis configuration (C=16, 8 cells, batch
64, 32×32); ``--quick`` uses batch 16 and one round.

    .venv/bin/python bench/bench_step.py [--quick] [--threads 2] [--nni-python PYTHON]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from darts_reference import ReferenceSearchNetwork  # noqa: E402

from nasforge.benchmarks.step import time_search_step  # noqa: E402


class NNIFailed(Exception):
    """NNI's step could not run (not installed right, or it crashed)."""


def nni_step(python: str, args: argparse.Namespace) -> float:
    cmd = [python, str(HERE / "nni_darts_step.py"), "--channels", str(args.channels),
           "--layers", str(args.layers), "--batch", str(args.batch), "--resolution",
           str(args.resolution), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise NNIFailed(res.stderr.strip().splitlines()[-1] if res.stderr else "failed")
    return json.loads(res.stdout.strip().splitlines()[-1])["step_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 16, one round")
    parser.add_argument("--nni-python", help="a Python with nni installed (else: this one)")
    parser.add_argument("--no-nni", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds, args.steps = 16, 1, 1

    nni_python = None
    if not args.no_nni:
        if args.nni_python:
            nni_python = args.nni_python
        elif importlib.util.find_spec("nni") is not None:
            nni_python = sys.executable

    common = dict(channels=args.channels, layers=args.layers, batch=args.batch,
                  resolution=args.resolution, steps=args.steps, warmup=args.warmup,
                  threads=args.threads, device=args.device)
    rows: dict[str, list[float]] = {}
    runs = {
        "reference (straightforward), NCHW": lambda: time_search_step(
            **common, channels_last=False, make_network=ReferenceSearchNetwork)["step_s"],
        "nasforge, NCHW": lambda: time_search_step(**common, channels_last=False)["step_s"],
        "nasforge, channels_last": lambda: time_search_step(**common,
                                                            channels_last=True)["step_s"],
    }
    if nni_python:
        runs["NNI 3.0 DARTS super-network, NCHW"] = lambda: nni_step(nni_python, args)
    nni_error = None
    for _ in range(args.rounds):
        for name, run in list(runs.items()):
            try:
                rows.setdefault(name, []).append(run())
            except NNIFailed as err:  # report it, keep the rest, do not retry
                nni_error = f"{name}: {err}"
                del runs[name]
    times = {name: statistics.median(ts) for name, ts in rows.items() if ts}
    ref = times["reference (straightforward), NCHW"]
    nni = next((t for name, t in times.items() if name.startswith("NNI")), None)

    print(f"DARTS search step (first order), C={args.channels}, {args.layers} cells, batch "
          f"{args.batch}, {args.resolution}x{args.resolution}, {args.device}, torch "
          f"{torch.__version__}, {args.threads} threads, median of {args.rounds} round(s) of "
          f"{args.steps} step(s)")
    header = f"{'implementation':<38}{'s/step':>9}{'img/s':>9}{'x ref':>8}"
    print(header + (f"{'x NNI':>8}" if nni else ""))
    for name, t in times.items():
        line = f"{name:<38}{t:>9.3f}{args.batch / t:>9.1f}{ref / t:>8.2f}"
        print(line + (f"{nni / t:>8.2f}" if nni else ""))
    if not nni_python:
        print("NNI: not available (pass --nni-python PYTHON of a venv with nni==3.0 and "
              "pytorch-lightning<2); baseline is the straightforward formulation only")
    if nni_error:
        print(f"NNI could not run: {nni_error}")


if __name__ == "__main__":
    main()
